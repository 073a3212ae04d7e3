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

While the upstream windows' phase is unknown (no response has carried an
``x-ratelimit-reset-*`` header yet, here or, with a ledger, in the shared row), the upstream may
count over a *rolling* window: each log then keeps an entry for its span plus an arrival margin
(the ledger's send-to-arrival guard: 5 % of the span, 0.05 s to 0.5 s), so that whatever any
span-long interval of arrivals holds stays under the limit although requests reach the upstream
a little after we send them; and with a reachable ledger these logs pace the instance's
admission too, on top of its leases (which are aligned to our own fixed windows, and would
otherwise release a window's worth of calls at once at each of our window's edges), at an equal
split of the limits among the instances active in the row (``SharedQuota.rolling_share``), so
that their sum over any span stays within the limits as well. Once a phase is learned, the
margin goes and the ledger alone admits, as before.

With the deployment quota ledger (``_quota_ledger``), a budget also holds its deployment's ``SharedQuota``:
while the ledger is reachable, admission is the ledger's (leased slices of the deployment's
windows across every instance, by lane); while it is not, the sliding windows here admit at the
ledger's conservative per-instance share of the limits. Charges always go to both.
"""

from __future__ import annotations

from collections import deque
from typing import TYPE_CHECKING

from shared.settings import DeploymentConfig

from ._cooldown import parse_duration

if TYPE_CHECKING:
    from collections.abc import Mapping

    from ._quota_ledger import SharedQuota

INTERACTIVE = "interactive"

__all__ = ["INTERACTIVE", "DeploymentBudget", "SlidingWindow", "arrival_margin"]


class SlidingWindow:
    """Amounts charged within the last ``span`` seconds (plus ``margin``: an entry counts until
    ``span + margin`` after its charge), against ``limit``."""

    __slots__ = ("_log", "_used", "limit", "margin", "span")

    def __init__(self, limit: int, span: float, margin: float = 0.0) -> None:
        self.limit = limit
        self.span = span
        self.margin = margin
        self._log: deque[tuple[float, int]] = deque()
        self._used = 0

    def _prune(self, now: float) -> None:
        log = self._log
        horizon = now - self.span - self.margin
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
                return stamp + self.span + self.margin
        return now + self.span + self.margin  # unreachable: the log holds everything used

    def correct(self, now: float, server_remaining: int) -> None:
        """Lower our view to the server's when it knows of more usage than we do."""
        local = self.remaining(now)
        if server_remaining < local:
            self.charge(now, local - server_remaining)


def arrival_margin(span: float) -> float:
    """The send-to-arrival margin of a ``span``-long window: 5 % of it, 0.05 s to 0.5 s (the
    ledger's guard, ``_lease_plan``)."""
    return min(0.5, max(0.05, 0.05 * span))


class DeploymentBudget:
    """TPM per minute, RPM per minute and per sixth of a minute, for one deployment."""

    __slots__ = ("_phase_known", "burst", "requests", "shared", "tokens")

    def __init__(
        self,
        deployment: DeploymentConfig,
        minute_s: float,
        shared: SharedQuota | None = None,
    ) -> None:
        rpm = deployment.effective_rpm
        # Until a phase is learned, the windows may roll: each log keeps an arrival margin.
        self.tokens = SlidingWindow(deployment.tpm, minute_s, arrival_margin(minute_s))
        self.requests = SlidingWindow(rpm, minute_s, arrival_margin(minute_s))
        burst_span = minute_s / 6
        self.burst = SlidingWindow(max(1, rpm // 6), burst_span, arrival_margin(burst_span))
        self.shared = shared
        self._phase_known = False

    @property
    def phase_known(self) -> bool:
        """True once the upstream windows' phase is known (a response's ``x-ratelimit-reset-*``
        header here, or the ledger's shared row): pacing then keeps to fixed windows."""
        if not self._phase_known and self.shared is not None and self.shared.phase_known:
            self._learned()
        return self._phase_known

    def _learned(self) -> None:
        self._phase_known = True
        for window in (self.tokens, self.requests, self.burst):
            window.margin = 0.0

    def available_at(self, now: float, tokens: int, lane: str = INTERACTIVE) -> float:
        """When one more request costing ``tokens`` fits every window (``now`` if it does).
        With a reachable ledger: when its lease (or a top-up) may cover it, for ``lane``; while
        the phase is unknown, also when the instance's own rolling windows let it through."""
        share = 1.0
        shared = self.shared
        if shared is not None:
            if shared.usable(now):
                at = shared.available_at(now, tokens, lane)
                if self.phase_known:
                    return at
                return max(at, self._local_at(now, tokens, shared.rolling_share(now)))
            share = shared.fallback_share
        return self._local_at(now, tokens, share)

    def _local_at(self, now: float, tokens: int, share: float) -> float:
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
        ledger, the windows' phase and Azure's count for the shared row. A reset header makes
        the phase known (an upstream that sends them on every answer counts fixed windows)."""
        if not self._phase_known and _has_reset(headers):
            self._learned()
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


def _has_reset(headers: Mapping[str, str]) -> bool:
    """True when a reset header says when a window ends (a positive duration)."""
    for name in ("x-ratelimit-reset-requests", "x-ratelimit-reset-tokens"):
        text = headers.get(name)
        value = parse_duration(text) if text else None
        if value is not None and value > 0:
            return True
    return False


def _int(text: str) -> int | None:
    try:
        return int(float(text))
    except (ValueError, OverflowError):
        return None
