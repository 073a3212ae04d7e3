"""Hedged first byte: when an attempt's first byte is late, the same request goes to the next
eligible region too, and whichever answers first is kept.

**When.** Each deployment keeps its recent times to first byte (the first chunk of a stream, or a
JSON answer's headers), measured from when the attempt was sent. Its threshold is their
``hedge_quantile`` (p95 by default), clamped to ``[hedge_floor_s, hedge_ceiling_s]`` and never
past ``first_byte_timeout_s``; until it has ``MIN_SAMPLES`` samples the ceiling applies. No
hedging when ``hedge_enabled`` is off or the floor is not below the first-byte deadline.

**Which requests.** The call says so (``CallLoop.run(hedge=...)``): a request whose route is free
to change may be hedged; one bound to state stored in one deployment (a Responses API request that
refers to a stored response, pinned to the region that holds it) passes
``hedge=False``. A non-streaming chat sent as plain JSON (``stream_upstream`` off) is not
hedged: its headers come only when the whole generation is done, so there is no first byte to
judge it by. Once an attempt's first byte has come it is never hedged, however long it streams.

**How many.** Hedges started from one deployment are capped at ``hedge_max_share`` of the calls
sent to it in the last ``hedge_window_s`` (at least one per window), so a slow region adds at
most that share to the load of the others.

**Where.** The hedge goes to the route the router would pick next, in another region than the
first attempt's (a region's deployments tend to be slow together). With the quota ledger, a
route whose lease has run out is leased first, while the first attempt keeps running.

**The race.** The first attempt to deliver its first byte wins; the other is cancelled at once.
A cancelled attempt's pacing charge is refunded (``DeploymentBudget.refund``, which also gives
a ledger lease's unused part back) unless its own first byte had already come. Assumption: an
upstream request cancelled before its first byte is not billed; Azure OpenAI bills the tokens
it processes, and a request it has not started answering is counted by our accounting as not
billed (its quota charge is released as for any attempt that got no answer). The loser is not a
failure: its region's circuit is released, neither counted nor closed. If the loser was the
region's half-open probe, the circuit stays open for another cool-off (no failure counted), so a
hung region that hedges keep hiding still gets one probe per cool-off, not one per call. An
attempt that reaches its first-byte deadline before the other answers fails as before (a
timeout: it opens the circuit); another failure of either (a 429, a 5xx) leaves the other
running. An error of the request itself (a 400, the content filter) ends the call at once, the
other attempt cancelled as a loser.
"""

from __future__ import annotations

from bisect import bisect_left, insort
from collections import deque
from dataclasses import dataclass, field

from shared.settings import GatewaySettings

from ._circuit import Circuit

__all__ = ["MIN_SAMPLES", "Hedger", "hold_probe"]

MIN_SAMPLES = 8  # samples a deployment needs before its threshold adapts (else the ceiling)
_SAMPLES = 200  # recent times to first byte kept per deployment


@dataclass(slots=True)
class _Deployment:
    ttfb: deque[float] = field(default_factory=deque)  # the last _SAMPLES, oldest first
    ordered: list[float] = field(default_factory=list)  # the same samples, sorted
    calls: deque[float] = field(default_factory=deque)  # when each call was sent (clock.now)
    hedges: deque[float] = field(default_factory=deque)  # when each hedge was started from it
    hedged: int = 0  # hedges started from it, in total
    won: int = 0  # of those, how many the other region answered first
    lost: int = 0  # ... and how many it answered first itself (the hedge was cancelled)
    capped: int = 0  # hedges the share cap refused
    threshold: float | None = None  # cached; None: recompute


class Hedger:
    """Per-deployment first-byte statistics and the hedge cap (see the module docstring)."""

    __slots__ = ("_ceiling", "_deps", "_enabled", "_floor", "_quantile", "_share", "_window")

    def __init__(self, settings: GatewaySettings) -> None:
        self._floor = settings.hedge_floor_s
        self._ceiling = min(settings.hedge_ceiling_s, settings.first_byte_timeout_s)
        self._quantile = settings.hedge_quantile
        self._share = settings.hedge_max_share
        self._window = settings.hedge_window_s
        self._enabled = settings.hedge_enabled and self._floor < settings.first_byte_timeout_s
        self._deps: dict[str, _Deployment] = {}

    @property
    def enabled(self) -> bool:
        return self._enabled

    def _dep(self, key: str) -> _Deployment:
        dep = self._deps.get(key)
        if dep is None:
            dep = self._deps[key] = _Deployment()
        return dep

    def threshold(self, key: str) -> float:
        """Seconds after which an attempt on deployment ``key`` with no first byte is hedged."""
        dep = self._dep(key)
        if dep.threshold is None:
            ordered = dep.ordered
            if len(ordered) < MIN_SAMPLES:
                value = self._ceiling
            else:
                value = ordered[min(len(ordered) - 1, int(self._quantile * len(ordered)))]
            dep.threshold = min(self._ceiling, max(self._floor, value))
        return dep.threshold

    def first_byte(self, key: str, seconds: float) -> None:
        """An attempt on ``key`` delivered its first byte ``seconds`` after it was sent."""
        dep = self._dep(key)
        samples, ordered = dep.ttfb, dep.ordered
        if len(samples) >= _SAMPLES:  # the oldest leaves both (kept sorted: no sort per call)
            del ordered[bisect_left(ordered, samples.popleft())]
        samples.append(seconds)
        insort(ordered, seconds)
        dep.threshold = None

    def sent(self, key: str, now: float) -> None:
        """A call's attempt (not a hedge) was sent to ``key``."""
        calls = self._dep(key).calls
        calls.append(now)
        self._trim(calls, now)

    def allow(self, key: str, now: float) -> bool:
        """May a hedge start from ``key`` now (the share cap)? A refusal is counted."""
        dep = self._dep(key)
        self._trim(dep.calls, now)
        self._trim(dep.hedges, now)
        if len(dep.hedges) + 1 > max(1.0, self._share * len(dep.calls)):
            dep.capped += 1
            return False
        return True

    def started(self, key: str, now: float) -> None:
        """A hedge of an attempt on ``key`` was sent."""
        dep = self._dep(key)
        dep.hedges.append(now)
        dep.hedged += 1

    def settled(self, key: str, *, hedge_won: bool) -> None:
        """A hedge started from ``key`` ended its race: the hedge answered first, or ``key``."""
        dep = self._dep(key)
        if hedge_won:
            dep.won += 1
        else:
            dep.lost += 1

    def report(self, key: str, now: float) -> dict[str, object]:
        """The deployment's hedge details for the health report."""
        dep = self._dep(key)
        self._trim(dep.calls, now)
        self._trim(dep.hedges, now)
        return {
            "enabled": self._enabled,
            "threshold_s": round(self.threshold(key), 3),
            "ttfb_samples": len(dep.ttfb),
            "calls_in_window": len(dep.calls),
            "hedges_in_window": len(dep.hedges),
            "hedges": dep.hedged,
            "hedges_won": dep.won,
            "hedges_lost": dep.lost,
            "hedges_capped": dep.capped,
        }

    def _trim(self, stamps: deque[float], now: float) -> None:
        edge = now - self._window
        while stamps and stamps[0] <= edge:
            stamps.popleft()


def hold_probe(circuit: Circuit, now: float) -> None:
    """A cancelled attempt (it lost a hedge race) gives no verdict on its region: free the probe
    slot, and if the circuit was open (this was its half-open probe), keep it open for another
    cool-off without counting a failure."""
    circuit.release()
    if circuit.open_until and now >= circuit.open_until:
        circuit.open_until = now + circuit.cooloff_s
