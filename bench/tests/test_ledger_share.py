"""``bench.ledger_share``: the real ledger on a simulated clock (fast, deterministic)."""

from __future__ import annotations

import asyncio

from bench.ledger_share import simulate


def test_one_instance_leases_nearly_the_whole_window_with_no_429() -> None:
    r = asyncio.run(simulate(1, 5, seed=1))
    assert r["upstream_429"] == 0
    # The reserve is a rate to the window's end: what is never leased is about 1 % of the quota
    # (it was 2.4 % while a tenth of the reserve was kept to every window's end).
    assert r["unleased_share_of_quota"] < 0.015
    assert r["share"] > 0.96


def test_eight_instances_share_one_row_without_429() -> None:
    r = asyncio.run(simulate(8, 4, seed=2))
    assert r["upstream_429"] == 0
    assert r["share"] > 0.93
