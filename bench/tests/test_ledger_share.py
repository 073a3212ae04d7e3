"""``bench.ledger_share``: the real ledger on a simulated clock (fast, deterministic)."""

from __future__ import annotations

import asyncio

from bench.ledger_share import simulate


def test_one_instance_leaves_only_the_reserves_tail_unleased_with_no_429() -> None:
    r = asyncio.run(simulate(1, 5, seed=1))
    assert r["upstream_429"] == 0
    # A tenth of the reserve (2 % of each window) is kept to every window's end: what is never
    # leased is about that much (0.9 % without it, the rest of the reserve at the last lease).
    assert 0.015 < r["unleased_share_of_quota"] < 0.035
    assert r["share"] > 0.94


def test_eight_instances_share_one_row_without_429() -> None:
    r = asyncio.run(simulate(8, 4, seed=2))
    assert r["upstream_429"] == 0
    assert r["share"] > 0.93
