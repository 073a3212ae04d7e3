"""Client-side quota per deployment, mirroring Azure's rate limiter so the gateway stops
sending before Azure would answer 429.

Azure charges a request when it arrives: an estimate of the prompt (characters / 4) plus the
output cap (``max_tokens``, or a default when the caller sends none). TPM is counted per
minute and RPM per 10-second window (a sixth of the minute, ``rpm / 6`` requests each).

Each window here is a *sliding* log: if the sum over every span-long interval stays under the
limit, then so does the sum over any fixed window Azure (or the simulator) happens to use,
whatever its phase. Every response's ``x-ratelimit-remaining-*`` headers then correct the
log downwards: when Azure says less is left than we think (other instances, other clients of
the same deployment), the difference is charged as a phantom entry that ages out like any
other. A higher server figure is ignored: our own in-flight charges have not reached it yet.

With the deployment quota ledger (``_quota_ledger``), a budget also holds its deployment's ``SharedQuota``:
while the ledger is reachable, admission is the ledger's (leased slices of the deployment's
windows across every instance, by lane); while it is not, the sliding windows here admit at the
ledger's conservative per-instance share of the limits. Charges always go to both.
"""

from __future__ import annotations

from collections import deque
from typing import TYPE_CHECKING

from shared.settings import DeploymentConfig

if TYPE_CHECKING:
    from collections.abc import Mapping

    from ._quota_ledger import SharedQuota

INTERACTIVE = "interactive"

__all__ = ["INTERACTIVE", "DeploymentBudget", "SlidingWindow"]


class SlidingWindow:
    """Amounts charged within the last ``span`` seconds, against ``limit``."""

    __slots__ = ("_log", "_used", "limit", "span")

    def __init__(self, limit: int, span: float) -> None:
        self.limit = limit
        self.span = span
        self._log: deque[tuple[float, int]] = deque()
        self._used = 0

    def _prune(self, now: float) -> None:
        log = self._log
        horizon = now - self.span
        while log and log[0][0] <= horizon:
            self._used -= log.popleft()[1]

    def remaining(self, now: float) -> int:
        self._prune(now)
        return self.limit - self._used

    def charge(self, now: float, amount: int) -> None:
        if amount > 0:
            self._log.append((now, amount))
            self._used += amount

    def release(self, charged_at: float, amount: int) -> bool:
        """Undo one ``charge(charged_at, amount)`` still in the window; False if it has left."""
        log = self._log
        for index in range(len(log) - 1, -1, -1):
            stamp, value = log[index]
            if stamp < charged_at:
                break
            if stamp == charged_at and value == amount:
                del log[index]
                self._used -= amount
                return True
        return False

    def free_at(self, now: float, need: int, share: float = 1.0) -> float:
        """The earliest time at which ``need`` fits (``now`` if it fits already) under ``share``
        of the limit.

        A need above that limit is capped at it: it fits once the window is empty.
        """
        self._prune(now)
        limit = max(1, int(self.limit * share)) if share < 1.0 else self.limit
        deficit = self._used + min(need, limit) - limit
        if deficit <= 0:
            return now
        for stamp, amount in self._log:
            deficit -= amount
            if deficit <= 0:
                return stamp + self.span
        return now + self.span  # unreachable: the log holds everything used

    def correct(self, now: float, server_remaining: int) -> None:
        """Lower our view to the server's when it knows of more usage than we do."""
        local = self.remaining(now)
        if server_remaining < local:
            self.charge(now, local - server_remaining)


class DeploymentBudget:
    """TPM per minute, RPM per minute and per sixth of a minute, for one deployment."""

    __slots__ = ("burst", "requests", "shared", "tokens")

    def __init__(
        self,
        deployment: DeploymentConfig,
        minute_s: float,
        shared: SharedQuota | None = None,
    ) -> None:
        rpm = deployment.effective_rpm
        self.tokens = SlidingWindow(deployment.tpm, minute_s)
        self.requests = SlidingWindow(rpm, minute_s)
        self.burst = SlidingWindow(max(1, rpm // 6), minute_s / 6)
        self.shared = shared

    def available_at(self, now: float, tokens: int, lane: str = INTERACTIVE) -> float:
        """When one more request costing ``tokens`` fits every window (``now`` if it does).
        With a reachable ledger: when its lease (or a top-up) may cover it, for ``lane``."""
        share = 1.0
        shared = self.shared
        if shared is not None:
            if shared.usable(now):
                return shared.available_at(now, tokens, lane)
            share = shared.fallback_share
        return max(
            self.tokens.free_at(now, tokens, share),
            self.requests.free_at(now, 1, share),
            self.burst.free_at(now, 1, share),
        )

    def needs_lease(self, now: float, tokens: int, lane: str = INTERACTIVE) -> bool:
        """True when the ledger must be asked (``SharedQuota.top_up``) before this charge."""
        shared = self.shared
        return shared is not None and shared.usable(now) and shared.needs_lease(now, tokens, lane)

    def charge(self, now: float, tokens: int, lane: str = INTERACTIVE) -> None:
        self.tokens.charge(now, tokens)
        self.requests.charge(now, 1)
        self.burst.charge(now, 1)
        if self.shared is not None and self.shared.usable(now):
            self.shared.charge(now, tokens, lane)

    def observe(self, sent_at: float, now: float, headers: Mapping[str, str]) -> None:
        """A response's ``x-ratelimit-*`` headers: the local correction (``correct``) and, with a
        ledger, the windows' phase and Azure's count for the shared row."""
        self.correct(
            now,
            headers.get("x-ratelimit-remaining-requests"),
            headers.get("x-ratelimit-remaining-tokens"),
            headers.get("x-ratelimit-limit-requests"),
        )
        if self.shared is not None:
            self.shared.observe(sent_at, now, headers)

    def refund(self, charged_at: float, tokens: int, lane: str = INTERACTIVE) -> None:
        """Release a charge Azure did not count (no response reached us, or a 5xx): the
        request's tokens and its request slots are free again; with a ledger, the lease's
        unused part goes back to the shared row (``SharedQuota.refund``)."""
        self.tokens.release(charged_at, tokens)
        self.requests.release(charged_at, 1)
        self.burst.release(charged_at, 1)
        if self.shared is not None:
            self.shared.refund(charged_at, tokens, lane)

    def rates(self) -> tuple[float, float]:
        """Sustained (requests, tokens) per second: each window's limit over its span, the
        lower of the minute and burst request rates."""
        requests = min(self.requests.limit / self.requests.span, self.burst.limit / self.burst.span)
        return requests, self.tokens.limit / self.tokens.span

    def headroom(self, now: float) -> float:
        """Share of the token and burst budget left, the lower of the two (0..1)."""
        return min(
            self.tokens.remaining(now) / self.tokens.limit,
            self.burst.remaining(now) / self.burst.limit,
        )

    def correct(
        self,
        now: float,
        remaining_requests: str | None,
        remaining_tokens: str | None,
        limit_requests: str | None = None,
    ) -> None:
        """Apply a response's ``x-ratelimit-*`` header values (strings, each may be absent).

        Remaining requests are read against the short window, unless ``x-ratelimit-limit-requests``
        says the figure is per minute.
        """
        if remaining_tokens:
            value = _int(remaining_tokens)
            if value is not None:
                self.tokens.correct(now, value)
        if remaining_requests:
            value = _int(remaining_requests)
            if value is not None:
                per_minute = (
                    limit_requests is not None
                    and _int(limit_requests) == self.requests.limit != self.burst.limit
                )
                (self.requests if per_minute else self.burst).correct(now, value)

    def snapshot(self, now: float) -> dict[str, int]:
        return {
            "remaining_tokens": max(0, self.tokens.remaining(now)),
            "remaining_requests": max(
                0, min(self.requests.remaining(now), self.burst.remaining(now))
            ),
            "tpm": self.tokens.limit,
            "rpm": self.requests.limit,
        }


def _int(text: str) -> int | None:
    try:
        return int(float(text))
    except (ValueError, OverflowError):
        return None
