"""Smoke tests of the benchmark math and report rendering (fast; the benchmarks themselves run via make bench)."""

from __future__ import annotations

import pytest

from bench._stats import (
    added_latency,
    interleaved_rounds,
    percentile,
    ratio,
    summarize,
    throughput_series,
)


def test_percentile_interpolates_like_numpy_linear() -> None:
    values = [1.0, 2.0, 3.0, 4.0]
    assert percentile(values, 0) == 1.0
    assert percentile(values, 100) == 4.0
    assert percentile(values, 50) == 2.5
    assert percentile(list(range(101)), 99) == pytest.approx(99.0)
    assert percentile([5.0], 99) == 5.0


def test_percentile_rejects_bad_input() -> None:
    with pytest.raises(ValueError):
        percentile([], 50)
    with pytest.raises(ValueError):
        percentile([1.0], 101)


def test_summarize_orders_its_figures() -> None:
    s = summarize([float(i) for i in range(1, 1001)])
    assert s["n"] == 1000
    assert s["p50"] <= s["p90"] <= s["p99"] <= s["max"] == 1000.0
    assert summarize([]) == {"n": 0}


def test_added_latency_is_difference_of_percentiles_and_paired_median() -> None:
    base = [1.0, 1.0, 1.0, 1.0, 5.0]
    other = [1.2, 1.2, 1.2, 1.2, 5.5]
    added = added_latency(base, other)
    assert added["p50"] == pytest.approx(0.2)
    assert added["paired_median"] == pytest.approx(0.2)
    assert added["n"] == 5
    with pytest.raises(ValueError):
        added_latency([1.0], [1.0, 2.0])


def test_interleaved_rounds_rotate_so_each_arm_leads_equally() -> None:
    rounds = list(interleaved_rounds(("a", "b", "c"), 6))
    assert [r for r, _ in rounds] == list(range(6))
    assert all(sorted(order) == ["a", "b", "c"] for _, order in rounds)
    firsts = [order[0] for _, order in rounds]
    assert firsts.count("a") == firsts.count("b") == firsts.count("c") == 2


def test_throughput_series_buckets_per_second() -> None:
    series = throughput_series([(0.1, 10), (0.9, 10), (1.5, 30)], bucket_s=1.0, until_s=2.0)
    assert series == [(0.0, 20.0), (1.0, 30.0)]
    assert ratio(1, 0) is None
    assert ratio(1, 4) == 0.25


def test_window_totals_count_only_complete_quota_minutes() -> None:
    from bench._quota import window_totals

    edges = {0: 200, 1: 500, 2: 900}
    assert window_totals(edges, wall=2.5, minute_s=1.0) == [200, 300]
    assert window_totals(edges, wall=0.5, minute_s=1.0) == []
    assert window_totals({0: 10}, wall=5.0, minute_s=1.0) == [10]


def test_report_renders_targets_and_marks_misses(tmp_path) -> None:
    from bench.report import render_markdown

    run = {
        "started_utc": "2026-01-01T00:00:00+00:00",
        "command": "python -m bench",
        "quick": False,
        "total_s": 1.0,
        "machine_before": {
            "nproc": 2,
            "mem_gib": 4.0,
            "cpu_model": "cpu",
            "python": "3.11",
            "platform": "linux",
            "loadavg": [0.1, 0, 0],
        },
        "machine_after": {"loadavg": [0.1, 0, 0]},
        "benchmarks": {
            "coldstart": {
                "summary": "coldstart: 2.0x",
                "repeats": 3,
                "ratio_median": 2.0,
                "heavy_loaded_by_function_app": [],
                "import_ms": {
                    "azure.functions": {"p50": 1, "p90": 1, "max": 1},
                    "function_app": {"p50": 2, "p90": 2, "max": 2},
                },
                "process_wall_ms": {"azure.functions": {"p50": 5}, "function_app": {"p50": 6}},
                "get_functions_ms": {"p50": 0.1},
                "targets": [
                    {
                        "what": "ratio",
                        "target": "<= 1.5x",
                        "measured": 2.0,
                        "unit": "x",
                        "met": False,
                    }
                ],
            },
            "chaos": {"name": "chaos", "skipped": "no module", "summary": "chaos: skipped"},
        },
    }
    text = render_markdown(run, {}, "bench/results/latest.json")
    assert "**MISSED**" in text
    assert "`nproc` 2" in text
    assert "coldstart: 2.0x" in text


def test_results_json_round_trips_with_compact_series() -> None:
    import json

    from bench.__main__ import _dumps

    run = {
        "a": {"series": [[0.1, 2], [0.2, 3]], "kinds": {"x, y": 1}},
        "rows": [{"k": "[a, b]"}],
        "empty": {},
        "n": None,
    }
    text = _dumps(run)
    assert json.loads(text) == run
    assert "[[0.1, 2], [0.2, 3]]" in text
