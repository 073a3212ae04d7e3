"""A lease's two parts match: tokens come with requests to spend them, and requests leased for
later windows come with tokens to pay for them (``_matched``), so one instance never sits on
one part while the others are refused it; a lease left unspent when its window ends is counted
(``expired_tokens`` / ``expired_requests``), the figure that shows leased-but-unused quota."""

from __future__ import annotations

from shared.aoai import ManualClock
from shared.pacing import InMemoryLedgerStore
from shared.pacing._quota_ledger import (
    BACKLOG,
    INTERACTIVE,
    DeploymentQuotaLedger,
    LedgerConfig,
    _matched,
)

KEY = "deployment/r/d"
MINUTE0 = 600_000.0  # a token and a request window boundary (60 s minute, phase 0)


def test_tokens_are_cut_to_what_the_requests_can_spend():
    ahead: dict[int, int] = {}
    # 3 calls' requests held or granted, 100 tokens a call: 300 tokens at most, not 5,000.
    assert _matched(5_000, ahead, have_tokens=0, calls=3, per_call=100.0, floor=100) == 300
    # Tokens already held count: 250 held, so 50 more pay for the third call.
    assert _matched(5_000, ahead, have_tokens=250, calls=3, per_call=100.0, floor=0) == 50
    # What the waiting call is missing is granted whatever the requests say.
    assert _matched(5_000, ahead, have_tokens=0, calls=0, per_call=100.0, floor=700) == 700


def test_requests_for_later_windows_are_cut_to_what_the_tokens_can_pay_for():
    ahead = {11: 10, 12: 10, 13: 10}
    # 1,500 tokens pay for 15 calls: the current window's 5 and 10 more, the farthest cut first.
    tokens = _matched(1_500, ahead, have_tokens=0, calls=5, per_call=100.0, floor=100)
    assert tokens == 1_500
    assert ahead == {11: 10}
    ahead = {11: 10, 12: 10}
    _matched(1_200, ahead, have_tokens=0, calls=5, per_call=100.0, floor=0)
    assert ahead == {11: 7}  # 12 calls: 5 now, 7 in the next window


def test_a_matched_lease_is_left_alone():
    ahead = {11: 10, 12: 10}
    assert _matched(2_500, ahead, have_tokens=0, calls=5, per_call=100.0, floor=0) == 2_500
    assert ahead == {11: 10, 12: 10}


async def test_a_lease_left_unspent_when_its_window_ends_is_counted_as_expired():
    clock = ManualClock(start=MINUTE0 + 1.0)
    ledger = DeploymentQuotaLedger(
        InMemoryLedgerStore(), instance="a", now=clock.now, config=LedgerConfig(reserve=0.0)
    )
    quota = ledger.attach(KEY, tpm=60_000, rpm=600, minute_s=60.0)
    for _ in range(20):  # a rate of 4 calls a second, 100 tokens each
        now = clock.now()
        assert await quota.top_up(now, 100, BACKLOG)
        quota.charge(now, 100, BACKLOG)
        clock.advance(0.25)
    stats = ledger.stats
    leased, spent = stats["leased_tokens"], 20 * 100
    held = quota.report(clock.now())["leases"][BACKLOG]
    assert held is not None and held["tokens"] == leased - spent > 0
    clock.advance(MINUTE0 + 61.0 - clock.now())  # the token window is over
    assert quota.needs_lease(clock.now(), 100, BACKLOG)
    assert stats["expired_tokens"] == leased - spent
    assert stats["expired_backlog_tokens"] == leased - spent  # all of it the backlog lane's
    assert stats["expired_requests"] == stats["leased_requests"] - 20


async def test_an_interactive_lease_left_unspent_is_expired_but_not_the_backlogs():
    clock = ManualClock(start=MINUTE0 + 1.0)
    ledger = DeploymentQuotaLedger(InMemoryLedgerStore(), instance="a", now=clock.now)
    quota = ledger.attach(KEY, tpm=60_000, rpm=600, minute_s=60.0)
    for _ in range(20):
        now = clock.now()
        assert await quota.top_up(now, 100, INTERACTIVE)
        quota.charge(now, 100, INTERACTIVE)
        clock.advance(0.25)
    clock.advance(MINUTE0 + 61.0 - clock.now())
    assert quota.needs_lease(clock.now(), 100, INTERACTIVE)
    assert ledger.stats["expired_tokens"] > 0
    assert ledger.stats["expired_backlog_tokens"] == 0


def _quota(store, clock: ManualClock, instance: str, **config):
    ledger = DeploymentQuotaLedger(
        store, instance=instance, now=clock.now, config=LedgerConfig(**config)
    )
    return ledger, ledger.attach(KEY, tpm=60_000, rpm=600, minute_s=60.0)  # 100 requests/window


async def _burst(quota, clock: ManualClock, calls: int, cost: int, lane: str) -> None:
    """``calls`` calls as fast as the lane's leases allow, 10 ms apart."""
    for _ in range(calls):
        now = clock.now()
        assert await quota.top_up(now, cost, lane)
        assert not quota.needs_lease(clock.now(), cost, lane)
        quota.charge(clock.now(), cost, lane)
        clock.advance(0.01)


async def _burst_then_hold(fair_share: float) -> tuple[dict, dict]:
    """Eight instances active in the row; one of them has just run a burst of 40 backlog calls.
    What does its next lease leave it holding?"""
    clock = ManualClock(start=MINUTE0 + 1.0)
    store = InMemoryLedgerStore()
    for n in range(7):  # the other seven: one call each, so the row lists them as active
        _, other = _quota(store, clock, f"other{n}", reserve=0.0, fair_share=fair_share)
        await _burst(other, clock, 1, 100, BACKLOG)
    _, quota = _quota(store, clock, "busy", reserve=0.0, fair_share=fair_share)
    await _burst(quota, clock, 40, 500, BACKLOG)  # 20,000 tokens in 0.4 s: a burst
    held = quota.report(clock.now())["leases"][BACKLOG]
    row, _ = await store.read(KEY)
    return held, {"tokens": row.tokens, "requests": row.requests, "ahead": row.request_counts}


async def test_a_backlog_lease_holds_at_most_twice_an_equal_split_of_the_window():
    held, row = await _burst_then_hold(2.0)
    # 60,000 tokens and 100 requests a window among 8 active instances: 2 x 1/8 at most held.
    assert held["tokens"] <= 2 * 60_000 // 8
    assert held["requests"] <= 2 * 100 // 8
    assert held["requests_ahead"] <= 5 * (2 * 100 // 8)
    # ... which left the other instances most of the window (the burst itself is spent).
    assert row["tokens"] - 40 * 500 - 7 * 100 <= 2 * 60_000 // 8
    # Without the cap the burst's rate leases the window's rest for this one instance.
    uncapped, _ = await _burst_then_hold(0.0)
    assert uncapped["tokens"] > 2 * held["tokens"]


async def test_the_cap_is_on_holding_not_on_use():
    clock = ManualClock(start=MINUTE0 + 1.0)
    store = InMemoryLedgerStore()
    for n in range(3):
        _, other = _quota(store, clock, f"other{n}", reserve=0.0)
        await _burst(other, clock, 1, 100, BACKLOG)
    ledger, quota = _quota(store, clock, "busy", reserve=0.0)
    # 4 active: at most half of the window held at once, yet 80 % of its tokens get spent here.
    await _burst(quota, clock, 96, 500, BACKLOG)
    assert ledger.stats["leases"] >= 2


async def test_a_sparse_lane_leases_nothing_for_later_windows():
    clock = ManualClock(start=MINUTE0 + 1.0)
    _, quota = _quota(InMemoryLedgerStore(), clock, "a")
    for _ in range(6):  # one interactive call every 15 s: under one a request window
        await _burst(quota, clock, 1, 100, "interactive")
        clock.advance(15.0 - 0.01)
    held = quota.report(clock.now())["leases"]["interactive"]
    assert held is not None and held["requests_ahead"] == 0
    # A dense lane still leases its later windows ahead (one lease, not one per window).
    clock = ManualClock(start=MINUTE0 + 1.0)
    _, quota = _quota(InMemoryLedgerStore(), clock, "b")
    for _ in range(30):
        await _burst(quota, clock, 1, 100, "interactive")
        clock.advance(0.25 - 0.01)
    held = quota.report(clock.now())["leases"]["interactive"]
    assert held is not None and held["requests_ahead"] > 0
