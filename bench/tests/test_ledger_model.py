"""The ledger-at-scale model's arithmetic (``bench/ledger_model.py``): calibration from a
scale-out scenario's ledger counts, the row's ceiling and the attempts that commit a demand."""

from __future__ import annotations

import math

import pytest

from bench.ledger_model import calibrate, project, solve_attempts


def test_calibration_reads_the_scenarios_counts_per_row_and_window():
    scenario = {
        "k": 8,
        "wall_s": 200.0,
        "share": 0.9,
        "ledger_stats": {"reads": 3000, "writes": 2000, "conflicts": 1000},
    }
    m = calibrate(scenario, minute_s=20.0, rows=2)
    assert m.attempts_per_s == pytest.approx(5.0)  # 2000 writes / 200 s / 2 rows
    assert m.loss == pytest.approx(0.5)
    assert m.writes_per_instance_window == pytest.approx(1000 / (8 * 2 * 10))
    assert m.reads_per_attempt == pytest.approx(1.5)
    # the others' attempts (7/8 of 5 per s) in T seconds make half the writes lose
    assert 1 - math.exp(-5.0 * 7 / 8 * m.window_s) == pytest.approx(0.5)


def test_attempts_commit_the_demand_up_to_the_rows_ceiling():
    t = 0.02
    a = solve_attempts(10.0, t)
    assert a is not None and a * math.exp(-a * t) == pytest.approx(10.0, rel=1e-6)
    assert a < 1 / t  # the stable branch: fewer attempts than the peak's
    assert solve_attempts(1 / (math.e * t) * 1.01, t) is None  # past 1 / (e T): none


def test_a_projection_past_the_ceiling_says_saturated_not_a_number():
    busy = project(200, 20.0, 0.02, 1.5)
    assert busy.attempts_per_s is None and busy.loss is None
    assert busy.demand_per_s == pytest.approx(200 * 20 / 60)
    light = project(8, 6.0, 0.02, 1.5)
    assert light.loss is not None and light.loss < 0.05
    assert light.interactive_lease_s is not None and light.interactive_lease_s < 0.05
