"""One report from benchmarks run in pieces: ``python -m bench --only X --merge``.

Every benchmark result carries its own ``provenance``: when it started (UTC), the git commit it
ran on (``-dirty`` when the tree had changes), the command, and the machine's load average
before and after it. ``merge_runs`` puts a piece's results into the combined results (replacing
those benchmarks, keeping the others); results from before provenance existed get their run's
start time and load, with the commit unknown.
"""

from __future__ import annotations

import copy
import subprocess
from collections.abc import Iterable
from pathlib import Path
from typing import Any

__all__ = ["git_commit", "merge_runs", "not_from_this_tree", "provenances"]


OUTPUTS = (":(exclude)bench/results", ":(exclude)docs/benchmarks.md", ":(exclude)docs/bench-*.png")


def git_commit(root: Path) -> str | None:
    """``git rev-parse --short HEAD`` of ``root``, plus ``-dirty`` when tracked files changed;
    None outside a git checkout. The benchmarks' own outputs (``OUTPUTS``: results JSON, the
    report and its plots) do not count: a run after a run is not a run of changed code."""
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=root,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        status = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no", "--", ".", *OUTPUTS],
            cwd=root,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None
    return f"{head}-dirty" if status else head


def not_from_this_tree(root: Path, commit: str | None) -> str | None:
    """Why a result recorded on ``commit`` cannot be traced to the tree at ``root``, or None
    when it can: the commit is named, was clean (no ``-dirty``) and is HEAD or an ancestor of
    it (``git merge-base --is-ancestor``). A commit git does not know is not in the history."""
    if not commit:
        return "commit not recorded"
    if commit.endswith("-dirty"):
        return f"ran on `{commit}`: a tree with uncommitted changes"
    try:
        found = subprocess.run(
            ["git", "merge-base", "--is-ancestor", commit, "HEAD"],
            cwd=root,
            capture_output=True,
            text=True,
        )
    except OSError:
        return "no git to check the commit against"
    if found.returncode == 0:
        return None
    if found.returncode == 1:
        return f"`{commit}` is not an ancestor of this tree's HEAD"
    return f"`{commit}` is not in this repository's history"


def _inherited(run: dict[str, Any]) -> dict[str, Any]:
    """The provenance a result without its own takes from the run it came from."""
    return {
        "started_utc": run.get("started_utc"),
        "commit": run.get("commit"),
        "command": run.get("command"),
        "load_before": run.get("machine_before", {}).get("loadavg"),
        "load_after": run.get("machine_after", {}).get("loadavg"),
    }


def _stamped(run: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """``run``'s benchmark results, each with a provenance (its own, or the run's)."""
    out = {}
    for name, result in run.get("benchmarks", {}).items():
        result = copy.deepcopy(result)
        result["provenance"] = {**_inherited(run), **result.get("provenance", {})}
        out[name] = result
    return out


def merge_runs(
    base: dict[str, Any] | None, piece: dict[str, Any], order: Iterable[str] = ()
) -> dict[str, Any]:
    """The combined results: ``base``'s benchmarks with ``piece``'s replacing those it ran.

    Benchmarks are listed in ``order`` first (the suite's order), any others after. The
    top-level run fields describe the newest piece (machine, command, note); ``runs`` lists
    every piece merged so far; ``merged`` is True."""
    piece_results = _stamped(piece)
    results = _stamped(base) if base else {}
    results.update(piece_results)
    ranked = [n for n in order if n in results] + [n for n in results if n not in set(order)]
    runs = list(base.get("runs") or [_header(base)]) if base else []
    runs.append(_header(piece))
    merged = {k: copy.deepcopy(v) for k, v in piece.items() if k not in ("benchmarks", "runs")}
    merged["merged"] = True
    merged["runs"] = runs
    merged["benchmarks"] = {name: results[name] for name in ranked}
    return merged


def _header(run: dict[str, Any]) -> dict[str, Any]:
    return {
        "started_utc": run.get("started_utc"),
        "command": run.get("command"),
        "commit": run.get("commit"),
        "total_s": run.get("total_s"),
        "benchmarks": list(run.get("benchmarks", {})),
    }


def provenances(run: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Each benchmark's provenance as the report shows it (the run's, where it has none)."""
    return {name: result["provenance"] for name, result in _stamped(run).items()}
