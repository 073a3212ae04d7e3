"""A per-region circuit breaker: closed -> open -> half-open -> closed.

* closed: requests flow; consecutive transient failures (connection errors, 5xx) are counted
  and the circuit opens at ``threshold``.
* A **timeout opens the circuit at once.** A hanging region costs the caller its full
  connect/read timeout on every attempt; counting to a threshold would charge that cost
  ``threshold`` times per cool-off (and to several concurrent callers at once). Opening on
  the first timeout means a hung region costs its timeouts once per circuit, after which
  traffic goes straight to healthy regions.
* open: the region is skipped until ``open_until``.
* half-open (open and the cool-off has passed): exactly one request, the probe, is let through.
  ``acquire`` claims the probe slot synchronously, with no await between check and claim, so
  under asyncio concurrency only one caller gets it. Success closes the circuit; failure
  reopens it for another cool-off. A probe that ends without a verdict (cancelled, or an
  outcome that says nothing about the region) releases the slot.

Any HTTP answer other than a 5xx proves the region is reachable and counts as a success here,
with one rule about time: **only an answer to a request sent after the circuit opened (the
half-open probe) closes it**, and a late failure of a request sent before it opened neither
extends ``open_until`` nor counts; nor does it count once a probe has closed the circuit again
(a stream sent before the outage that breaks after the recovery). Callers pass ``sent_at``
(the clock's ``now`` when the attempt was sent; for a failure after a stream's first chunk,
when the stream's request was sent); a slow 429 from before the outage says nothing about the
region now.
"""

from __future__ import annotations

__all__ = ["Circuit"]

CLOSED, OPEN, HALF_OPEN = "closed", "open", "half_open"


class Circuit:
    __slots__ = ("changed_at", "cooloff_s", "failures", "open_until", "probing", "threshold")

    def __init__(self, threshold: int, cooloff_s: float) -> None:
        self.threshold = threshold
        self.cooloff_s = cooloff_s
        self.failures = 0
        self.open_until = 0.0  # 0: closed
        self.probing = False
        self.changed_at = 0.0

    def state(self, now: float) -> str:
        if not self.open_until:
            return CLOSED
        return OPEN if now < self.open_until else HALF_OPEN

    def available(self, now: float) -> bool:
        """Would a request be let through now (without claiming anything)?"""
        return not self.open_until or (now >= self.open_until and not self.probing)

    def acquire(self, now: float) -> bool:
        """Let one request through if allowed; in half-open this claims the single probe slot."""
        if not self.open_until:
            return True
        if now < self.open_until or self.probing:
            return False
        self.probing = True
        return True

    def release(self) -> None:
        """A probe ended without a verdict: let the next request probe."""
        self.probing = False

    def _stale(self, sent_at: float | None) -> bool:
        """A verdict on a request sent before the circuit last changed state (opened, reopened,
        or closed by a probe): it says nothing about the region since."""
        return sent_at is not None and sent_at < self.changed_at

    def record_success(self, now: float, *, sent_at: float | None = None) -> bool:
        """Returns True when this closed an open circuit."""
        if self._stale(sent_at):
            return False
        self.failures = 0
        self.probing = False
        if self.open_until:
            self.open_until = 0.0
            self.changed_at = now
            return True
        return False

    def record_failure(
        self, now: float, *, immediate: bool = False, sent_at: float | None = None
    ) -> bool:
        """Count a transient failure; returns True when this opened (or reopened) the circuit."""
        if self._stale(sent_at):
            return False
        self.failures += 1
        was_probe, self.probing = self.probing, False
        if was_probe or self.open_until or immediate or self.failures >= self.threshold:
            self.open_until = now + self.cooloff_s
            self.changed_at = now
            return True
        return False

    def force(self, open_until: float, changed_at: float) -> None:
        """Adopt another instance's verdict (0 = closed)."""
        self.open_until = open_until
        self.failures = self.threshold if open_until else 0
        self.changed_at = changed_at
        if not open_until:
            self.probing = False

    def report(self, now: float) -> dict[str, object]:
        state = self.state(now)
        return {
            "state": state,
            "open_until": self.open_until if self.open_until else None,
            "consecutive_failures": self.failures,
            "probe_in_flight": self.probing,
        }
