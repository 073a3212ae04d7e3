"""The ledger's lease planner (``_lease_plan``), table by table: no store, no clock, no event
loop. Each case is the row as read, what the lane holds, its rates, lane and settings; the
expected plan is the part of its summary the case is about. The cases cover the ordinary
leases (a window's first lease, a steady lane, a sparse one, a top-up, the caps and the
reserve, the fair share) and each case a stall fix covered: a phase refined at a window edge
never carries the last window's count; a phase move of +-1 carries a count within its window;
a lease that holds its tokens and lacks a request is not refused by the backlog's token cap,
and when refused waits only for the missing part.

A 60 s quota minute throughout, phase 0 unless a case says otherwise: 60,000 tokens a minute,
1,000 requests per 10 s request window, both windows' guards 0.5 s.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import pytest

from shared.aoai._lease_plan import (
    BACKLOG,
    FULL,
    INTERACTIVE,
    ROW_AHEAD,
    Deployment,
    Granted,
    Holdings,
    LeasePlan,
    Phase,
    Rates,
    Reading,
    Rules,
    Windows,
    lane_rates,
    later_windows,
    merge_phase,
    plan_lease,
    plan_return,
    size_lease,
    slot_at,
)
from shared.aoai._ledger import LedgerConfig
from shared.aoai._ledger_store import LedgerRow

MINUTE0 = 600_000.0  # a token and a request window boundary: token window 10,000, request 60,000
T, R = 10_000, 60_000
WINDOWS = Windows(token_limit=60_000, request_limit=1_000, token_span=60.0, request_span=10.0)
KNOWN0 = Phase(0.0, 0.0, True)
_DEFAULTS = LedgerConfig()  # the settings' defaults: reserve 20 %, horizon 6, fair share 2
RULES = Rules(
    _DEFAULTS.reserve, _DEFAULTS.slice_fraction, _DEFAULTS.request_horizon, _DEFAULTS.fair_share
)
STEADY = Rates(tokens_per_s=200.0, requests_per_s=2.0, window_calls=20, steady=20.0)
LATER = {R + k: 20 for k in range(1, 6)}  # a steady lane's later windows at 1 s into a minute


def _row(**fields: Any) -> LedgerRow:
    """A row of the current windows (1 s into the minute), phase 0 known, unless told."""
    base: dict[str, Any] = {
        "token_window": T,
        "request_window": R,
        "phase_known": True,
    }
    return LedgerRow(**{**base, **fields})


@dataclass(frozen=True)
class Case:
    name: str
    expect: dict[str, Any]
    lane: str = INTERACTIVE
    at: float = MINUTE0 + 1.0
    cost: int = 100
    waiting: int = 1
    row: LedgerRow | None = None
    held: Holdings = field(default_factory=Holdings)
    rates: Rates = field(default_factory=Rates)
    phase: Phase = KNOWN0
    rules: Rules = RULES
    token_floor: tuple[int, int] = (-1, 0)
    request_floor: tuple[int, int] = (-1, 0)


def _plan(case: Case) -> LeasePlan:
    """As ``SharedQuota._lease`` does on its first read: size the lease at the slot the
    instance sees, then plan it against the row read at the same instant."""
    deployment = Deployment(WINDOWS, case.rules, "a")
    slot = slot_at(WINDOWS, case.phase, case.at)
    ask = size_lease(
        deployment,
        slot,
        lane=case.lane,
        now=case.at,
        cost=case.cost,
        waiting=case.waiting,
        held=case.held,
        rates=case.rates,
    )
    reading = Reading(
        case.row, case.phase, case.at, case.held, case.token_floor, case.request_floor
    )
    return plan_lease(deployment, ask, reading)


def _summary(plan: LeasePlan) -> dict[str, Any]:
    row, outcome = plan.row, plan.outcome
    out: dict[str, Any] = {
        "row_tokens": row.tokens,
        "row_backlog_tokens": row.backlog_tokens,
        "row_requests": row.requests,
        "row_token_window": row.token_window,
        "row_request_window": row.request_window,
        "row_counts": dict(row.request_counts),
        "members": sorted(row.members),
        "slot": (plan.slot.token_window, plan.slot.request_window),
    }
    if isinstance(outcome, Granted):
        out.update(
            outcome="granted",
            tokens=outcome.tokens,
            requests=outcome.requests,
            ahead=dict(outcome.ahead),
        )
    else:
        out.update(outcome=outcome.reason, retry_at=round(outcome.retry_at - MINUTE0, 6))
    return out


ORDINARY = [
    Case(
        "first lease of a window: no row yet, no rate: the call's own cost",
        {
            "outcome": "granted",
            "tokens": 100,
            "requests": 1,
            "ahead": {},
            "row_tokens": 100,
            "row_requests": 1,
            "row_token_window": T,
            "row_request_window": R,
            "members": ["a"],
        },
        row=None,
        phase=Phase(),
    ),
    Case(
        "first lease of a window: the last window's counts are dropped, passed windows pruned",
        {
            "outcome": "granted",
            "row_tokens": 100,
            "row_token_window": T,
            "row_requests": 31,
            "row_counts": {R: 31, R + 1: 40},
        },
        row=_row(
            token_window=T - 1,
            tokens=60_000,
            request_window=R - 1,
            requests=1_000,
            request_counts={R - 1: 1_000, R: 30, R + 1: 40},
        ),
    ),
    Case(
        "a steady lane leases the token window's rest: later request windows at its rate",
        {
            # 117 calls (17 now: 2 a second over the 8.5 s left; 20 in each later window) at
            # 100 tokens: the tokens match the calls, not the 11,800 the rate over 59 s asks
            "outcome": "granted",
            "tokens": 11_700,
            "requests": 17,
            "ahead": LATER,
            "row_counts": {R: 17, **LATER},
        },
        row=_row(),
        rates=STEADY,
    ),
    Case(
        "request horizon 1: the current request window only, tokens over its rest",
        {"outcome": "granted", "tokens": 1_700, "requests": 17, "ahead": {}},
        row=_row(),
        rates=STEADY,
        rules=replace(RULES, request_horizon=1),
    ),
    Case(
        "a sparse lane (under a call a window) leases nothing ahead; tokens match its call",
        {"outcome": "granted", "tokens": 100, "requests": 1, "ahead": {}},
        row=_row(),
        rates=Rates(tokens_per_s=10.0, requests_per_s=0.1, window_calls=1, steady=0.5),
    ),
    Case(
        "a burst is not a rate: later windows at the minute's rate when it is lower",
        {"outcome": "granted", "ahead": {R + k: 13 for k in range(1, 6)}},
        row=_row(),
        rates=Rates(tokens_per_s=4_000.0, requests_per_s=40.0, window_calls=40, steady=13.3),
    ),
    Case(
        "calls waiting: the missing part for each of them",
        {"outcome": "granted", "tokens": 500, "requests": 5},
        row=_row(),
        waiting=5,
    ),
    Case(
        "a top-up: the part not missing to the lane's rate, tokens matched to the requests",
        # holds 50 tokens and 3 requests: 1,700 tokens for 17 calls, less the 50 held
        {"outcome": "granted", "tokens": 1_650, "requests": 14, "ahead": {}},
        row=_row(),
        rates=STEADY,
        held=Holdings(tokens=50, requests=3, token_window=T, request_window=R),
        rules=replace(RULES, request_horizon=1),
    ),
    Case(
        "over the cap: interactive refused until the token window's end (and its guard)",
        {"outcome": FULL, "retry_at": 60.5, "row_tokens": 59_950},
        row=_row(tokens=59_950, requests=10),
    ),
    Case(
        "over the cap: a full request window refuses until its end (and its guard)",
        {"outcome": FULL, "retry_at": 10.5},
        row=_row(tokens=0, requests=1_000),
    ),
    Case(
        "a row written under a later window (a clock ahead) is refused until the slot ends",
        {"outcome": ROW_AHEAD, "retry_at": 9.5, "row_tokens": 5},
        row=_row(token_window=T + 1, tokens=5),
    ),
    Case(
        "Azure's own count, higher than the row's, raises it: refused",
        {"outcome": FULL, "row_tokens": 59_950},
        row=_row(),
        token_floor=(T, 59_950),
    ),
    Case(
        "expired counts: the row's passed request windows are dropped",
        {"outcome": "granted", "row_requests": 1, "row_counts": {R: 1}},
        row=_row(request_window=R - 2, requests=900, request_counts={R - 2: 900, R - 1: 800}),
    ),
]

RESERVE_AND_FAIRNESS = [
    Case(
        "interactive reserve: a backlog lease leaves the reserve x the window still to run",
        # cap 60,000 - 20 % x 59/60 of it = ~48,200: 48,150 + 100 does not fit
        {"outcome": FULL, "retry_at": 1.25},  # when the shrinking reserve lets it in
        lane=BACKLOG,
        row=_row(tokens=48_150),
    ),
    Case(
        "interactive reserve: an interactive lease takes it",
        {"outcome": "granted", "tokens": 100, "row_tokens": 48_250, "row_backlog_tokens": 0},
        row=_row(tokens=48_150),
    ),
    Case(
        "interactive reserve: at a window's end the backlog leaves only its tail (a tenth)",
        {"outcome": "granted", "tokens": 100, "row_tokens": 58_800, "row_backlog_tokens": 100},
        lane=BACKLOG,
        at=MINUTE0 + 55.0,
        row=_row(tokens=58_700, request_window=R + 5),
    ),
    Case(
        "interactive reserve: ... and not a token of the tail",
        {"outcome": FULL, "retry_at": 60.5},
        lane=BACKLOG,
        at=MINUTE0 + 55.0,
        row=_row(tokens=58_701, request_window=R + 5),
    ),
    Case(
        "interactive reserve: a later window leased ahead keeps the whole reserve (800 of 1,000)",
        {"outcome": "granted", "ahead": {R + 1: 10, **{R + k: 20 for k in range(2, 6)}}},
        lane=BACKLOG,
        row=_row(request_counts={R + 1: 790}),
        rates=STEADY,
    ),
    Case(
        "fair share: a backlog lease holds at most 2 x an equal split among 4 active instances",
        # 30,000 tokens pay for 300 calls: 170 now and 130 in the next window, the rest cut
        {"outcome": "granted", "tokens": 30_000, "requests": 170, "ahead": {R + 1: 130}},
        lane=BACKLOG,
        row=_row(members={"b": MINUTE0 - 1.0, "c": MINUTE0 - 1.0, "d": MINUTE0 - 1.0}),
        rates=Rates(tokens_per_s=2_000.0, requests_per_s=20.0, window_calls=200, steady=200.0),
        rules=replace(RULES, reserve=0.0),
    ),
    Case(
        "fair share 0: no cap; the window's 60,000 tokens pay for 600 calls",
        {
            "outcome": "granted",
            "tokens": 60_000,
            "requests": 170,
            "ahead": {R + 1: 200, R + 2: 200, R + 3: 30},
        },
        lane=BACKLOG,
        row=_row(members={"b": MINUTE0 - 1.0, "c": MINUTE0 - 1.0, "d": MINUTE0 - 1.0}),
        rates=Rates(tokens_per_s=2_000.0, requests_per_s=20.0, window_calls=200, steady=200.0),
        rules=replace(RULES, reserve=0.0, fair_share=0.0),
    ),
    Case(
        "fair share: members not seen in the last token window are not active (no cap)",
        {"outcome": "granted", "tokens": 60_000, "members": ["a", "b"]},
        lane=BACKLOG,
        row=_row(members={"b": MINUTE0 - 120.0}),
        rates=Rates(tokens_per_s=2_000.0, requests_per_s=20.0, window_calls=200, steady=200.0),
        rules=replace(RULES, reserve=0.0),
    ),
    Case(
        "a member not seen for three token windows is pruned from the row",
        {"outcome": "granted", "members": ["a"]},
        row=_row(members={"b": MINUTE0 - 181.0}),
    ),
]

# The stalled windows' causes (the scale-out benchmark): each would stall the lane for a window.
STALL_FIXES = [
    Case(
        "a phase refined at a window edge: the new window never starts with the last one's count",
        # the row, counted under phase 0, holds 40,000 of window T; ours moved to 3 ms later.
        # Just past the next window's start the same instant's index did not move: T stays T,
        # a window that has passed (before the fix, T became T + 1, 80,000 and a refusal)
        {
            "outcome": "granted",
            "tokens": 40_000,
            "row_tokens": 40_000,
            "row_token_window": T + 1,
            "slot": (T + 1, R + 6),
        },
        lane=BACKLOG,
        cost=40_000,
        at=MINUTE0 + 60.6,
        row=_row(tokens=40_000, request_window=R + 5, requests=1),
        phase=Phase(0.003, 0.0, True),
    ),
    Case(
        "phase shift +1: the refined phase crosses the numbering's edge, the count moves along",
        # counted under 59.998 s (window T - 1 holds the instant); under 0.002 s it is window T
        {"outcome": FULL, "row_tokens": 40_000, "row_token_window": T},
        lane=BACKLOG,
        cost=20_000,
        at=MINUTE0 + 21.0,
        row=_row(
            token_window=T - 1,
            tokens=40_000,
            request_window=R + 2,
            requests=1,
            token_phase=59.998,
        ),
        phase=Phase(0.002, 0.0, True),
    ),
    Case(
        "phase shift -1: a row counted under no known phase, ours later: the count moves back",
        # counted under phase 0 (window T); under 59.998 s the same instant is in window T - 1
        {"outcome": FULL, "row_tokens": 40_000, "row_token_window": T - 1},
        lane=BACKLOG,
        cost=20_000,
        at=MINUTE0 + 31.0,
        row=_row(tokens=40_000, request_window=R + 3, requests=5, phase_known=False),
        phase=Phase(59.998, 0.0, True),
    ),
    Case(
        "a phase move within a window carries the count (no index moved)",
        {"outcome": FULL, "row_tokens": 40_000, "row_token_window": T},
        lane=BACKLOG,
        cost=20_000,
        at=MINUTE0 + 31.0,
        row=_row(tokens=40_000, request_window=R + 3, requests=5),
        phase=Phase(0.003, 0.0, True),
    ),
    Case(
        "a request-only lease past the backlog's token cap: only the missing part must be free",
        # holds 5,000 tokens, lacks a request; interactive leases took 55,000 (cap ~48,200)
        {
            "outcome": "granted",
            "tokens": 0,
            "requests": 1,
            "row_tokens": 55_000,
            "row_requests": 11,
        },
        lane=BACKLOG,
        row=_row(tokens=55_000, requests=10),
        held=Holdings(tokens=5_000, requests=0, token_window=T, request_window=R),
    ),
    Case(
        "a request-only lease refused waits for the request window, not the token window's end",
        {"outcome": FULL, "retry_at": 10.5},
        lane=BACKLOG,
        row=_row(tokens=55_000, requests=990),
        held=Holdings(tokens=5_000, requests=0, token_window=T, request_window=R),
    ),
]


@pytest.mark.parametrize(
    "case", ORDINARY + RESERVE_AND_FAIRNESS + STALL_FIXES, ids=lambda case: case.name
)
def test_plan(case: Case) -> None:
    summary = _summary(_plan(case))
    assert {key: summary[key] for key in case.expect} == case.expect, summary


def test_the_planner_leaves_the_row_it_read_alone():
    row = _row(tokens=100, request_counts={R + 1: 3}, members={"b": MINUTE0})
    before = row.copy()
    plan = _plan(Case("", {}, row=row, rates=STEADY, phase=Phase(0.003, 0.0, True)))
    assert row == before and plan.row is not row and plan.row.tokens > 100


def test_a_request_phase_move_forgets_what_the_lane_held_ahead_in_the_fair_cap():
    """The store forgets the requests held for later windows when the request phase moves
    (``SharedQuota._forget_ahead``); the fair cap sees them gone in the same read. Ten active
    instances: a backlog lease may hold 2 x 1/10 of a window, 200 requests of the next one."""
    members = {f"m{n}": MINUTE0 - 1.0 for n in range(9)}
    held = Holdings(ahead={R + 1: 150}, token_window=T, request_window=R)
    rates = Rates(tokens_per_s=300.0, requests_per_s=30.0, window_calls=300, steady=300.0)
    deployment = Deployment(WINDOWS, replace(RULES, reserve=0.0), "a")
    at = MINUTE0 + 1.0
    slot = slot_at(WINDOWS, KNOWN0, at)
    ask = size_lease(
        deployment, slot, lane=BACKLOG, now=at, cost=10, waiting=1, held=held, rates=rates
    )
    assert ask.want_ahead[R + 1] == 300 - 150
    same = plan_lease(deployment, ask, Reading(_row(members=members), KNOWN0, at, held))
    assert isinstance(same.outcome, Granted) and same.outcome.ahead[R + 1] == 200 - 150
    later = _row(members=members, request_phase=0.3)  # a later request window end: adopted
    moved = plan_lease(deployment, ask, Reading(later, KNOWN0, at, held))
    assert moved.phase == Phase(0.0, 0.3, True)
    assert isinstance(moved.outcome, Granted) and moved.outcome.ahead[R + 1] == 150


RETURNS = [
    (
        "the lease's tokens and every window's requests go back",
        _row(tokens=2_000, backlog_tokens=1_000, requests=10, request_counts={R: 10, R + 1: 20}),
        Holdings(tokens=500, requests=3, ahead={R + 1: 4}, token_window=T, request_window=R),
        (500, 7, 1_500, 500, {R: 7, R + 1: 16}),
    ),
    (
        "never more than the row counts",
        _row(tokens=200, requests=2),
        Holdings(tokens=500, requests=3, token_window=T, request_window=R),
        (200, 2, 0, 0, {}),
    ),
    (
        "expired holdings: the token window has passed, only later windows' requests go back",
        _row(token_window=T + 1, tokens=300, request_window=R + 6, request_counts={R + 7: 5}),
        Holdings(tokens=500, requests=3, ahead={R + 7: 2}, token_window=T, request_window=R),
        (0, 2, 300, 0, {R + 7: 3}),
    ),
    (
        "expired holdings: nothing of the lease is counted any more",
        _row(token_window=T + 1, tokens=300, request_window=R + 6, requests=4),
        Holdings(tokens=500, requests=3, token_window=T, request_window=R),
        None,
    ),
    (
        "no row",
        None,
        Holdings(tokens=500, requests=3, token_window=T, request_window=R),
        None,
    ),
]


@pytest.mark.parametrize(
    ("row", "held", "expect"), [r[1:] for r in RETURNS], ids=[r[0] for r in RETURNS]
)
def test_plan_return(row, held, expect) -> None:
    back = plan_return(row, held, BACKLOG)
    if expect is None:
        assert back is None
        return
    assert back is not None
    got = (back.tokens, back.requests, back.row.tokens, back.row.backlog_tokens)
    assert got + (back.row.request_counts,) == expect


@pytest.mark.parametrize(
    ("ours", "row", "kept"),
    [
        (Phase(), Phase(), Phase()),  # neither known
        (Phase(), Phase(1.0, 2.0, True), Phase(1.0, 2.0, True)),  # the row's adopted
        (Phase(1.0, 2.0, True), Phase(), Phase(1.0, 2.0, True)),  # ours given to the row
        (KNOWN0, Phase(0.003, 0.0, True), Phase(0.003, 0.0, True)),  # a later end kept
        (Phase(0.003, 0.0, True), KNOWN0, Phase(0.003, 0.0, True)),  # an earlier one ignored
        (KNOWN0, Phase(0.0004, 0.0, True), KNOWN0),  # noise
        (Phase(59.998, 0.0, True), Phase(0.002, 0.0, True), Phase(0.002, 0.0, True)),  # circular
    ],
)
def test_merge_phase(ours, row, kept) -> None:
    assert merge_phase(ours, row, WINDOWS) == kept


def test_lane_rates_and_later_windows():
    steady = [(MINUTE0 + 0.25 * n, 100) for n in range(30)]  # 4 a second for 7.25 s
    rates = lane_rates(steady, MINUTE0 + 7.25, WINDOWS)
    assert rates == Rates(300.0, 3.0, 30, 30.0)
    burst = [(MINUTE0 + 0.01 * n, 500) for n in range(40)]  # 40 calls in 0.4 s, 30 s ago
    rates = lane_rates(burst, MINUTE0 + 30.0, WINDOWS)
    assert rates.window_calls == 40 and rates.steady == pytest.approx(40 * 10 / 30)
    assert lane_rates([], MINUTE0, WINDOWS) == Rates()
    slot = slot_at(WINDOWS, KNOWN0, MINUTE0 + 1.0)
    assert [w for w, _, _ in later_windows(WINDOWS, RULES, slot)] == list(LATER)
    assert later_windows(WINDOWS, replace(RULES, request_horizon=3), slot)[-1][0] == R + 2
    last = slot_at(WINDOWS, KNOWN0, MINUTE0 + 51.0)  # the minute's last request window
    assert later_windows(WINDOWS, RULES, last) == []
