"""Request leases over several request windows (in-memory row, a clock moved by hand): a lease's
requests cover the current request window and the next ones up to the token window's end, so a
steady lane goes to the row about once per token window; no request window and no token window
is ever over-granted, with one instance or eight racing for the row; the backlog leaves the
reserve in later windows too; a close gives every window's unspent requests back; a row older
code wrote (no ``request_counts``) is read and leased from correctly."""

from __future__ import annotations

import asyncio
import math
import random
from collections import Counter

import pytest

from shared.aoai import ManualClock
from shared.pacing import InMemoryLedgerStore
from shared.pacing._ledger_store import LedgerRow, _from_entity, _to_entity
from shared.pacing._quota_ledger import BACKLOG, INTERACTIVE, DeploymentQuotaLedger, LedgerConfig

KEY = "deployment/r/d"
COST = 100
SPAN = 10.0  # the request window of a 60 s minute (phase 0)
MINUTE0 = 600_000.0  # a token and a request window boundary


def _ledger(store, clock: ManualClock, instance: str = "a", **config) -> DeploymentQuotaLedger:
    return DeploymentQuotaLedger(
        store, instance=instance, now=clock.now, config=LedgerConfig(**config)
    )


async def _call(quota, clock: ManualClock, cost: int, lane: str) -> bool:
    """One call as the router makes it: a lease when needed, then the charge if covered."""
    now = clock.now()
    if quota.available_at(now, cost, lane) > now:
        return False
    if not await quota.top_up(now, cost, lane) or quota.needs_lease(clock.now(), cost, lane):
        return False
    quota.charge(clock.now(), cost, lane)
    return True


async def _steady_leases_per_minute(horizon: int) -> list[int]:
    clock = ManualClock(start=MINUTE0)
    store = InMemoryLedgerStore()
    ledger = _ledger(store, clock, request_horizon=horizon)
    quota = ledger.attach(KEY, tpm=60_000, rpm=6_000, minute_s=60.0)  # 1,000 requests a window
    per_minute = []
    for minute in range(4):
        before = ledger.stats["leases"]
        for window in range(6):
            for call in range(20):  # a call every 0.4 s from 1 s into the window to 8.6 s
                at = MINUTE0 + minute * 60.0 + window * SPAN + 1.0 + 0.4 * call
                clock.advance(at - clock.now())
                assert await _call(quota, clock, COST, BACKLOG)
            row, _ = await store.read(KEY)
            assert row.requests <= 1000 and row.tokens <= 60_000
        per_minute.append(ledger.stats["leases"] - before)
    return per_minute


async def test_a_steady_lane_leases_about_once_per_token_window():
    ahead = await _steady_leases_per_minute(6)
    one = await _steady_leases_per_minute(1)  # today's behaviour: a lease per request window
    # The first minute ramps up from no rate; afterwards one lease a minute (a top-up at most).
    assert all(n <= 2 for n in ahead[1:]), ahead
    assert all(n >= 6 for n in one[1:]), one
    assert sum(ahead[1:]) * 3 <= sum(one[1:]), (ahead, one)


async def test_moving_into_the_next_request_window_needs_no_new_lease():
    clock = ManualClock(start=MINUTE0 + 1.0)
    store = InMemoryLedgerStore()
    ledger = _ledger(store, clock)
    quota = ledger.attach(KEY, tpm=60_000, rpm=6_000, minute_s=60.0)
    for _ in range(30):  # a rate of 3 a second in the first window
        assert await _call(quota, clock, COST, INTERACTIVE)
        clock.advance(0.25)
    row, _ = await store.read(KEY)
    later = {w: n for w, n in row.request_counts.items() if w > row.request_window}
    assert sorted(later) == [row.request_window + k for k in range(1, 6)]  # the minute's rest
    leases = ledger.stats["leases"]
    clock.advance(MINUTE0 + SPAN + 1.0 - clock.now())  # into the next request window
    for _ in range(later[row.request_window + 1]):
        assert await _call(quota, clock, COST, INTERACTIVE)
    assert ledger.stats["leases"] == leases  # spent from the lease's next-window requests
    # A call may spend a window's requests only in its guarded span: not in the end guard.
    clock.advance(MINUTE0 + 2 * SPAN - 0.1 - clock.now())
    assert quota.available_at(clock.now(), COST, INTERACTIVE) > clock.now()


class YieldingStore:
    """The in-memory store, yielding to other tasks between a read and a write, so concurrent
    leases race for the row's ETag (and lose it) as instances do on a real table."""

    def __init__(self) -> None:
        self.inner = InMemoryLedgerStore()

    async def read(self, key: str):
        found = await self.inner.read(key)
        await asyncio.sleep(0)
        return found

    async def write(self, key: str, row: LedgerRow, etag: str | None) -> str:
        await asyncio.sleep(0)
        return await self.inner.write(key, row, etag)

    async def aclose(self) -> None:
        return None


async def _no_wait(seconds: float) -> None:
    await asyncio.sleep(0)


async def _instances_never_overrun(count: int, seed: int) -> tuple[Counter, Counter, int]:
    rng = random.Random(seed)
    clock = ManualClock(start=MINUTE0 + 0.3)
    store = YieldingStore()
    ledgers = [
        DeploymentQuotaLedger(
            store,
            instance=f"i{n}",
            now=clock.now,
            config=LedgerConfig(),
            sleep=_no_wait,
            rand=rng.random,
        )
        for n in range(count)
    ]
    quotas = [ledger.attach(KEY, tpm=20_000, rpm=600, minute_s=60.0) for ledger in ledgers]
    requests: Counter[int] = Counter()  # request window -> calls charged in it
    tokens: Counter[int] = Counter()  # token window -> tokens charged in it
    charged: list[tuple[int, float, int, str]] = []

    async def one(n: int) -> None:
        quota = quotas[n]
        cost = rng.choice((40, 90, 150, 300))
        lane = INTERACTIVE if rng.random() < 0.4 else BACKLOG
        at = clock.now()
        if await _call(quota, clock, cost, lane):
            slot = quota._slot(at)
            assert slot.request_window == math.floor(at / SPAN)
            assert slot.token_window == math.floor(at / 60.0)
            requests[slot.request_window] += 1
            tokens[slot.token_window] += cost
            charged.append((n, at, cost, lane))

    while clock.now() < MINUTE0 + 200.0:
        busy = rng.sample(range(count), rng.randint(1, count))
        await asyncio.gather(*(one(n) for n in busy for _ in range(rng.randint(1, 3))))
        if charged and rng.random() < 0.05:  # a call Azure did not count: refunded
            n, at, cost, lane = charged.pop(rng.randrange(len(charged)))
            if quotas[n]._slot(at).request_window == quotas[n]._slot(clock.now()).request_window:
                quotas[n].refund(at, cost, lane)
                if quotas[n]._slot(clock.now()).token_window == math.floor(at / 60.0):
                    requests[math.floor(at / SPAN)] -= 1
                    tokens[math.floor(at / 60.0)] -= cost
            await asyncio.gather(*(ledger.drain() for ledger in ledgers))
        clock.advance(rng.uniform(0.02, 0.4))
    conflicts = sum(ledger.stats["conflicts"] for ledger in ledgers)
    return requests, tokens, conflicts


async def test_instances_racing_for_the_row_never_overrun_a_window():
    for count, seed in ((2, 1), (8, 2), (8, 3)):
        requests, tokens, conflicts = await _instances_never_overrun(count, seed)
        assert max(requests.values()) <= 100, (count, requests)  # 600 RPM: 100 a window
        assert max(tokens.values()) <= 20_000, (count, tokens)
        assert conflicts > 0  # they did race for the row
        assert max(requests.values()) >= 80 or max(tokens.values()) >= 16_000  # and used it


async def test_the_backlog_leaves_the_reserve_in_later_windows_too():
    clock = ManualClock(start=MINUTE0 + 1.0)
    store = InMemoryLedgerStore()
    backlog_ledger = _ledger(store, clock, "a")
    backlog = backlog_ledger.attach(KEY, tpm=600_000, rpm=600, minute_s=60.0)  # 100 a window
    interactive = _ledger(store, clock, "b").attach(KEY, tpm=600_000, rpm=600, minute_s=60.0)
    spent = 0
    while await _call(backlog, clock, 10, BACKLOG):  # as fast as the window lets it
        spent += 1
        clock.advance(0.01)
    # The current window's reserve shrinks as it runs (0.8 s at most here): 18, then 16.
    assert 100 - 18 <= spent <= 100 - 16
    # The next window: the rate seen now asks for more than a window, so each later window
    # is leased up to the backlog's cap there: the limit less the whole reserve.
    clock.advance(MINUTE0 + SPAN + 1.0 - clock.now())
    while await _call(backlog, clock, 10, BACKLOG):
        clock.advance(0.01)
    row, _ = await store.read(KEY)
    later = {w: n for w, n in row.request_counts.items() if w > row.request_window}
    assert later and max(later.values()) == 80 == int(0.8 * 100)
    # The window after: the backlog spends its lease's 80 with no new lease; interactive
    # callers take the reserve, and not one request more.
    leases = backlog_ledger.stats["leases"]
    clock.advance(MINUTE0 + 2 * SPAN + 1.0 - clock.now())
    used = sum([await _call(backlog, clock, 10, BACKLOG) for _ in range(80)])
    assert used == 80 and backlog_ledger.stats["leases"] == leases
    taken = 0
    while await _call(interactive, clock, 10, INTERACTIVE):
        taken += 1
        assert taken <= 20
    assert taken == 20
    assert not await _call(backlog, clock, 10, BACKLOG)  # the window is full
    row, _ = await store.read(KEY)
    assert row.requests == 100


async def test_closing_gives_back_every_window_and_an_old_row_is_read_correctly():
    clock = ManualClock(start=MINUTE0 + 1.0)
    store = InMemoryLedgerStore()
    # A row older code wrote: the current request window's count only, no request_counts.
    await store.write(
        KEY,
        LedgerRow(token_window=10_000, tokens=1_000, request_window=60_000, requests=95),
        None,
    )
    ledger = _ledger(store, clock)
    quota = ledger.attach(KEY, tpm=600_000, rpm=600, minute_s=60.0)  # 100 requests a window
    spent = 0
    while await _call(quota, clock, 10, INTERACTIVE):
        spent += 1
        clock.advance(0.05)
        assert spent <= 100
    assert spent == 5  # what older code left in the current window, no more
    clock.advance(MINUTE0 + 3.0 - clock.now())
    row, _ = await store.read(KEY)
    assert row.requests == 100 and row.tokens >= 1_000 + 5 * 10
    later = {w: n for w, n in row.request_counts.items() if w > 60_000}
    assert later and all(n > 0 for n in later.values())  # leased ahead at the rate seen
    await ledger.aclose()
    row, _ = await store.read(KEY)
    assert row.requests == 100 and row.tokens == 1_000 + 5 * 10  # spent: stays counted
    assert {w: n for w, n in row.request_counts.items() if w > 60_000} == {}  # all back
    assert ledger.stats["returned_requests"] == sum(later.values())


async def test_a_request_phase_move_forgets_the_windows_leased_ahead():
    """Conservative: the row still counts the forgotten windows until they pass (under-use)."""
    clock = ManualClock(start=MINUTE0 + 1.0)
    store = InMemoryLedgerStore()
    ledger = _ledger(store, clock)
    quota = ledger.attach(KEY, tpm=600_000, rpm=600, minute_s=60.0)
    for _ in range(20):
        assert await _call(quota, clock, 10, INTERACTIVE)
        clock.advance(0.1)
    assert await quota.top_up(clock.now(), 10, INTERACTIVE)
    lease = quota._leases[INTERACTIVE]
    assert lease is not None and lease.ahead
    before, _ = await store.read(KEY)
    quota.observe(clock.now(), clock.now(), {"x-ratelimit-reset-requests": "3s"})  # moved
    assert lease.ahead == {}
    row, _ = await store.read(KEY)
    assert row.request_counts == before.request_counts  # the row keeps counting them


def test_the_table_entity_keeps_the_counts_and_an_old_entity_reads_as_before():
    row = LedgerRow(request_window=7, requests=3, request_counts={7: 3, 8: 11, 9: 4})
    again = _from_entity(_to_entity(KEY, row))
    assert again.request_counts == {7: 3, 8: 11, 9: 4} and again.requests == 3
    old = _to_entity(KEY, row)
    del old["request_counts"]
    legacy = _from_entity(old)
    assert legacy.request_counts == {} and (legacy.request_window, legacy.requests) == (7, 3)


def _reset_headers(seconds: float) -> dict[str, str]:
    return {"x-ratelimit-reset-tokens": f"{seconds:.3f}s"}


async def test_a_phase_refined_at_a_window_edge_never_carries_the_last_windows_count():
    """The phase estimate creeps later by milliseconds as responses come in, and the first lease
    after such a move numbers the row's windows anew. Before, at a token window's start, that
    carried the previous window's count into the new window, which then refused the backlog for
    its whole length (the scale-out benchmark's stalled windows)."""
    clock = ManualClock(start=MINUTE0 + 1.0)
    store = InMemoryLedgerStore()
    ledger = _ledger(store, clock)
    quota = ledger.attach(KEY, tpm=60_000, rpm=6_000, minute_s=60.0)
    quota.observe(clock.now(), clock.now(), _reset_headers(59.0))  # phase 0
    assert await _call(quota, clock, 40_000, BACKLOG)
    clock.advance(58.0)  # late in the window: a response says it ends 3 ms later than thought
    quota.observe(clock.now(), clock.now(), _reset_headers(1.003))
    assert quota.token_phase == pytest.approx(0.003)
    clock.advance(MINUTE0 + 60.6 - clock.now())  # the next window, past its start guard
    assert await _call(quota, clock, 40_000, BACKLOG)  # refused before: the row said 80,000
    row, _ = await store.read(KEY)
    assert row.tokens == 40_000


async def test_a_phase_that_crosses_a_window_edge_carries_the_count_within_the_window():
    """When the refined phase crosses the edge of the numbering (59.998 s -> 0.002 s), the same
    instant's window index moves by one: the row's count moves with it, never dropped (with it
    dropped, the second lease would fit)."""
    clock = ManualClock(start=MINUTE0 + 11.0)  # not at a request window's start
    store = InMemoryLedgerStore()
    ledger = _ledger(store, clock)
    quota = ledger.attach(KEY, tpm=60_000, rpm=6_000, minute_s=60.0)
    quota.observe(clock.now(), clock.now(), _reset_headers(48.998))  # phase 59.998
    assert await _call(quota, clock, 40_000, BACKLOG)
    before, _ = await store.read(KEY)
    clock.advance(5.0)
    quota.observe(clock.now(), clock.now(), _reset_headers(44.002))  # phase 0.002
    assert quota.token_phase == pytest.approx(0.002)
    clock.advance(5.0)
    assert not await _call(quota, clock, 20_000, BACKLOG)  # the 40,000 still count
    assert ledger.stats["refusals"] == 1
    row, _ = await store.read(KEY)
    assert row.tokens == before.tokens == 40_000  # a refusal writes nothing


async def test_a_backlog_lease_holding_its_tokens_gets_a_request_past_the_backlog_token_cap():
    """Interactive leases may take a window's tokens past the backlog's cap. A backlog lease that
    already holds this call's tokens and lacks only a request must still get one: only a
    missing part has to be free. Before, it was refused and waited, tokens unspent, for the
    window to end (found in the scale-out benchmark's stalled windows)."""
    clock = ManualClock(start=MINUTE0 + 1.0)
    store = InMemoryLedgerStore()
    a = _ledger(store, clock, "a", request_horizon=1)
    b = _ledger(store, clock, "b", request_horizon=1)
    backlog = a.attach(KEY, tpm=60_000, rpm=6_000, minute_s=60.0)
    interactive = b.attach(KEY, tpm=60_000, rpm=6_000, minute_s=60.0)
    assert await _call(backlog, clock, COST, BACKLOG)
    # The lease holds tokens and no request for the next request window (as when the requests
    # it held for later windows were forgotten after the request phase moved).
    backlog._leases[BACKLOG].tokens = 5_000
    assert await _call(interactive, clock, 55_000, INTERACTIVE)  # past the backlog cap (~50,000)
    clock.advance(MINUTE0 + SPAN + 1.0 - clock.now())  # the next request window
    assert backlog.needs_lease(clock.now(), COST, BACKLOG)
    assert await _call(backlog, clock, COST, BACKLOG)
    row, _ = await store.read(KEY)
    assert row.tokens == 55_000 + COST  # the request came alone: no tokens past the cap
