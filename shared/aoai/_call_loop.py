"""The routed call: a loop of attempts, each against the best eligible deployment.

Until one succeeds, a failure says the request itself is wrong (content filter, bad request:
raised at once, never retried), or nothing eligible is left (then the error says why: all
throttled with the soonest time, regions unavailable, auth failed, deployment not found).
The whole call is bounded by its deadline (``ctx.timeout_s`` or ``call_deadline_s``), measured
on the injected clock: every attempt's timeouts shrink to what is left, and
``DeadlineExceeded`` is raised when it runs out. What a failed attempt does to the routing
state is ``FailurePolicy``'s business.

When nothing is eligible, the call waits for the gateway's own pacing: the soonest route not
yet tried in this call that only the client-side budget or the quota ledger's lease holds back
(a window boundary, a lease's edge guard), before the first attempt or after any. Routes cooling
down or exhausted after Azure's 429 are never waited for: when only those are left, the call
answers ``AllThrottled`` at once with the soonest time. The waits of one call add up to
``throttle_wait_s`` at most (``GATEWAY_THROTTLE_WAIT_S``); a backlog job's to
``backlog_throttle_wait_s`` (``GATEWAY_BACKLOG_THROTTLE_WAIT_S``, a quota minute by default:
back-pressure, as the waiting job holds its message and a concurrency slot, where parking it
would cost storage round trips and a re-drive; the worker parks a job still throttled then).
Every wait ends before the call's deadline.

An attempt whose first byte is later than its deployment's threshold is hedged: the same
request goes to the next eligible route in another region, the first to deliver its first byte
wins and the other is cancelled at once (``_hedge`` says when, how many, and what a cancelled
attempt costs). The race is timed on the event loop's clock, as the first-byte deadline it
races against is.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, Generic, TypeVar, cast

from shared.pacing import INTERACTIVE
from shared.settings import GatewaySettings

from ._classify import ClassifiedFailure
from ._clients import ClientProvider
from ._clock import Clock
from ._failure_policy import CallState, FailurePolicy
from ._hedge import Hedger, hold_probe
from ._results import deadline_exceeded, nothing_eligible
from ._router import THROTTLED, Route, Router
from ._senders import Sender
from ._types import Attempt, FailureKind
from ._verdicts import SharedVerdicts

if TYPE_CHECKING:
    from ._router import Skip

__all__ = ["CallLoop"]

logger = logging.getLogger(__name__)

_MAX_TOP_UPS = 16  # ledger leases one call may ask for before it counts as throttled
_OVER_BUDGET = "over client-side budget"

T = TypeVar("T")

# Failures whose charge is released: no answer reached us (connection, timeout, our own
# deadline or cancellation), a 5xx, nothing was sent (LOCAL), or Azure refused the request as
# invalid (a 400 other than the content filter: e.g. max_tokens above the model's limit), which
# generates nothing; keeping its charge would let one cheap invalid request hold a deployment's
# window. A 429 corrects the budget from its headers instead; other answers keep it.
_NOT_COUNTED = frozenset(
    {
        FailureKind.CONNECTION,
        FailureKind.TIMEOUT,
        FailureKind.SERVER_ERROR,
        FailureKind.LOCAL,
        FailureKind.BAD_REQUEST,
    }
)


class CallLoop:
    """Runs one routed call (see the module docstring)."""

    __slots__ = (
        "_clients",
        "_clock",
        "_hedger",
        "_policy",
        "_router",
        "_settings",
        "_sleep",
        "_timeout",
        "_verdicts",
    )

    def __init__(
        self,
        settings: GatewaySettings,
        router: Router,
        clients: ClientProvider,
        verdicts: SharedVerdicts,
        policy: FailurePolicy,
        clock: Clock,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        hedger: Hedger | None = None,
    ) -> None:
        import httpx2

        self._settings = settings
        self._router = router
        self._clients = clients
        self._verdicts = verdicts
        self._policy = policy
        self._clock = clock
        self._sleep = sleep  # the waits for our own pacing: a seam, so tests move a ManualClock
        self._timeout = httpx2.Timeout
        self._hedger = hedger if hedger is not None else Hedger(settings)

    @property
    def hedger(self) -> Hedger:
        return self._hedger

    async def run(
        self,
        alias: str,
        cost: int,
        *,
        started: float,
        deadline_s: float,
        path: str,
        base: dict[str, Any],
        send: Sender[T],
        call: CallState,
        on_attempt: Callable[[Attempt], None],
        lane: str = INTERACTIVE,
        hedge: bool = True,
    ) -> tuple[T, Route]:
        """Attempts until one succeeds; ``call.attempts`` holds every attempt however it ends.
        ``started`` is the call's start on ``clock.monotonic``. ``hedge``: the request's route
        is free to change, so a late first byte may be hedged on another region (``_hedge``);
        a request bound to state stored in one deployment passes False."""
        waiter = self._verdicts.before_call()
        if waiter is not None:
            await self._verdicts.first_read(waiter)
        settings, router, clock = self._settings, self._router, self._clock
        deadline = started + deadline_s

        def record(attempt: Attempt) -> None:
            call.attempts.append(attempt)
            on_attempt(attempt)

        attempt_of = _Call(
            alias, cost, lane, path, base, send, call, deadline, deadline_s, record, on_attempt
        )

        wait_limit = (
            settings.throttle_wait_s if lane == INTERACTIVE else settings.backlog_throttle_wait_s
        )
        waited = 0.0
        top_ups = 0
        while True:
            now = clock.now()
            route = router.pick(
                alias, cost, now, call.tried, call.bad_regions, call.bad_credentials, lane
            )
            if route is None:
                skips = router.explain(
                    alias, cost, now, call.bad_regions, call.bad_credentials, lane
                )
                # A route not yet tried that only our own pacing (budget, ledger) holds back
                # frees up soon: wait for it within the limits, before or after attempts.
                # Azure's cooldowns are never waited for (only those left: answer at once).
                wait = _paced_wait(skips, now, call.tried)
                if (
                    wait is not None
                    and waited + wait <= wait_limit
                    and wait < deadline - clock.monotonic()
                ):
                    waited += wait
                    before = clock.now()
                    await self._sleep(wait)
                    if clock.now() - before >= wait / 2:  # a clock moved by hand does not wait
                        continue
                raise nothing_eligible(alias, now, call.attempts, skips, call.auth, call.missing)
            budget = route.deployment.budget
            if budget.needs_lease(now, cost, lane):
                shared = budget.shared
                top_ups += 1
                if top_ups > _MAX_TOP_UPS:  # others keep taking what it leases: back off
                    shared.hold(now, lane)  # type: ignore[union-attr]
                else:
                    await shared.top_up(now, cost, lane)  # type: ignore[union-attr]
                continue  # pick again: the lease is there, or the deployment is full for now
            remaining = deadline - clock.monotonic()
            if remaining <= 0:
                raise deadline_exceeded(alias, deadline_s, call.attempts)
            call.tried.add(id(route))
            first = self._claim(route, now, attempt_of, hedge=False)
            if first is None:  # pick checked availability; cannot normally fail
                continue
            if hedge and self._hedger.enabled:
                answered = await self._race(first, attempt_of)
            else:
                answered = await self._attempt(first, attempt_of)
                call.sent_at = first.charged_at
            if answered is not None:
                return answered[0], answered[1].route

    def _claim(self, route: Route, now: float, c: _Call[Any], *, hedge: bool) -> _Running | None:
        """Claim ``route`` for one attempt (circuit slot, pacing charge), with no await."""
        region, dep = route.region, route.deployment
        probe = bool(region.circuit.open_until)  # acquired past its cool-off: the half-open probe
        if not region.circuit.acquire(now):
            return None
        dep.budget.charge(now, c.cost, c.lane)
        dep.path = c.path
        if not hedge:
            self._hedger.sent(dep.key, now)
        return _Running(
            route,
            charged_at=now,
            sent_at=self._clock.monotonic(),
            loop_sent=asyncio.get_running_loop().time(),
            hedge=hedge,
            probe=probe,
        )

    async def _attempt(self, r: _Running, c: _Call[T]) -> tuple[T, _Running] | None:
        """Send one attempt; its value, or None when it failed (recorded, policy applied).
        Raises the public error of a RAISE failure, or ``DeadlineExceeded``."""
        settings, clock, policy, call = self._settings, self._clock, self._policy, c.call
        route = r.route
        region, dep = route.region, route.deployment
        remaining = c.deadline - clock.monotonic()
        timeout = None
        if remaining < settings.read_timeout_s:
            timeout = self._timeout(remaining, connect=min(settings.connect_timeout_s, remaining))
        body = dict(c.base, model=dep.config.deployment)
        client = self._clients.get(region.config)
        loop = asyncio.get_running_loop()

        def first_byte() -> None:
            if r.first_at is None:
                r.first_at = loop.time()
                self._hedger.first_byte(dep.key, r.first_at - r.loop_sent)
                self._first_byte(r, c)

        try:
            async with asyncio.timeout(remaining + 0.05):
                value, headers = await c.send(client, c.path, body, timeout, first_byte)
        except ClassifiedFailure as failure:
            if failure.kind in _NOT_COUNTED:
                dep.budget.refund(r.charged_at, c.cost, c.lane)
            attempt = Attempt(
                *route.names,
                failure.kind,
                failure.status,
                (clock.monotonic() - r.sent_at) * 1000.0,
                failure.detail,
                hedge=r.hedge,
            )
            call.attempts.append(attempt)
            try:  # observers hear of the attempt also when the policy ends the call
                source = policy.after_failure(route, failure, call, sent_at=r.charged_at)
                if source is not None:
                    attempt = call.attempts[-1] = replace(attempt, cooldown_source=source)
            finally:
                c.on_attempt(attempt)
            return None
        except TimeoutError:
            region.circuit.release()
            dep.budget.refund(r.charged_at, c.cost, c.lane)
            c.record(
                Attempt(
                    *route.names,
                    FailureKind.TIMEOUT,
                    None,
                    (clock.monotonic() - r.sent_at) * 1000.0,
                    "call deadline",
                    hedge=r.hedge,
                )
            )
            raise deadline_exceeded(c.alias, c.deadline_s, call.attempts) from None
        except BaseException:
            region.circuit.release()
            raise
        now = clock.now()
        policy.region_answered(region, now, sent_at=r.charged_at)
        dep.budget.observe(r.charged_at, now, headers)
        c.record(
            Attempt(
                *route.names, None, 200, (clock.monotonic() - r.sent_at) * 1000.0, hedge=r.hedge
            )
        )
        return value, r

    async def _race(self, first: _Running, c: _Call[T]) -> tuple[T, _Running] | None:
        """``first``'s attempt, hedged on the next eligible region if its first byte is later
        than its deployment's threshold (``_hedge``): the first to deliver its first byte wins,
        the other is cancelled at once. None when every attempt started here failed.

        ``first`` runs in the call's own task (no task of its own: the common case costs one
        timer); the hedge runs in a task. When the hedge's first byte comes first, the call's
        task is cancelled out of ``first``'s attempt (as ``asyncio.timeout`` does) and the
        cancellation is absorbed here."""
        loop = asyncio.get_running_loop()
        owner = asyncio.current_task()
        assert owner is not None
        race = c.race = _Race(first, owner)
        race.timer = loop.call_at(
            first.loop_sent + self._hedger.threshold(first.route.deployment.key),
            self._hedge_due,
            race,
            c,
        )
        try:
            try:
                answered = await self._attempt(first, c)
            except asyncio.CancelledError:
                race.first_running = False
                if not race.hedge_won or owner.uncancel() > 0:
                    raise  # the caller went away (handled below)
                self._cancelled(first, c, race.detail)
            else:
                race.first_running = False
                if answered is not None:  # first won (a hedge in flight was cancelled then)
                    c.call.sent_at = first.charged_at
                    return answered
            # first lost or failed: the hedge's outcome, if one was sent or is being sent
            if race.task is None:
                return None
            hedged = cast("tuple[T, _Running] | None", await race.task)
            if hedged is not None:
                c.call.sent_at = hedged[1].charged_at
            return hedged
        except asyncio.CancelledError:
            if race.task is not None:  # the caller went away: as for an unhedged attempt
                race.task.cancel()
            raise
        except BaseException:
            if race.task is not None and race.hedge is not None:
                self._lost(race, c, "cancelled: the call ended with the other attempt's error")
            elif race.task is not None:
                race.task.cancel()
            raise
        finally:
            if race.timer is not None:
                race.timer.cancel()
            c.race = None

    def _hedge_due(self, race: _Race, c: _Call[Any]) -> None:
        """The first attempt's threshold passed: start the hedge (in a task of its own)."""
        if race.first_running and race.first.first_at is None and race.task is None:
            race.task = asyncio.ensure_future(self._hedge_attempt(race, c))
            race.task.add_done_callback(_retrieve)

    async def _hedge_attempt(self, race: _Race, c: _Call[T]) -> tuple[T, _Running] | None:
        hedged = await self._hedge(race, c)
        if hedged is None:
            return None
        race.hedge = hedged
        try:
            return await self._attempt(hedged, c)
        except asyncio.CancelledError:
            raise
        except BaseException:
            # The request itself is wrong (a public error) or the call's deadline ran out: the
            # call ends now, not when the first attempt ends.
            if race.first_running and race.first.first_at is None and not race.hedge_won:
                race.hedge_won = True
                race.detail = "cancelled: the call ended with the hedge's error"
                race.owner.cancel()
            raise

    def _first_byte(self, r: _Running, c: _Call[Any]) -> None:
        """``r``'s first byte came: in a race, it decides it."""
        race = c.race
        if race is None:
            return
        if r is race.first:
            if race.timer is not None:
                race.timer.cancel()
            if self._lost(race, c):  # a hedge in flight loses
                self._hedger.settled(r.route.deployment.key, hedge_won=False)
        elif r is race.hedge and race.first_running and race.first.first_at is None:
            race.hedge_won = True
            self._hedger.settled(race.first.route.deployment.key, hedge_won=True)
            race.owner.cancel()  # out of the first attempt: ``_race`` absorbs it

    async def _hedge(self, race: _Race, c: _Call[Any]) -> _Running | None:
        """Claim the next eligible route in another region for a hedge of the first attempt,
        if the call has time left and its deployment may hedge (the share cap). A route whose
        ledger lease has run out is leased for first (the first attempt keeps running)."""
        clock, call, first = self._clock, c.call, race.first
        key = first.route.deployment.key
        if c.deadline - clock.monotonic() <= 0 or not self._hedger.allow(key, clock.now()):
            return None
        route = None
        for leased in (False, True):
            now = clock.now()
            route = self._router.pick(
                c.alias,
                c.cost,
                now,
                call.tried,
                call.bad_regions | {first.route.region.config.name},
                call.bad_credentials,
                c.lane,
            )
            if route is None:
                return None
            budget = route.deployment.budget
            if not budget.needs_lease(now, c.cost, c.lane):
                break
            if leased:
                return None
            await budget.shared.top_up(now, c.cost, c.lane)  # type: ignore[union-attr]
            if first.first_at is not None or not race.first_running:
                return None  # answered (or failed) while the lease was taken: no hedge now
        assert route is not None
        claimed = self._claim(route, now, c, hedge=True)
        if claimed is not None:
            self._hedger.started(key, now)
            call.tried.add(id(route))
            logger.info(
                "hedge: no first byte from %s/%s after %.2fs, also sent to %s/%s",
                *first.route.names,
                asyncio.get_running_loop().time() - first.loop_sent,
                *route.names,
            )
        return claimed

    def _lost(
        self,
        race: _Race,
        c: _Call[Any],
        detail: str = "cancelled: the first attempt answered first",
    ) -> bool:
        """The hedge lost its race: cancel it at once (see ``_cancelled``). False when there
        was none in flight (none sent, or it already ended: its outcome was recorded then)."""
        task, hedged = race.task, race.hedge
        race.hedge = None
        if task is None or hedged is None or task.done():
            return False
        task.cancel()
        self._cancelled(hedged, c, detail)
        return True

    def _cancelled(
        self,
        r: _Running,
        c: _Call[Any],
        detail: str = "cancelled: the hedge answered first",
    ) -> None:
        """``r`` lost its race and is cancelled: no verdict on its region (the circuit slot is
        released, see ``hold_probe``); its charge is refunded unless its first byte came."""
        route = r.route
        clock = self._clock
        if r.probe:
            hold_probe(route.region.circuit, clock.now())
        if r.first_at is None:
            route.deployment.budget.refund(r.charged_at, c.cost, c.lane)
        c.record(
            Attempt(
                *route.names,
                FailureKind.HEDGE_LOST,
                None,
                (clock.monotonic() - r.sent_at) * 1000.0,
                detail,
                hedge=r.hedge,
            )
        )


def _retrieve(task: asyncio.Future[Any]) -> None:
    """A hedge's error is raised where its outcome is awaited, if it ever is; never a warning."""
    if not task.cancelled():
        task.exception()


@dataclass(slots=True, eq=False)
class _Race:
    """The state of one hedge race."""

    first: _Running
    owner: asyncio.Task[Any]  # the call's task, where the first attempt runs
    timer: asyncio.TimerHandle | None = None  # when the hedge is due (set right after)
    first_running: bool = True
    hedge: _Running | None = None  # the hedge attempt, once claimed (None again if it lost)
    task: asyncio.Future[Any] | None = None  # the hedge's task (claim, then attempt)
    hedge_won: bool = False  # the hedge decided the race (its first byte, or its error)
    detail: str = "cancelled: the hedge answered first"


@dataclass(slots=True, eq=False)
class _Running:
    """One attempt in flight."""

    route: Route
    charged_at: float  # clock.now when claimed (the budget's charge, the circuit's sent_at)
    sent_at: float  # clock.monotonic when claimed (the attempt's elapsed time)
    loop_sent: float  # the event loop's time when claimed (first byte, hedge threshold)
    hedge: bool
    probe: bool = False  # it holds its region's half-open probe slot
    first_at: float | None = None  # the event loop's time of its first byte


@dataclass(slots=True, eq=False)
class _Call(Generic[T]):
    """What every attempt of one call shares."""

    alias: str
    cost: int
    lane: str
    path: str
    base: dict[str, Any]
    send: Sender[T]
    call: CallState
    deadline: float  # clock.monotonic
    deadline_s: float
    record: Callable[[Attempt], None]
    on_attempt: Callable[[Attempt], None]
    race: _Race | None = None  # the hedge race under way, if any


def _paced_wait(skips: list[Skip], now: float, tried: set[int]) -> float | None:
    """Seconds until the soonest route not yet tried in this call frees up, among those only
    the gateway's own pacing (client-side budget, ledger lease) holds back; None if there is
    none. Other skips (cooldowns, exhaustion, circuits, tried routes) do not count."""
    free_at = [
        s.available_at
        for s in skips
        if s.reason == THROTTLED and s.detail == _OVER_BUDGET and id(s.route) not in tried
    ]
    return max(0.001, min(free_at) - now) if free_at else None
