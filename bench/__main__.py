"""``python -m bench [--only NAME ...] [--quick] [--merge]``: run the benchmarks, write JSON and the report.

Each benchmark runs in turn (a failure is recorded and the others still run) and prints one
summary line. Results go to ``bench/results/latest.json`` (``--quick`` and ``--only`` runs go to
``bench/results/quick.tmp`` / ``partial.tmp``, git-ignored, and leave the committed report alone
unless ``--report`` is given),
then ``bench.report`` renders ``docs/benchmarks.md`` and ``docs/bench-*.png`` from that JSON.

``--only X --merge`` runs X and merges its results into ``bench/results/latest.json`` (replacing
X's entry, keeping the others) and re-renders the report: the suite can be run in pieces on the
final code. Every result records its own start time, git commit and machine load before/after
(``provenance``), which the report shows where the pieces differ.

``--all`` runs every benchmark in pieces for the published report: it refuses to start on a
tree with uncommitted changes (every figure must trace to one clean commit in the history),
merges each benchmark into ``bench/results/latest.json`` as soon as it ends (an interrupted run
keeps the pieces it finished, all from that commit) and re-renders the report at the end. The
report marks in red any piece from a dirty tree or from a commit that is not an ancestor of
HEAD.
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
import time
import traceback
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ._harness import ROOT, machine_info
from ._merge import git_commit, merge_runs

__all__ = ["BENCHMARKS", "main"]

# Order matters: cheap and quiet first, the long throughput runs last.
BENCHMARKS = (
    "coldstart",
    "firstrequest",
    "overhead",
    "concurrency",
    "memory",
    "embeddings_load",
    "failover",
    "rolling",
    "drain",
    "scaleout",
    "chaos",
    "batchlane",
)
RESULTS = ROOT / "bench" / "results"


def _dumps(value: Any, depth: int = 0) -> str:
    """Indented JSON for objects; lists of plain values (series points) on one line: readable and small."""
    pad, inner = " " * depth, " " * (depth + 1)
    if isinstance(value, dict) and value:
        items = [f"{inner}{json.dumps(str(k))}: {_dumps(v, depth + 1)}" for k, v in value.items()]
        return "{\n" + ",\n".join(items) + "\n" + pad + "}"
    if isinstance(value, (list, tuple)) and any(isinstance(v, dict) for v in value):
        return "[\n" + ",\n".join(inner + _dumps(v, depth + 1) for v in value) + "\n" + pad + "]"
    return json.dumps(value, separators=(", ", ": "))


def _run_one(name: str, quick: bool, commit: str | None, command: str) -> dict[str, Any]:
    """``name``'s result, with its provenance (start, commit, command, load before/after)."""
    provenance = {
        "started_utc": datetime.now(UTC).isoformat(timespec="seconds"),
        "commit": commit,
        "command": command,
        "load_before": machine_info()["loadavg"],
    }
    result = _run_module(name, quick)
    result["provenance"] = {**provenance, "load_after": machine_info()["loadavg"]}
    return result


def _merge_piece(out: Path, piece: dict[str, Any]) -> dict[str, Any]:
    """Merge ``piece`` into the results at ``out`` (written back); the merged results."""
    base = json.loads(out.read_text(encoding="utf-8")) if out.exists() else None
    merged = merge_runs(base, piece, order=BENCHMARKS)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(_dumps(merged) + "\n", encoding="utf-8")
    return merged


def _run_module(name: str, quick: bool) -> dict[str, Any]:
    started = time.monotonic()
    try:
        module = importlib.import_module(f"bench.{name}")
    except ModuleNotFoundError as exc:
        if exc.name == f"bench.{name}":
            return {
                "name": name,
                "skipped": f"bench/{name}.py does not exist (yet)",
                "summary": f"{name}: skipped (no module)",
            }
        raise
    try:
        result = module.run(quick=quick)
    except Exception as exc:  # noqa: BLE001 - one benchmark failing must not hide the others
        traceback.print_exc()
        result = {
            "name": name,
            "error": f"{type(exc).__name__}: {exc}",
            "summary": f"{name}: FAILED ({type(exc).__name__}: {exc})",
        }
    result.setdefault("elapsed_s", round(time.monotonic() - started, 1))
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--only", action="append", choices=BENCHMARKS, help="run only this benchmark (repeatable)"
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="small sample sizes: a smoke run, not figures to publish",
    )
    parser.add_argument(
        "--report",
        action="store_true",
        help="with --quick/--only: still rewrite docs/benchmarks.md",
    )
    parser.add_argument(
        "--out",
        help="results JSON path (default bench/results/latest.json; quick.tmp / partial.tmp)",
    )
    parser.add_argument(
        "--merge",
        action="store_true",
        help="with --only: merge these results into bench/results/latest.json (replacing their "
        "entries, keeping the others) and re-render docs/benchmarks.md",
    )
    parser.add_argument(
        "--note",
        help="free text about the conditions (e.g. 'quiet machine'), printed in the report",
    )
    parser.add_argument(
        "--all",
        action="store_true",
        help="every benchmark, each merged into bench/results/latest.json as it ends; refuses "
        "a tree with uncommitted changes",
    )
    args = parser.parse_args(argv)
    if args.all and (args.only or args.quick or args.merge or args.out):
        parser.error("--all runs every benchmark at full size into latest.json: no other options")
    if args.all:
        clean = git_commit(ROOT)
        if clean is None or clean.endswith("-dirty"):
            parser.error(
                f"--all needs a clean commit (found {clean or 'no git checkout'}): commit or "
                "discard the changes so every figure traces to one commit"
            )
        args.only, args.merge = list(BENCHMARKS), True
    if args.merge and (not args.only or args.quick):
        parser.error("--merge needs --only and full samples (no --quick)")

    names = tuple(args.only) if args.only else BENCHMARKS
    started = time.monotonic()
    command = " ".join(["python -m bench", *(argv if argv is not None else sys.argv[1:])])
    commit = git_commit(ROOT)
    run: dict[str, Any] = {
        "started_utc": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": command,
        "commit": commit,
        "quick": args.quick,
        "note": args.note,
        "machine_before": machine_info(),
        "benchmarks": {},
    }
    summaries = []
    for name in names:
        print(f"bench: {name} ...", flush=True)
        result = _run_one(name, args.quick, commit, command)
        run["benchmarks"][name] = result
        summaries.append(result.get("summary", name))
        print(result.get("summary", name), flush=True)
        if args.all:  # this piece is kept even if a later one is interrupted
            _merge_piece(RESULTS / "latest.json", {**run, "benchmarks": {name: result}})
    run["machine_after"] = machine_info()
    run["total_s"] = round(time.monotonic() - started, 1)

    partial = (args.quick or bool(args.only)) and not args.merge
    out = Path(args.out) if args.out else RESULTS / ("quick.tmp" if args.quick else "latest.json")
    if args.only and not args.out and not args.quick and not args.merge:
        out = RESULTS / "partial.tmp"
    if args.all:
        run = json.loads(out.read_text(encoding="utf-8"))
    elif args.merge:
        run = _merge_piece(out, run)
    else:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(_dumps(run) + "\n", encoding="utf-8")
    print(
        f"bench: results in {out.relative_to(ROOT) if out.is_relative_to(ROOT) else out} ({run['total_s']} s)",
        flush=True,
    )
    if not partial or args.report:
        from .report import write_report

        paths = write_report(run, results_path=out)
        print("bench: report " + ", ".join(str(p.relative_to(ROOT)) for p in paths), flush=True)
    print("\n".join(["", "summary:", *summaries]), flush=True)
    failed = [n for n in names if "error" in run["benchmarks"].get(n, {})]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
