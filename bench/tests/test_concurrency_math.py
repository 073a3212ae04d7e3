"""The concurrency benchmark's math: latency comparison, CPU share, per-level verdicts and the
chosen per-instance concurrency; and its section of the report."""

from __future__ import annotations

from typing import Any

import pytest

from bench.concurrency import (
    Criteria,
    choose_concurrency,
    compare_latency,
    cpu_cores,
    level_verdict,
)


def _level(
    *,
    ttft_p99: float | None = 10.0,
    duration_ratio: float | None = 1.01,
    throughput: float | None = 1.0,
    lag_p99: float | None = 5.0,
    cores: float = 0.1,
    errors: int = 0,
) -> dict[str, Any]:
    return {
        "errors": {"gateway": errors, "direct": 0},
        "ttft": {"added_p50": 1.0, "added_p99": ttft_p99, "ratio_p50": 1.0, "ratio_p99": 1.0},
        "duration": {"added_p50": 1.0, "added_p99": 1.0, "ratio_p50": duration_ratio},
        "throughput_ratio": throughput,
        "loop_lag_ms": {"added_p50": 1.0, "added_p99": lag_p99},
        "instance_cpu_cores": cores,
    }


def test_compare_latency_gives_differences_and_ratios_of_percentiles() -> None:
    base = [100.0, 100.0, 100.0, 100.0, 200.0]
    other = [110.0, 110.0, 110.0, 110.0, 300.0]
    out = compare_latency(base, other)
    assert out["added_p50"] == 10.0
    assert out["ratio_p50"] == 1.1
    # p99 of five values interpolates 96 % of the way from the 4th to the 5th: 196 and 292.4.
    assert out["added_p99"] == pytest.approx(96.4)
    assert out["ratio_p99"] == pytest.approx(1.492)
    with pytest.raises(ValueError):
        compare_latency([], [1.0])


def test_cpu_cores_is_cpu_seconds_per_wall_second() -> None:
    assert cpu_cores(3.0, 12.0) == 0.25
    assert cpu_cores(0.0, 5.0) == 0.0
    with pytest.raises(ValueError):
        cpu_cores(1.0, 0.0)


def test_level_verdict_names_each_missed_criterion() -> None:
    criteria = Criteria()
    assert level_verdict(_level(), criteria) == []
    missed = level_verdict(
        _level(
            ttft_p99=criteria.max_ttft_added_p99_ms + 1,
            duration_ratio=criteria.max_duration_ratio_p50 + 0.01,
            throughput=criteria.min_throughput_ratio - 0.01,
            lag_p99=criteria.max_loop_lag_added_p99_ms + 1,
            cores=criteria.max_cpu_cores + 0.01,
            errors=1,
        ),
        criteria,
    )
    assert missed == [
        "errors",
        "ttft_added_p99",
        "duration_ratio_p50",
        "throughput_ratio",
        "loop_lag_added_p99",
        "instance_cpu_cores",
    ]


def test_a_figure_not_measured_is_a_miss() -> None:
    missed = level_verdict(_level(ttft_p99=None, throughput=None), Criteria())
    assert missed == ["ttft_added_p99", "throughput_ratio"]


def test_chosen_concurrency_is_the_highest_fit_level_below_the_first_miss() -> None:
    criteria = Criteria()
    fit, slow = _level(), _level(duration_ratio=1.5)
    assert choose_concurrency({1: fit, 4: fit, 16: fit, 64: slow}, criteria) == 16
    assert choose_concurrency({1: fit, 4: fit, 16: fit, 64: fit}, criteria) == 64
    # A level fit above a miss does not count: the figures must hold all the way up.
    assert choose_concurrency({1: fit, 4: slow, 16: fit, 64: fit}, criteria) == 1
    assert choose_concurrency({1: slow, 4: fit}, criteria) == 1


def test_report_renders_the_concurrency_section() -> None:
    from bench.report import render_markdown

    level = {
        **_level(),
        "streams": {"direct": 8, "gateway": 8},
        "ttft_ms": {"direct": {"p50": 300.0}, "gateway": {"p50": 310.0}},
        "duration_ms": {"direct": {"p50": 3300.0}, "gateway": {"p50": 3330.0}},
        "tokens_per_s": {"direct": 30.0, "gateway": 29.9},
        "instance_cpu_ms_per_stream": 12.5,
    }
    level["duration"]["ratio_p99"] = 1.02
    result = {
        "name": "concurrency",
        "summary": "concurrency: ...",
        "setup": {
            "ttft_ms": 300.0,
            "per_token_ms": 30.0,
            "tokens": 100,
            "stagger_s": 1.0,
            "probe_s": 0.25,
            "order": "direct, gateway, gateway, direct per level",
        },
        "criteria": {
            "max_ttft_added_p99_ms": 250.0,
            "max_duration_ratio_p50": 1.05,
            "min_throughput_ratio": 0.95,
            "max_loop_lag_added_p99_ms": 100.0,
            "max_cpu_cores": 0.5,
        },
        "levels": {"1": level, "64": {**level, "throughput_ratio": 0.5}},
        "verdicts": {"1": [], "64": ["throughput_ratio"]},
        "chosen_http_per_instance_concurrency": 1,
    }
    run = {"benchmarks": {"concurrency": result}, "machine_before": {}, "machine_after": {}}
    text = render_markdown(run, {}, "bench/results/latest.json")
    assert "## Concurrency per instance (`bench/concurrency.py`)" in text
    assert "| 64 | 8/8 |" in text and "| throughput_ratio |" in text
    assert "fit up to **1** concurrent streams" in text
    assert "2-core machine with other load" in text
    assert "`perInstanceConcurrency` = **16**" in text and "not the highest fit level (1 in" in text
    assert "64 streams: TTFT" in text
