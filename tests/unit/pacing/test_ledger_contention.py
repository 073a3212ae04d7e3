"""Contention on one ledger row (in-memory row, a clock moved by hand, the back-off's waits
recorded through the ledger's ``sleep`` seam, its jitter from an injected source): a lost
ETag race backs off with growing, jittered waits; the backlog backs off longer, gives up
sooner and holds, so interactive leases win the row; the waits never take a lease to its
timeout; an interactive lease never queues behind a backlog lease that is backing off."""

from __future__ import annotations

import asyncio
import itertools

import pytest

from shared.aoai import ManualClock
from shared.pacing import InMemoryLedgerStore
from shared.pacing._ledger_store import LedgerRow
from shared.pacing._quota_ledger import BACKLOG, INTERACTIVE, DeploymentQuotaLedger, LedgerConfig
from testpeers.gateway import RecordedSleeps

KEY = "deployment/r/d"
COST = 100
SPAN = 10.0  # the request window of a 60 s minute
START = 600_000.0 + 1.0  # 1 s into a token and a request window (phase 0)


class RivalStore:
    """The in-memory store with a rival instance: before each of this instance's next
    ``conflicts`` writes, the rival writes the row first, so the write's ETag is stale and the
    real store refuses it (``LedgerConflict``)."""

    def __init__(self, conflicts: int) -> None:
        self.inner = InMemoryLedgerStore()
        self.conflicts = conflicts
        self.rival_writes = 0

    async def read(self, key: str) -> tuple[LedgerRow | None, str | None]:
        return await self.inner.read(key)

    async def write(self, key: str, row: LedgerRow, etag: str | None) -> str:
        if self.conflicts > 0:
            self.conflicts -= 1
            current, current_etag = await self.inner.read(key)
            rival = current if current is not None else LedgerRow()
            rival.members["rival"] = 0.0
            await self.inner.write(key, rival, current_etag)
            self.rival_writes += 1
        return await self.inner.write(key, row, etag)

    async def aclose(self) -> None:
        return None


def _quota(store, clock: ManualClock, sleeps, jitter=(0.5,), config: LedgerConfig | None = None):
    draws = itertools.cycle(jitter)
    ledger = DeploymentQuotaLedger(
        store,
        instance="a",
        now=clock.now,
        config=config or LedgerConfig(),
        sleep=sleeps,
        rand=lambda: next(draws),
    )
    return ledger, ledger.attach(KEY, tpm=6000, rpm=6000, minute_s=60.0)


def _ceiling(lost: int, factor: float = 1.0) -> float:
    config = LedgerConfig()
    step = min(config.backoff_cap_fraction, config.backoff_fraction * 2 ** (lost - 1))
    return factor * step * SPAN


async def test_a_lost_race_backs_off_with_growing_jittered_waits():
    clock = ManualClock(start=START)
    store = RivalStore(conflicts=3)
    sleeps = RecordedSleeps(clock)
    ledger, quota = _quota(store, clock, sleeps, jitter=(0.0, 1.0, 0.5))
    assert await quota.top_up(clock.now(), COST, INTERACTIVE)
    assert not quota.needs_lease(clock.now(), COST, INTERACTIVE)  # leased on the 4th attempt
    # One wait per lost race: half to all of a ceiling that doubles, as the draws say.
    assert sleeps.waits == pytest.approx([_ceiling(1) * 0.5, _ceiling(2) * 1.0, _ceiling(3) * 0.75])
    assert sleeps.waits == sorted(sleeps.waits) and len(set(sleeps.waits)) == 3
    assert ledger.stats["conflicts"] == 3 and ledger.stats["backoffs"] == 3
    assert ledger.stats["backoff_s"] == pytest.approx(sum(sleeps.waits))
    assert store.rival_writes == 3
    row, _ = await store.read(KEY)
    assert row.tokens >= COST and row.requests >= 1 and "a" in row.members


async def test_the_backlog_backs_off_longer_gives_up_sooner_and_holds():
    config = LedgerConfig(timeout_s=10.0)  # the attempts bind before the time does
    lost = config.backlog_conflicts + 1  # one more than the backlog tries, fewer than interactive
    assert lost < config.max_conflicts

    clock = ManualClock(start=START)
    interactive_sleeps = RecordedSleeps(clock)
    _, interactive = _quota(RivalStore(lost), clock, interactive_sleeps, config=config)
    assert await interactive.top_up(clock.now(), COST, INTERACTIVE)  # outlasts the rival
    assert not interactive.needs_lease(clock.now(), COST, INTERACTIVE)

    clock = ManualClock(start=START)
    backlog_sleeps = RecordedSleeps(clock)
    store = RivalStore(lost)
    ledger, backlog = _quota(store, clock, backlog_sleeps, config=config)
    assert not await backlog.top_up(clock.now(), COST, BACKLOG)  # gave up
    assert ledger.stats["reads"] == config.backlog_conflicts
    assert ledger.stats["leases"] == 0
    # Its waits are longer, race for race, than the interactive lease's (within the budget).
    waits = backlog_sleeps.waits
    assert len(waits) == config.backlog_conflicts - 1
    for mine, theirs in zip(waits, interactive_sleeps.waits, strict=False):
        assert mine == pytest.approx(theirs * config.backlog_backoff_factor)
    # It holds: no new attempt (no storage call) until a tenth of the request window has passed.
    held_until = backlog.available_at(clock.now(), COST, BACKLOG)
    assert held_until == pytest.approx(clock.now() + SPAN / 10)
    reads = ledger.stats["reads"]
    assert not await backlog.top_up(clock.now(), COST, BACKLOG)
    assert ledger.stats["reads"] == reads
    clock.advance(held_until - clock.now())
    assert await backlog.top_up(clock.now(), COST, BACKLOG)  # the rival's last write, then it
    assert not backlog.needs_lease(clock.now(), COST, BACKLOG)


async def test_interactive_outlasts_the_backlog_on_a_row_that_keeps_changing():
    """A row others write on every attempt: a backlog lease stops after its few attempts, an
    interactive one keeps trying up to ``max_conflicts``."""
    config = LedgerConfig(timeout_s=10.0)
    attempts = {}
    for lane in (BACKLOG, INTERACTIVE):
        clock = ManualClock(start=START)
        ledger, quota = _quota(RivalStore(10_000), clock, RecordedSleeps(clock), config=config)
        assert not await quota.top_up(clock.now(), COST, lane)
        attempts[lane] = ledger.stats["writes"]
        assert ledger.stats["conflicts"] == attempts[lane]
    assert attempts == {BACKLOG: config.backlog_conflicts, INTERACTIVE: config.max_conflicts}


async def test_the_retries_stop_at_half_the_timeout():
    """However many races are lost, a lease stops retrying at half its timeout (a timeout counts
    as a storage failure; two in a row would send the deployment to the fallback share): it
    holds its lane instead, as when it loses every attempt."""
    config = LedgerConfig(timeout_s=2.0)
    clock = ManualClock(start=START)
    sleeps = RecordedSleeps(clock)
    ledger, quota = _quota(RivalStore(10_000), clock, sleeps, jitter=(1.0,), config=config)
    started = clock.now()
    assert not await quota.top_up(clock.now(), COST, INTERACTIVE)
    assert clock.now() - started == pytest.approx(config.timeout_s / 2)
    assert sum(sleeps.waits) == pytest.approx(config.timeout_s / 2)
    assert sleeps.waits[:4] == pytest.approx([_ceiling(n) for n in (1, 2, 3, 4)])
    assert sleeps.waits[-1] < _ceiling(5)  # cut short at the give-up time
    assert ledger.stats["reads"] == len(sleeps.waits) < config.max_conflicts
    assert ledger.stats["failures"] == 0 and ledger.usable(clock.now())
    assert quota.available_at(clock.now(), COST, INTERACTIVE) > clock.now()  # holds


class StalledWrites:
    """The in-memory store, except that writes never answer (``answer_reads``: reads do, as a
    slow, contended store's; else reads never answer either, as a store that is gone)."""

    def __init__(self, answer_reads: bool) -> None:
        self.inner = InMemoryLedgerStore()
        self.answer_reads = answer_reads

    async def read(self, key: str) -> tuple[LedgerRow | None, str | None]:
        if not self.answer_reads:
            await asyncio.Event().wait()
        return await self.inner.read(key)

    async def write(self, key: str, row: LedgerRow, etag: str | None) -> str:
        await asyncio.Event().wait()
        raise AssertionError("unreachable")

    async def aclose(self) -> None:
        return None


@pytest.mark.parametrize("answer_reads", [True, False], ids=["slow-store", "store-gone"])
async def test_a_lease_timeout_is_contention_while_storage_answers(answer_reads):
    """Two lease timeouts in a row send the deployment to the fallback share only when storage
    gave no answer at all; timeouts while it answers reads are a slow, contended store: the
    lane holds for a moment and the ledger stays in use. (The timeout is the lease's real one,
    half a second; both writes never answer, so it always fires, however busy the machine.)"""
    config = LedgerConfig(timeout_s=0.5)
    clock = ManualClock(start=START)
    sleeps = RecordedSleeps(clock)
    ledger, quota = _quota(StalledWrites(answer_reads), clock, sleeps, config=config)
    for _ in range(2):
        leased = await quota.top_up(clock.now(), COST, INTERACTIVE)
        clock.advance(1.0)  # past the hold
    if answer_reads:
        assert not leased and ledger.stats["slow_leases"] == 2 and ledger.stats["failures"] == 0
        assert ledger.usable(clock.now())
    else:
        assert ledger.stats["slow_leases"] == 0 and ledger.stats["failures"] == 2
        assert not ledger.usable(clock.now())  # the conservative share, for retry_s


async def test_an_interactive_lease_does_not_queue_behind_a_backlog_lease_backing_off():
    clock = ManualClock(start=START)
    store = RivalStore(conflicts=1)  # the backlog's first write loses
    release = asyncio.Event()
    waits: list[float] = []

    async def sleep(seconds: float) -> None:  # the backlog's back-off, held open by the test
        waits.append(seconds)
        await release.wait()

    ledger = DeploymentQuotaLedger(
        store, instance="a", now=clock.now, sleep=sleep, rand=lambda: 0.5
    )
    quota = ledger.attach(KEY, tpm=6000, rpm=6000, minute_s=60.0)
    backlog = asyncio.ensure_future(quota.top_up(clock.now(), COST, BACKLOG))
    for _ in range(100):
        if waits:
            break
        await asyncio.sleep(0)
    assert waits and not backlog.done()  # backing off, holding the backlog lane
    # The interactive lease goes to the row meanwhile and gets its slice.
    assert await asyncio.wait_for(quota.top_up(clock.now(), COST, INTERACTIVE), timeout=30)
    assert not quota.needs_lease(clock.now(), COST, INTERACTIVE)
    release.set()
    assert await asyncio.wait_for(backlog, timeout=30)
    assert not quota.needs_lease(clock.now(), COST, BACKLOG)
    row, _ = await store.read(KEY)
    assert row.backlog_tokens >= COST and row.tokens >= 2 * COST


async def test_a_steady_lane_leases_about_once_per_request_window():
    """A lease is sized for the lane's rate over the rest of the request window (tokens at least
    a slice), so a steady lane goes to the row about once per request window, not per slice
    (a slice is 3 s of a 60 s minute: three or four leases per 10 s request window)."""
    clock = ManualClock(start=START - 1.0)  # a window boundary (phase 0)
    store = InMemoryLedgerStore()
    ledger = DeploymentQuotaLedger(store, instance="a", now=clock.now, config=LedgerConfig())
    quota = ledger.attach(KEY, tpm=60_000, rpm=6_000, minute_s=60.0)  # 1,000 requests a window
    leases_by_window = []
    for window in range(4):
        before = ledger.stats["leases"]
        for call in range(20):  # a call every 0.4 s from 1 s into the window to 8.6 s
            at = START - 1.0 + window * SPAN + 1.0 + 0.4 * call
            clock.advance(at - clock.now())
            assert await quota.top_up(clock.now(), COST, BACKLOG)
            assert not quota.needs_lease(clock.now(), COST, BACKLOG)
            quota.charge(clock.now(), COST, BACKLOG)
        leases_by_window.append(ledger.stats["leases"] - before)
        row, _ = await store.read(KEY)
        assert row.requests <= 1000 and row.tokens <= 60_000
        assert row.backlog_tokens <= 60_000 - int(0.2 * 60_000 * 0.1)  # the reserve's floor
    # The first window ramps up from no rate; afterwards the rate covers the window.
    assert all(n <= 2 for n in leases_by_window[1:]), leases_by_window
    assert ledger.stats["leases"] <= leases_by_window[0] + 6


async def test_a_give_back_that_loses_every_race_keeps_the_lease():
    """Returning a lease backs off like an interactive lease; when it still loses (the row
    keeps changing until half the timeout), the lease stays this instance's, to spend."""
    clock = ManualClock(start=START)
    store = RivalStore(conflicts=0)
    sleeps = RecordedSleeps(clock)
    ledger, quota = _quota(store, clock, sleeps)
    assert await quota.top_up(clock.now(), COST, INTERACTIVE)
    row, _ = await store.read(KEY)
    leased = row.tokens
    store.conflicts = 10_000
    await quota.give_back(INTERACTIVE)
    assert sleeps.waits and ledger.stats["returns"] == 0 and ledger.stats["failures"] == 0
    assert not quota.needs_lease(clock.now(), COST, INTERACTIVE)  # still covered
    row, _ = await store.read(KEY)
    assert row.tokens == leased  # the row still counts it as leased: nothing double-granted
    store.conflicts = 0
    await quota.give_back(INTERACTIVE)  # the row calm again: it goes back
    row, _ = await store.read(KEY)
    assert ledger.stats["returns"] == 1 and row.tokens == 0
