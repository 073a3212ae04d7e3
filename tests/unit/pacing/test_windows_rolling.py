"""Pacing while the upstream windows' phase is unknown (``DeploymentBudget``, a clock moved by
hand, the ledger on an in-memory row): the upstream may count over a rolling window, so no span
of the request window's length (plus the arrival margin) admits more than its limit, also at
the edges of our own fixed windows, where the ledger's leases start afresh; once a response's
reset header gives the phase, the ledger's fixed windows alone admit, as before."""

from __future__ import annotations

import asyncio

from shared.aoai import ManualClock
from shared.pacing import InMemoryLedgerStore
from shared.pacing._quota_ledger import INTERACTIVE, DeploymentQuotaLedger, LedgerConfig
from shared.pacing._windows import DeploymentBudget, arrival_margin
from shared.settings import DeploymentConfig

KEY = "deployment/r/d"
COST = 50
MINUTE = 60.0
SPAN = MINUTE / 6  # the request window: 10 s
LIMIT = 10  # rpm 60: 10 requests per 10 s
START = 600_003.0  # 3 s into one of our own request windows (phase 0)


def _config() -> DeploymentConfig:
    return DeploymentConfig(deployment="d", tpm=1_000_000, rpm=60)


async def _saturate(budget: DeploymentBudget, clock: ManualClock, seconds: float) -> list[float]:
    """A queue that never empties: each call is admitted as soon as the budget lets it through
    (leasing from the ledger first when it must, as the call loop does). Admission times."""
    admitted: list[float] = []
    end = clock.now() + seconds
    while clock.now() < end:
        now = clock.now()
        at = budget.available_at(now, COST)
        if at > now:
            clock.advance(at - now)
            continue
        if budget.needs_lease(now, COST):
            assert budget.shared is not None
            if not await budget.shared.top_up(now, COST, INTERACTIVE):
                clock.advance(0.01)
            continue
        budget.charge(now, COST)
        admitted.append(now)
        clock.advance(0.01)  # the next call of the queue
    return admitted


def _most_in_a_span(times: list[float], span: float) -> int:
    """The most admissions any half-open interval of ``span`` seconds holds."""
    best = 0
    for i, start in enumerate(times):
        best = max(best, sum(1 for t in times[i:] if t < start + span))
    return best


def _with_ledger(clock: ManualClock) -> DeploymentBudget:
    ledger = DeploymentQuotaLedger(
        InMemoryLedgerStore(), instance="a", now=clock.now, config=LedgerConfig()
    )
    quota = ledger.attach(KEY, tpm=1_000_000, rpm=60, minute_s=MINUTE)
    return DeploymentBudget(_config(), MINUTE, quota)


async def test_no_burst_at_our_own_window_edge_while_the_phase_is_unknown():
    clock = ManualClock(start=START)
    budget = _with_ledger(clock)
    admitted = await _saturate(budget, clock, 6 * SPAN)
    # Any 10 s (and the margin a request may take to arrive) holds the limit at most ...
    assert _most_in_a_span(admitted, SPAN + arrival_margin(SPAN)) <= LIMIT
    # ... and the rate is close to it: no window lost but the margin's
    assert len(admitted) >= 5 * LIMIT, len(admitted)


async def test_a_learned_phase_keeps_the_ledgers_fixed_windows():
    clock = ManualClock(start=START)
    budget = _with_ledger(clock)
    budget.observe(START, START, {"x-ratelimit-reset-requests": "7s"})  # ends at 600,010
    assert budget.phase_known
    admitted = await _saturate(budget, clock, 6 * SPAN)
    # each of the upstream's fixed windows holds its limit, spent at its start: two windows'
    # worth within one span across an edge, as a fixed-window upstream allows
    assert _most_in_a_span(admitted, SPAN) == 2 * LIMIT
    assert len(admitted) >= 6 * LIMIT


async def test_without_a_ledger_an_entry_counts_for_the_span_and_the_margin():
    clock = ManualClock(start=START)
    budget = DeploymentBudget(_config(), MINUTE)
    admitted = await _saturate(budget, clock, 6 * SPAN)
    margin = arrival_margin(SPAN)
    assert _most_in_a_span(admitted, SPAN + margin) <= LIMIT
    assert admitted[LIMIT] - admitted[0] >= SPAN + margin
    budget.observe(clock.now(), clock.now(), {"x-ratelimit-reset-tokens": "12s"})
    later = await _saturate(budget, clock, 3 * SPAN)
    assert later[LIMIT] - later[0] < SPAN + margin  # a fixed-window upstream: no margin


async def test_two_instances_on_one_row_stay_within_the_limit_over_any_span():
    """Each instance paces its rolling windows at an equal split among the row's active
    instances: their sum over any span is within the limit, also across our window edges."""
    clock = ManualClock(start=START)
    store = InMemoryLedgerStore()
    budgets = []
    for instance in ("a", "b"):
        ledger = DeploymentQuotaLedger(
            store, instance=instance, now=clock.now, config=LedgerConfig()
        )
        quota = ledger.attach(KEY, tpm=1_000_000, rpm=60, minute_s=MINUTE)
        budgets.append(DeploymentBudget(_config(), MINUTE, quota))
    admitted: list[float] = []
    end = clock.now() + 15 * SPAN  # past a token window: leases about once per minute
    while clock.now() < end:
        now = clock.now()
        for budget in budgets:  # each instance's queue never empties
            if budget.available_at(now, COST) > now:
                continue
            if budget.needs_lease(now, COST):
                assert budget.shared is not None
                await budget.shared.top_up(now, COST, INTERACTIVE)
                continue
            budget.charge(now, COST)
            admitted.append(now)
        await asyncio.sleep(0)  # the members' reads the budgets started
        clock.advance(0.01)
    assert _most_in_a_span(admitted, SPAN + arrival_margin(SPAN)) <= LIMIT
    assert len(admitted) >= 12 * LIMIT, len(admitted)
