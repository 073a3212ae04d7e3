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
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import replace
from typing import TYPE_CHECKING, Any, TypeVar

from shared.settings import GatewaySettings

from ._budget import INTERACTIVE
from ._classify import ClassifiedFailure
from ._clients import ClientProvider
from ._clock import Clock
from ._failure_policy import CallState, FailurePolicy
from ._health import SharedHealth
from ._results import deadline_exceeded, nothing_eligible
from ._router import THROTTLED, Route, Router
from ._senders import Sender
from ._types import Attempt, FailureKind

if TYPE_CHECKING:
    from ._router import Skip

__all__ = ["CallLoop"]

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
        "_health",
        "_policy",
        "_router",
        "_settings",
        "_sleep",
        "_timeout",
    )

    def __init__(
        self,
        settings: GatewaySettings,
        router: Router,
        clients: ClientProvider,
        health: SharedHealth,
        policy: FailurePolicy,
        clock: Clock,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        import httpx2

        self._settings = settings
        self._router = router
        self._clients = clients
        self._health = health
        self._policy = policy
        self._clock = clock
        self._sleep = sleep  # the waits for our own pacing: a seam, so tests move a ManualClock
        self._timeout = httpx2.Timeout

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
    ) -> tuple[T, Route]:
        """Attempts until one succeeds; ``call.attempts`` holds every attempt however it ends.
        ``started`` is the call's start on ``clock.monotonic``."""
        waiter = self._health.before_call()
        if waiter is not None:
            await self._health.first_read(waiter)
        settings, router, clock, policy = self._settings, self._router, self._clock, self._policy
        deadline = started + deadline_s

        def record(attempt: Attempt) -> None:
            call.attempts.append(attempt)
            on_attempt(attempt)

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
            region, dep = route.region, route.deployment
            call.tried.add(id(route))
            if not region.circuit.acquire(now):  # pick checked availability; cannot normally fail
                continue
            dep.budget.charge(now, cost, lane)
            charged_at = call.sent_at = now  # a stream's later failure is judged by this time
            dep.path = path
            timeout = None
            if remaining < settings.read_timeout_s:
                timeout = self._timeout(
                    remaining, connect=min(settings.connect_timeout_s, remaining)
                )
            body = dict(base, model=dep.config.deployment)
            client = self._clients.get(region.config)
            sent_at = clock.monotonic()
            try:
                async with asyncio.timeout(remaining + 0.05):
                    value, headers = await send(client, path, body, timeout)
            except ClassifiedFailure as failure:
                if failure.kind in _NOT_COUNTED:
                    dep.budget.refund(charged_at, cost, lane)
                attempt = Attempt(
                    *route.names,
                    failure.kind,
                    failure.status,
                    (clock.monotonic() - sent_at) * 1000.0,
                    failure.detail,
                )
                call.attempts.append(attempt)
                try:  # observers hear of the attempt also when the policy ends the call
                    source = policy.after_failure(route, failure, call, sent_at=charged_at)
                    if source is not None:
                        attempt = call.attempts[-1] = replace(attempt, cooldown_source=source)
                finally:
                    on_attempt(attempt)
                continue
            except TimeoutError:
                region.circuit.release()
                dep.budget.refund(charged_at, cost, lane)
                record(
                    Attempt(
                        *route.names,
                        FailureKind.TIMEOUT,
                        None,
                        (clock.monotonic() - sent_at) * 1000.0,
                        "call deadline",
                    )
                )
                raise deadline_exceeded(alias, deadline_s, call.attempts) from None
            except BaseException:
                region.circuit.release()
                raise
            now = clock.now()
            policy.region_answered(region, now, sent_at=charged_at)
            dep.budget.observe(charged_at, now, headers)
            record(Attempt(*route.names, None, 200, (clock.monotonic() - sent_at) * 1000.0))
            return value, route


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
