"""The scale-out benchmark's repeats: medians with their range, targets judged on the median,
the summary line's form, and which quota minutes are judged (fast: no processes)."""

from __future__ import annotations

import pytest

from bench.report import honest_summary
from bench.scaleout import (
    JOB_CHARGE,
    JOBS,
    QUOTA_PER_MINUTE,
    REPEATS,
    Plan,
    _summarize,
    _summary,
    _targets,
    aggregate,
    jobs_left_at,
    plan_from,
)


def _result(share: float, *, rep: int, throttled: int = 0, lost: int = 0, r429: float = 0.0):
    return {
        "scenario": "ledger K=8",
        "k": 8,
        "share": share,
        "share_all_windows": share - 0.01,
        "upstream_429_share": r429,
        "upstream_429": int(r429 * 1000),
        "lost": lost,
        "dup": 0,
        "wall_s": 100.0,
        "interactive": {"all_throttled": throttled, "calls": 300},
        "windows": [{"window": rep}],
        "repeat": rep,
    }


def test_published_plan_runs_every_k_three_times_and_env_shortens_it() -> None:
    assert plan_from(False, {}) == Plan(REPEATS, (1, 4, 8), JOBS, True)
    assert REPEATS >= 3
    assert plan_from(True, {}) == Plan(1, (1, 8), 200, True)
    env = {
        "BENCH_SCALEOUT_REPEATS": "2",
        "BENCH_SCALEOUT_KS": "1,8",
        "BENCH_SCALEOUT_JOBS": "600",
        "BENCH_SCALEOUT_PEERS": "0",
    }
    assert plan_from(False, env) == Plan(2, (1, 8), 600, False)
    with pytest.raises(ValueError):
        plan_from(False, {"BENCH_SCALEOUT_REPEATS": "0"})


def test_the_median_run_is_kept_with_every_figure_a_median_and_its_range() -> None:
    runs = [
        _result(0.93, rep=1, throttled=2, r429=0.004),
        _result(0.96, rep=2, lost=1),
        _result(0.95, rep=3, r429=0.001),
    ]
    out = aggregate(runs)
    assert out["share"] == 0.95
    assert out["windows"] == [{"window": 3}]  # the detail is the median run's
    assert out["runs"] == 3
    assert out["range"]["share"] == [0.93, 0.96]
    assert out["upstream_429_share"] == 0.001 and out["range"]["upstream_429_share"] == [0, 0.004]
    assert out["interactive"]["all_throttled"] == 0  # median of 2, 0, 0
    assert out["range"]["all_throttled"] == [0, 2]
    assert out["lost"] == 0 and out["range"]["lost"] == [0, 1]
    assert [r["repeat"] for r in out["repeats"]] == [1, 2, 3]
    assert runs[2]["interactive"]["all_throttled"] == 0  # the inputs are not changed


def test_a_failed_repeat_is_listed_and_left_out_of_the_median() -> None:
    out = aggregate([_result(0.94, rep=1), {"scenario": "x", "error": "Boom", "repeat": 2}])
    assert out["share"] == 0.94 and out["runs"] == 1
    assert out["repeats"][1] == {"repeat": 2, "error": "Boom"}
    failed = aggregate([{"scenario": "x", "error": "Boom", "repeat": 1}])
    assert failed["error"] == "Boom" and failed["runs"] == 0


def test_met_only_when_the_median_meets_the_target_whatever_the_best_run() -> None:
    k8 = aggregate([_result(0.94, rep=1), _result(0.96, rep=2), _result(0.949, rep=3)])
    k1 = aggregate([_result(0.97, rep=1), _result(0.972, rep=2), _result(0.96, rep=3)])
    targets = {t["what"]: t for t in _targets({"ledger K=8": k8, "ledger K=1": k1})}
    share8 = targets["K=8 backlog share of what interactive leaves"]
    assert share8["measured"] == 0.949 and share8["met"] is False  # best run 0.96: still missed
    assert share8["target"] == ">= 0.95"
    assert share8["runs"] == 3 and share8["range"] == [0.94, 0.96]
    share1 = targets["K=1 backlog share of what interactive leaves"]
    assert share1["measured"] == 0.97 and share1["met"] is True and share1["target"] == ">= 0.97"
    assert targets["K=8 upstream 429 share"]["target"] == "<= 0.5%"
    safety = targets["K=8 interactive all_throttled / lost / dup"]
    assert safety["met"] is True and safety["range"] == ["0 / 0 / 0", "0 / 0 / 0"]


def test_summary_keeps_its_form_adds_the_range_and_the_report_never_rounds_up() -> None:
    k8 = aggregate([_result(0.94, rep=1), _result(0.96, rep=2), _result(0.949, rep=3)])
    scenarios = {"ledger K=8": k8}
    line = _summary(scenarios)
    assert line.startswith("scaleout: K=8 share 0.95x (range 0.940-0.960, 3 runs), 429s 0.0%")
    shown = honest_summary(
        "scaleout", {"summary": line, "scenarios": scenarios, "targets": _targets(scenarios)}
    )
    assert "0.95x" not in shown and "(range 0.940" not in shown
    assert "K=8 share 0.949 (missed >= 0.95; median of 3 runs, range 0.94–0.96), 429s" in shown


def test_one_run_says_so_and_prints_no_range() -> None:
    one = aggregate([_result(0.951, rep=1)])
    assert "K=8 share 0.95x, 429s" in _summary({"ledger K=8": one})
    assert "range" not in _targets({"ledger K=8": one})[0]


class _Sampled:
    """The quota sampler's two outputs ``_summarize`` reads: charged tokens at each window's
    end (cumulative) and the samples for the series."""

    def __init__(self, per_window: list[int]) -> None:
        total, self.edges = 0, {}
        for w, tokens in enumerate(per_window):
            total += tokens
            self.edges[w] = total
        self.samples: list[tuple[float, int, int, int]] = []


def test_a_minute_that_began_with_too_few_jobs_left_is_not_judged() -> None:
    progress = [(10.0, 100), (20.0, 300), (40.0, 1900), (59.0, 1998), (61.0, 2000)]
    assert jobs_left_at(progress, 2000, 5.0) == 2000
    assert jobs_left_at(progress, 2000, 20.0) == 1700
    assert jobs_left_at(progress, 2000, 60.0) == 2
    # windows of 20 s: 0 (ramp), 1 and 2 full, 3 began with 100 jobs left (about 172 fit)
    full = QUOTA_PER_MINUTE - 2_000
    sampled = _Sampled([full, full, full, 100 * JOB_CHARGE])
    progress = [(10.0, 100), (20.0, 300), (40.0, 1000), (60.0, 1900), (79.0, 2000)]
    r = _summarize(
        "ledger K=1",
        1,
        [],
        sampled,
        [],
        0.1,
        wall=81.0,
        jobs=2000,
        succeeded=2000,
        failed=0,
        extra={"submit_s": 5.0},
        progress=progress,
    )
    assert r["judged_windows"] == [1, 2]
    assert r["share"] == round(full / QUOTA_PER_MINUTE, 3)  # no interactive call recorded
    assert [w["backlog_bound"] for w in r["windows"]] == [True, True, True, False]
    assert r["share_all_windows"] < 0.9  # the tail's minute, as it was judged before
