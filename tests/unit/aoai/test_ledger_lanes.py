"""The ledger's lanes on one deployment (in-memory row, a clock moved by hand): the backlog
leaves the interactive reserve, released as the window runs out; interactive may take it all."""

from __future__ import annotations

from shared.aoai import InMemoryLedgerStore, ManualClock
from shared.aoai._ledger import BACKLOG, INTERACTIVE, LedgerConfig, QuotaLedger

COST = 100


def _quota(clock: ManualClock, store: InMemoryLedgerStore, instance: str = "a"):
    ledger = QuotaLedger(store, instance=instance, now=clock.now, config=LedgerConfig())
    return ledger.attach("deployment/r/d", tpm=6000, rpm=6000, minute_s=60.0)


async def _drain(quota, clock: ManualClock, lane: str) -> int:
    """Lease and spend one call at a time until the ledger refuses; the calls spent."""
    spent = 0
    while await quota.top_up(clock.now(), COST, lane) or not quota.needs_lease(
        clock.now(), COST, lane
    ):
        assert quota.available_at(clock.now(), COST, lane) == clock.now()
        quota.charge(clock.now(), COST, lane)
        spent += 1
        assert spent <= 60
    return spent


async def test_backlog_leaves_the_reserve_and_interactive_takes_the_rest():
    clock = ManualClock(start=600_000.0 + 1.0)  # 1 s into a token window (phase 0)
    store = InMemoryLedgerStore()
    quota = _quota(clock, store)
    backlog = await _drain(quota, clock, BACKLOG)
    # 6,000 tokens; the reserve is 20 % x 59/60 of the window still to run: 1,180 tokens kept.
    assert backlog == (6000 - int(0.2 * 6000 * 59 / 60)) // COST == 48
    assert quota.available_at(clock.now(), COST, BACKLOG) > clock.now()  # parked until later
    interactive = await _drain(quota, clock, INTERACTIVE)
    # The whole window less what a lease holds below one call's cost; never more.
    assert 59 <= backlog + interactive <= 60
    row, _ = await store.read("deployment/r/d")
    assert row.tokens <= 6000 and row.backlog_tokens <= 6000 - 1180


async def test_the_reserve_is_released_as_the_window_runs_out():
    clock = ManualClock(start=600_000.0 + 1.0)
    store = InMemoryLedgerStore()
    quota = _quota(clock, store)
    early = await _drain(quota, clock, BACKLOG)
    clock.advance(54.0)  # 5 s left: the reserve is down to its floor (a tenth)
    late = await _drain(quota, clock, BACKLOG)
    assert early + late in (57, 58)  # (6,000 - 120) // 100, less a partial lease at most


async def test_two_instances_never_lease_more_than_the_window_together():
    clock = ManualClock(start=600_000.0 + 1.0)
    store = InMemoryLedgerStore()
    first, second = _quota(clock, store, "a"), _quota(clock, store, "b")
    total = 0
    for _ in range(40):
        for quota in (first, second):
            if await quota.top_up(clock.now(), COST, INTERACTIVE) and not quota.needs_lease(
                clock.now(), COST, INTERACTIVE
            ):
                quota.charge(clock.now(), COST, INTERACTIVE)
                total += 1
    assert 58 <= total <= 60  # less what each lease holds below one call's cost
    row, _ = await store.read("deployment/r/d")
    assert row.tokens <= 6000 and set(row.members) == {"a", "b"}


async def test_closing_an_instance_returns_its_unused_leases_to_the_row():
    """Scale-in: an instance that closes leaves what it leased but did not spend to the others,
    rather than holding it to the window's end."""
    clock = ManualClock(start=600_000.0 + 1.0)
    store = InMemoryLedgerStore()
    ledger = QuotaLedger(store, instance="a", now=clock.now, config=LedgerConfig())
    quota = ledger.attach("deployment/r/d", tpm=6000, rpm=6000, minute_s=60.0)
    for _ in range(3):  # a steady rate, so the next lease is sized beyond one call
        assert await quota.top_up(clock.now(), COST, INTERACTIVE) or not quota.needs_lease(
            clock.now(), COST, INTERACTIVE
        )
        quota.charge(clock.now(), COST, INTERACTIVE)
    assert await quota.top_up(clock.now(), COST, BACKLOG)  # a backlog lease, never spent
    row, _ = await store.read("deployment/r/d")
    assert row.tokens > 3 * COST and row.backlog_tokens > 0  # leased beyond what was spent
    await ledger.aclose()
    row, _ = await store.read("deployment/r/d")
    assert row.tokens == 3 * COST and row.backlog_tokens == 0  # only what was spent stays
    assert row.requests == 3
    assert ledger.stats["returns"] >= 1
