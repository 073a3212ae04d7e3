"""``python -m bench --only X --merge``: merging a piece's results into the combined results,
and what the report says about runs merged from pieces. Pure JSON: no benchmark runs."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from bench.__main__ import BENCHMARKS
from bench._merge import git_commit, merge_runs, provenances
from bench.report import render_markdown


def _result(name: str, value: int) -> dict[str, object]:
    # an "error" keeps the report's per-benchmark sections (and their figures) out of the way
    return {"name": name, "error": f"value {value}", "summary": f"{name}: {value}"}


def _run(started: str, commit: str | None, load: float, **results: int) -> dict[str, object]:
    return {
        "started_utc": started,
        "command": "python -m bench " + " ".join(f"--only {n}" for n in results),
        "commit": commit,
        "quick": False,
        "note": None,
        "machine_before": {"nproc": 2, "loadavg": [load, 0.5, 0.5]},
        "machine_after": {"nproc": 2, "loadavg": [load + 1, 0.7, 0.6]},
        "total_s": 10.0,
        "benchmarks": {
            name: {
                **_result(name, value),
                "provenance": {
                    "started_utc": started,
                    "commit": commit,
                    "command": "python -m bench",
                    "load_before": [load, 0.5, 0.5],
                    "load_after": [load + 1, 0.7, 0.6],
                },
            }
            for name, value in results.items()
        },
    }


def test_a_piece_replaces_its_benchmarks_and_keeps_the_others_with_their_provenance():
    # An old full run (no provenance, no commit: results from before --merge existed).
    old = _run("2026-11-23T12:44:04+00:00", None, 0.4, coldstart=1, drain=2, chaos=3)
    for result in old["benchmarks"].values():
        del result["provenance"]
    del old["commit"]
    piece = _run("2026-12-01T19:30:00+00:00", "abc1234", 1.5, drain=20)

    merged = merge_runs(old, piece, order=BENCHMARKS)

    assert merged["merged"] is True
    assert list(merged["benchmarks"]) == ["coldstart", "drain", "chaos"]  # the suite's order
    assert merged["benchmarks"]["drain"]["summary"] == "drain: 20"  # replaced
    assert merged["benchmarks"]["coldstart"]["summary"] == "coldstart: 1"  # kept
    kept = merged["benchmarks"]["chaos"]["provenance"]
    assert kept["started_utc"] == "2026-11-23T12:44:04+00:00" and kept["commit"] is None
    assert (kept["load_before"], kept["load_after"]) == ([0.4, 0.5, 0.5], [1.4, 0.7, 0.6])
    new = merged["benchmarks"]["drain"]["provenance"]
    assert (new["started_utc"], new["commit"]) == ("2026-12-01T19:30:00+00:00", "abc1234")
    assert [r["benchmarks"] for r in merged["runs"]] == [["coldstart", "drain", "chaos"], ["drain"]]
    assert old["benchmarks"]["drain"]["summary"] == "drain: 2"  # the inputs are not changed

    # A second piece: the first piece's result stays, with its own provenance.
    second = _run("2026-12-01T19:45:00+00:00", "def5678-dirty", 0.9, chaos=30)
    twice = merge_runs(json.loads(json.dumps(merged)), second, order=BENCHMARKS)
    assert {n: p["commit"] for n, p in provenances(twice).items()} == {
        "coldstart": None,
        "drain": "abc1234",
        "chaos": "def5678-dirty",
    }
    assert len(twice["runs"]) == 3


def test_no_base_yet_the_piece_alone():
    piece = _run("2026-12-01T19:30:00+00:00", "abc1234", 1.5, overhead=5)
    merged = merge_runs(None, piece, order=BENCHMARKS)
    assert list(merged["benchmarks"]) == ["overhead"] and len(merged["runs"]) == 1


def test_the_report_lists_start_and_commit_per_benchmark_when_they_differ():
    first = _run("2026-12-01T19:00:00+00:00", "abc1234", 0.3, coldstart=1, drain=2)
    merged = merge_runs(first, _run("2026-12-01T19:30:00+00:00", "def5678", 1.2, drain=20))
    page = render_markdown(merged, {}, "bench/results/latest.json")
    assert "### Runs per benchmark" in page
    assert "| coldstart | 2026-12-01T19:00:00+00:00 | `abc1234` | 0.3 → 1.3 |" in page
    assert "| drain | 2026-12-01T19:30:00+00:00 | `def5678` | 1.2 → 2.2 |" in page
    assert "Stale since" not in page and "that one run" not in page

    one = render_markdown(first, {}, "bench/results/latest.json")  # one run, one commit
    # ... but not a commit of this repository: listed, and marked as not from this tree
    assert "| coldstart | 2026-12-01T19:00:00+00:00 | `abc1234` | 0.3 → 1.3 | <span" in one
    assert "- Commit `abc1234` for every benchmark." not in one


def test_git_commit_names_head_and_a_dirty_tree(tmp_path: Path):
    def git(*args: str) -> str:
        return subprocess.run(
            ["git", *args], cwd=tmp_path, check=True, capture_output=True, text=True
        ).stdout.strip()

    assert git_commit(tmp_path) is None  # not a checkout
    git("init", "-q")
    (tmp_path / "f.txt").write_text("one")
    git("add", "f.txt")
    git("-c", "user.email=b@example.com", "-c", "user.name=b", "commit", "-qm", "one")
    head = git("rev-parse", "--short", "HEAD")
    assert git_commit(tmp_path) == head
    # The benchmarks' own outputs changing is not changed code.
    (tmp_path / "bench" / "results").mkdir(parents=True)
    (tmp_path / "bench" / "results" / "latest.json").write_text("{}")
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "benchmarks.md").write_text("# one")
    git("add", "bench", "docs")
    git("-c", "user.email=b@example.com", "-c", "user.name=b", "commit", "-qm", "outputs")
    head = git("rev-parse", "--short", "HEAD")
    (tmp_path / "bench" / "results" / "latest.json").write_text('{"run": 2}')
    (tmp_path / "docs" / "benchmarks.md").write_text("# two")
    assert git_commit(tmp_path) == head
    (tmp_path / "f.txt").write_text("two")
    assert git_commit(tmp_path) == f"{head}-dirty"
