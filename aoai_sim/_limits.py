"""Per-deployment rate limiter: TPM per (scaled) minute, RPM per (scaled) 10-second window.

Two modes (a deployment's ``limit_window``): ``fixed`` windows anchored at creation (or reset),
every response carrying the ``x-ratelimit-*`` headers; or ``rolling``: requests and tokens are
counted over the last window's length, and only a 429 says what is left and when (the reset is
when enough of the oldest counted usage leaves the window); a success carries the limits only.
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["FIXED", "ROLLING", "WINDOWS", "Decision", "DeploymentLimiter", "retry_after_headers"]

FIXED = "fixed"
ROLLING = "rolling"
WINDOWS = (FIXED, ROLLING)


@dataclass(frozen=True)
class Decision:
    """Outcome of one admission check, with everything the headers need."""

    allowed: bool
    calls_exceeded: bool
    retry_after_s: float
    limit_requests: int
    limit_tokens: int
    remaining_requests: int
    remaining_tokens: int
    reset_requests_s: float
    reset_tokens_s: float
    window_headers: bool = True  # False (a rolling window): remaining/reset only on a 429

    def headers(self) -> list[tuple[str, str]]:
        """The x-ratelimit-* headers (plus retry-after* when refused)."""
        out = [
            ("x-ratelimit-limit-requests", str(self.limit_requests)),
            ("x-ratelimit-limit-tokens", str(self.limit_tokens)),
        ]
        if self.allowed and not self.window_headers:
            return out
        out += [
            ("x-ratelimit-remaining-requests", str(self.remaining_requests)),
            ("x-ratelimit-remaining-tokens", str(self.remaining_tokens)),
            ("x-ratelimit-reset-requests", _duration(self.reset_requests_s)),
            ("x-ratelimit-reset-tokens", _duration(self.reset_tokens_s)),
        ]
        if not self.allowed:
            out.extend(retry_after_headers(self.retry_after_s))
        return out


def _duration(seconds: float) -> str:
    return f"{max(seconds, 0.0):.3f}".rstrip("0").rstrip(".") + "s"


def retry_after_headers(seconds: float, ms: float | None = None) -> list[tuple[str, str]]:
    """retry-after (whole seconds, rounded up, at least 1) and retry-after-ms."""
    ms_value = math.ceil(seconds * 1000) if ms is None else math.ceil(ms)
    return [
        ("retry-after", str(max(1, math.ceil(seconds)))),
        ("retry-after-ms", str(max(1, ms_value))),
    ]


class DeploymentLimiter:
    """Tokens per minute, requests per minute/6: fixed windows anchored at creation (or reset),
    or rolling windows (``window="rolling"``: the usage of the last window's length)."""

    def __init__(
        self,
        tpm: int,
        rpm: int,
        minute_seconds: float,
        clock: Callable[[], float] = time.monotonic,
        window: str = FIXED,
    ) -> None:
        if window not in WINDOWS:
            raise ValueError(f"window must be one of {WINDOWS}")
        self._clock = clock
        self.window = window
        self.tok_window = minute_seconds
        self.req_window = minute_seconds / 6
        self.tok_limit = tpm
        self.req_limit = max(1, rpm // 6)
        self._req_log: deque[float] = deque()  # rolling: admission times
        self._tok_log: deque[tuple[float, int]] = deque()  # rolling: (admission time, tokens)
        self.reset()

    def reset(self) -> None:
        """Forget all usage; windows restart now."""
        self._t0 = self._clock()
        self._req_idx = self._tok_idx = 0
        self._req_used = self._tok_used = 0
        self._req_log.clear()
        self._tok_log.clear()

    def _roll(self, now: float) -> tuple[float, float]:
        if self.window == ROLLING:
            return self._slide(now)
        elapsed = now - self._t0
        req_idx = int(elapsed // self.req_window)
        tok_idx = int(elapsed // self.tok_window)
        if req_idx != self._req_idx:
            self._req_idx, self._req_used = req_idx, 0
        if tok_idx != self._tok_idx:
            self._tok_idx, self._tok_used = tok_idx, 0
        req_reset = (req_idx + 1) * self.req_window - elapsed
        tok_reset = (tok_idx + 1) * self.tok_window - elapsed
        return req_reset, tok_reset

    def _slide(self, now: float) -> tuple[float, float]:
        """Rolling: drop what has left the windows; the resets are when the oldest counted
        request, and the oldest counted tokens, leave theirs (0: nothing counted)."""
        while self._req_log and self._req_log[0] <= now - self.req_window:
            self._req_log.popleft()
            self._req_used -= 1
        while self._tok_log and self._tok_log[0][0] <= now - self.tok_window:
            self._tok_used -= self._tok_log.popleft()[1]
        req_reset = self._req_log[0] + self.req_window - now if self._req_log else 0.0
        tok_reset = self._tok_log[0][0] + self.tok_window - now if self._tok_log else 0.0
        return req_reset, tok_reset

    def _tokens_free_in(self, now: float, tokens: int) -> float:
        """Rolling: seconds until ``tokens`` more fit (enough of the oldest usage has left)."""
        excess = self._tok_used + min(tokens, self.tok_limit) - self.tok_limit
        for stamp, amount in self._tok_log:
            excess -= amount
            if excess <= 0:
                return stamp + self.tok_window - now
        return self.tok_window

    def try_acquire(self, tokens: int) -> Decision:
        """Admit and charge one request of ``tokens`` estimated tokens, or refuse it."""
        now = self._clock()
        req_reset, tok_reset = self._roll(now)
        calls_exceeded = self._req_used >= self.req_limit
        tokens_exceeded = self._tok_used + tokens > self.tok_limit
        allowed = not calls_exceeded and not tokens_exceeded
        if allowed:
            self._req_used += 1
            self._tok_used += tokens
            if self.window == ROLLING:
                self._req_log.append(now)
                self._tok_log.append((now, tokens))
        if self.window == ROLLING and tokens_exceeded:
            tok_reset = self._tokens_free_in(now, tokens)
        retry = req_reset if calls_exceeded else tok_reset
        return self._decision(allowed, calls_exceeded, retry, req_reset, tok_reset)

    def peek(self) -> Decision:
        """Current remaining values without charging anything."""
        req_reset, tok_reset = self._roll(self._clock())
        return self._decision(True, False, 0.0, req_reset, tok_reset)

    def _decision(
        self, allowed: bool, calls: bool, retry: float, req_reset: float, tok_reset: float
    ) -> Decision:
        return Decision(
            allowed=allowed,
            calls_exceeded=calls,
            retry_after_s=retry,
            limit_requests=self.req_limit,
            limit_tokens=self.tok_limit,
            remaining_requests=max(0, self.req_limit - self._req_used),
            remaining_tokens=max(0, self.tok_limit - self._tok_used),
            reset_requests_s=req_reset,
            reset_tokens_s=tok_reset,
            window_headers=self.window == FIXED,
        )
