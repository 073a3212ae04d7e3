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

**A request's own faults stay its own.** Some upstreams answer one kind of valid request (chat
content given as a list of parts, embeddings given as token arrays) with a 5xx in every region.
Counting each region's answer would let three such requests open every circuit. So a 5xx answer
at a closed region with no failure on record is *held* as a ``Suspect`` of its request instead
of counted. When a second region holds the same request's 5xx, the failure follows the request:
if one of those regions is known to serve others (``served``: it has answered a request), the
suspect is ``followed`` and the call ends with a 502 of its own; if none is, nothing shows that
any of them serves anyone, and both failures count as before (``_failure_policy``). Then:

* the region answers another request: the held suspects were those requests' own faults and are
  dropped (``cleared``, also at the other regions that hold them);
* the region fails another request first (a connection error, a timeout, a 5xx it cannot hold):
  it fails more than one request, and its pending suspects count toward the threshold with it;
* a pending suspect not ``followed`` (its request went on elsewhere, or has not yet) is not
  enough to hold the next request's 5xx: that one counts, with it. So a region failing every
  request opens after as many requests as before (the first is held, the second counts for two);
* ``2 * threshold`` pending ``followed`` suspects (requests failing everywhere, none answered
  here in between) count too: when every region fails every request, nothing tells a request's
  fault from an outage but its length.

A connection error, a timeout, a malformed 200 or a stream broken mid-answer counts at once, as
before.
"""

from __future__ import annotations

from dataclasses import dataclass

from shared.settings import RegionConfig

__all__ = ["Circuit", "RegionState", "Suspect"]

CLOSED, OPEN, HALF_OPEN = "closed", "open", "half_open"


class Suspect:
    """One request's 5xx answers held by the regions that gave them (see the module docstring).
    ``cleared`` once one of those regions has answered another request since: the failures were
    the request's own. The parts of one split embeddings request share one."""

    __slots__ = ("cleared", "followed", "holders")

    def __init__(self) -> None:
        self.cleared = False
        self.followed = False  # a second region held it: the failure follows the request
        self.holders: list[RegionState] = []  # the regions holding it, in order


class Circuit:
    __slots__ = (
        "changed_at",
        "cooloff_s",
        "failures",
        "held",
        "open_until",
        "probing",
        "served",
        "threshold",
    )

    def __init__(self, threshold: int, cooloff_s: float) -> None:
        self.threshold = threshold
        self.cooloff_s = cooloff_s
        self.failures = 0
        self.open_until = 0.0  # 0: closed
        self.probing = False
        self.changed_at = 0.0
        self.served = False  # has answered a request (so it is known to serve others)
        self.held: list[Suspect] = []  # 5xx answers held as their requests' faults

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
        self.served = True
        for suspect in self.held:  # it serves others: those failures were the requests' own
            suspect.cleared = True
        self.held.clear()
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
        # Another request fails here too: the suspects held so far count with this failure.
        self.failures += 1 + self._pending()
        self.held.clear()
        was_probe, self.probing = self.probing, False
        if was_probe or self.open_until or immediate or self.failures >= self.threshold:
            self.open_until = now + self.cooloff_s
            self.changed_at = now
            return True
        return False

    def _pending(self) -> int:
        return sum(1 for suspect in self.held if not suspect.cleared)

    def may_hold(self, suspect: Suspect) -> bool:
        """Would a 5xx answer to the request of ``suspect`` be held rather than counted? See
        the module docstring."""
        if self.open_until or self.failures:
            return False
        others = [s for s in self.held if not s.cleared and s is not suspect]
        return all(s.followed for s in others) and len(others) < 2 * self.threshold

    def hold(self, suspect: Suspect) -> None:
        """Hold a 5xx answer as ``suspect``'s request's own fault (check ``may_hold`` first)."""
        self.held = [s for s in self.held if not s.cleared and s is not suspect]
        self.held.append(suspect)
        self.probing = False

    def unhold(self, suspect: Suspect) -> None:
        """Stop holding ``suspect`` (it is about to be counted instead)."""
        self.held = [s for s in self.held if s is not suspect]

    def force(self, open_until: float, changed_at: float) -> None:
        """Adopt another instance's verdict (0 = closed)."""
        self.open_until = open_until
        self.failures = self.threshold if open_until else 0
        self.changed_at = changed_at
        self.held.clear()
        if not open_until:
            self.probing = False

    def report(self, now: float) -> dict[str, object]:
        state = self.state(now)
        return {
            "state": state,
            "open_until": self.open_until if self.open_until else None,
            "consecutive_failures": self.failures,
            "probe_in_flight": self.probing,
            "held_suspects": self._pending(),
        }


@dataclass(slots=True, eq=False)
class RegionState:
    """One region as routing sees it: its circuit, credentials and last probe (``Suspect``
    holds these, so they live beside the circuit)."""

    config: RegionConfig
    circuit: Circuit
    credentials: tuple[str, str]
    key: str
    # The last probe's verdict and when (``Gateway.probe_regions``): what health's view of the
    # region rests on when no traffic goes there.
    probe_verdict: str | None = None
    probe_at: float | None = None
