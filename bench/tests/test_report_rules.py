"""The report's rules for an honest page: every piece traced to a clean commit in this tree's
history or marked in red; summary lines that never round a miss into a pass and never print
``None``; ranges beside repeated figures; differences of percentiles said as such; what it all
ran against. Fixture results (no benchmark runs) and real git in a temporary repository."""

from __future__ import annotations

import copy
import subprocess
from pathlib import Path
from typing import Any

import pytest

from bench._merge import not_from_this_tree
from bench.report import NOT_FROM_THIS_TREE, RED_BADGE, honest_summary, render_markdown


def _git(root: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-c", "user.email=b@example.com", "-c", "user.name=b", *args],
        cwd=root,
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()


@pytest.fixture
def repo(tmp_path: Path) -> dict[str, Any]:
    """A repository with two commits on main and one on a branch that main never merged."""
    _git(tmp_path, "init", "-q", "-b", "main")
    (tmp_path / "f.txt").write_text("one")
    _git(tmp_path, "add", "f.txt")
    _git(tmp_path, "commit", "-qm", "one")
    first = _git(tmp_path, "rev-parse", "--short", "HEAD")
    _git(tmp_path, "checkout", "-qb", "side")
    (tmp_path / "f.txt").write_text("side")
    _git(tmp_path, "commit", "-qam", "side")
    side = _git(tmp_path, "rev-parse", "--short", "HEAD")
    _git(tmp_path, "checkout", "-q", "main")
    (tmp_path / "f.txt").write_text("two")
    _git(tmp_path, "commit", "-qam", "two")
    head = _git(tmp_path, "rev-parse", "--short", "HEAD")
    return {"root": tmp_path, "first": first, "head": head, "side": side}


def _piece(name: str, commit: str | None, summary: str) -> dict[str, Any]:
    return {
        "name": name,
        "summary": summary,
        "targets": [],
        "provenance": {
            "started_utc": "2026-12-01T19:00:00+00:00",
            "commit": commit,
            "command": "python -m bench",
            "load_before": [0.2, 0.2, 0.2],
            "load_after": [0.4, 0.3, 0.2],
        },
        # an "error" keeps the per-benchmark sections (which need full results) out of the way
        "error": "fixture",
    }


def _run(**pieces: dict[str, Any]) -> dict[str, Any]:
    return {
        "started_utc": "2026-12-01T19:00:00+00:00",
        "command": "python -m bench",
        "commit": None,
        "merged": True,
        "machine_before": {"nproc": 2, "loadavg": [0.2, 0.2, 0.2]},
        "machine_after": {"nproc": 2, "loadavg": [0.4, 0.3, 0.2]},
        "benchmarks": pieces,
    }


def test_a_piece_is_traced_only_to_a_clean_ancestor_of_head(repo: dict[str, Any]):
    root = repo["root"]
    assert not_from_this_tree(root, repo["head"]) is None
    assert not_from_this_tree(root, repo["first"]) is None  # an ancestor
    assert "not an ancestor" in (not_from_this_tree(root, repo["side"]) or "")
    assert "not in this repository's history" in (not_from_this_tree(root, "de50257") or "")
    assert "uncommitted" in (not_from_this_tree(root, f"{repo['first']}-dirty") or "")
    assert not_from_this_tree(root, None) == "commit not recorded"


def test_the_page_marks_in_red_every_piece_not_from_this_tree(repo: dict[str, Any]):
    run = _run(
        coldstart=_piece("coldstart", repo["first"], "coldstart: 1"),
        overhead=_piece("overhead", repo["side"], "overhead: 2"),
        drain=_piece("drain", f"{repo['head']}-dirty", "drain: 3"),
        chaos=_piece("chaos", "de50257", "chaos: 4"),
    )
    page = render_markdown(run, {}, "bench/results/latest.json", root=repo["root"])

    assert f'<span style="color:red">**{NOT_FROM_THIS_TREE}**</span>' == RED_BADGE
    # the banner at the top names every untraced piece, and only those
    banner = next(line for line in page.splitlines() if line.startswith("> " + RED_BADGE))
    for name in ("overhead", "drain", "chaos"):
        assert f"`{name}`" in banner
    assert "`coldstart`" not in banner
    # each piece's row says whether it is from this tree
    rows = {line.split(" | ")[0].lstrip("| "): line for line in page.splitlines() if "| `" in line}
    assert rows["coldstart"].endswith("| yes |")
    for name in ("overhead", "drain", "chaos"):
        assert RED_BADGE in rows[name]
    # the summary lines (a code block, no HTML) carry the plain words
    assert f"[{NOT_FROM_THIS_TREE}] overhead: 2" in page
    assert "\ncoldstart: 1\n" in page


def test_a_clean_run_from_head_says_so_and_marks_nothing(repo: dict[str, Any]):
    run = _run(drain=_piece("drain", repo["head"], "drain: 3"))
    run["merged"] = False
    page = render_markdown(run, {}, "bench/results/latest.json", root=repo["root"])
    assert NOT_FROM_THIS_TREE not in page
    assert f"- Commit `{repo['head']}` for every benchmark." in page
    assert "ran on a clean commit that is in this tree's history" in page


def test_the_page_says_what_it_ran_against_at_the_top(repo: dict[str, Any]):
    page = render_markdown(
        _run(drain=_piece("drain", repo["head"], "d")), {}, "x.json", root=repo["root"]
    )
    top = page.split("## ", 1)[0]
    assert "2 CPU cores" in top and "simulator" in top and "dev server" in top
    assert "Not Azure" in top


def _scaleout(k1: float, k8: float, runs: int = 1) -> dict[str, Any]:
    def target(k: int, share: float, floor: float) -> dict[str, Any]:
        t = {
            "what": f"K={k} backlog share of what interactive leaves",
            "target": f">= {floor}",
            "measured": share,
            "met": share >= floor,
        }
        if runs > 1:
            t |= {"runs": runs, "range": [round(share - 0.02, 3), round(share + 0.01, 3)]}
        return t

    return {
        "summary": f"scaleout: K=8 share {k8:.2f}x, 429s 0.0%; K=1 share {k1:.2f}x, 429s 0.0%",
        "scenarios": {"ledger K=8": {"share": k8}, "ledger K=1": {"share": k1}},
        "targets": [target(8, k8, 0.9), target(1, k1, 0.95)],
    }


def test_a_missed_share_is_never_rounded_into_a_pass():
    result = _scaleout(k1=0.949, k8=0.901)
    assert "K=1 share 0.95x" in result["summary"]  # what the benchmark printed
    line = honest_summary("scaleout", result)
    assert "0.95x" not in line
    assert "K=1 share 0.949 (missed >= 0.95; one run: no range)" in line
    assert "K=8 share 0.901 (met >= 0.9; one run: no range)" in line


def test_a_repeated_figure_carries_its_range():
    line = honest_summary("scaleout", _scaleout(k1=0.97, k8=0.95, runs=3))
    assert "K=8 share 0.950 (met >= 0.9; median of 3 runs, range 0.93–0.96)" in line


def test_a_missing_figure_is_na_with_why_never_none():
    line = honest_summary(
        "failover", {"summary": "fallback hang phase: 0/0 errors, worst +None ms; next"}
    )
    assert "None" not in line
    assert "worst n/a (no call in that phase, so no figure); next" in line


def test_added_p99_is_labelled_a_difference_of_percentiles(repo: dict[str, Any]):
    piece = _piece("overhead", repo["head"], "overhead: x")
    del piece["error"]
    piece["targets"] = [
        {
            "what": "core added p99 (default path)",
            "target": "<= 1.0 ms",
            "measured": -0.768,
            "unit": "ms",
            "met": True,
        }
    ]
    added = {"p50": 0.9, "p99": -0.7, "paired_median": 0.8}
    piece["core"] = {
        "rounds": 10,
        "litellm_version": "x",
        "latency_ms": {"sdk": {"p50": 1, "p90": 1, "p99": 1, "mean": 1}},
        **{
            k: copy.deepcopy(added)
            for k in (
                "gateway_vs_sdk_raw_stream",
                "gateway_json_vs_sdk_raw",
                "stream_upstream_cost",
                "gateway_vs_sdk",
                "litellm_vs_sdk_dated",
                "litellm_vs_sdk",
            )
        },
    }
    page = render_markdown(_run(overhead=piece), {}, "x.json", root=repo["root"])
    assert "-0.768 ms (a difference of p99s)" in page
    assert "p99 ms (p99 − p99)" in page
    assert "differences of percentiles" in page


def test_all_refuses_a_tree_with_uncommitted_changes(
    repo: dict[str, Any], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
):
    import bench.__main__ as cli

    monkeypatch.setattr(cli, "ROOT", repo["root"])
    ran: list[str] = []
    monkeypatch.setattr(cli, "_run_one", lambda name, *a: ran.append(name) or {})
    (repo["root"] / "f.txt").write_text("changed, not committed")
    with pytest.raises(SystemExit) as refused:
        cli.main(["--all"])
    assert refused.value.code == 2 and ran == []
    assert "--all needs a clean commit" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        cli.main(["--all", "--quick"])  # --all is the full, published run only
    assert ran == []


def test_the_recorded_results_render_without_a_rounded_miss_or_a_none():
    import json

    from bench._harness import ROOT

    run = json.loads((ROOT / "bench" / "results" / "latest.json").read_text(encoding="utf-8"))
    page = render_markdown(run, {}, "bench/results/latest.json")
    if "scaleout" in run["benchmarks"]:
        assert "share 0.95x" not in page and "share 0.90x" not in page
    assert "None ms" not in page and "+None" not in page
