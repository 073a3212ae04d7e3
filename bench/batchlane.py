"""The batch lane against the standard lane: the same jobs through both, on the real backlog path.

Three runs, each through ``bench._backlog.drain_via_backlog`` (jobs submitted to the backlog, the
Service Bus test broker, ``function_app``'s worker and timer pumped by the dev server's queue side,
the job store in Azurite, the simulator over HTTP with the real openai SDK):

* ``standard``  JOBS jobs with ``lane: standard`` against the standard deployment;
* ``batch``     the same JOBS jobs with ``lane: batch``: accumulated into JSONL files of
  FILE_LINES lines, uploaded, created, polled by the timer, finished from the output lines;
* ``faults``    FAULT_JOBS jobs with ``lane: batch`` while the simulator fails the first batch and
  expires the second (half done): finished lines are kept, the rest re-routed to standard.

Cost per 1,000 jobs comes from the usage each job recorded and the price table below (Global
Standard list price for gpt-4o per million tokens; Global Batch at 50%). The simulator's batch clock
is scaled: its completion window (24 h) is ``WINDOW_S`` real seconds, so one batch-clock hour is
``WINDOW_S / 24`` s; wall times are given in real seconds and in batch-clock hours. "Standard quota
left free" is the standard deployment's TPM not charged while the batch lane ran (from the
simulator's counters). Lost = not terminal or failed; dup = jobs with more than one terminal write.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from ._backlog import Azurite, backlog_available, drain_via_backlog
from ._harness import API_KEY, SimProcess, quiet_gateway_logs

__all__ = ["PRICES", "run"]

ALIAS = "gpt-4o"
STANDARD_DEP = "bench-chat"
BATCH_DEP = "bench-batch"
REGION = "east"
MINUTE_S = 6.0
TPM = 2_000_000  # the standard lane is bounded by the backlog's own pace, not by quota
MAX_TOKENS = 320  # the drain benchmark's short jobs
CONCURRENCY = 16
WINDOW_S = 60.0  # the scaled "24h": one batch-clock hour is 2.5 s
FILE_LINES = 2_500
PRICES = {"input": 2.50, "output": 10.00, "batch_discount": 0.50}  # USD per 1M tokens, gpt-4o
BATCH_CLOCK = {
    "validating_s": 2.0,
    "in_progress_s": 8.0,
    "per_line_ms": 1.0,
    "finalizing_s": 2.0,
    "cancelling_s": 1.0,
    "window_s": WINDOW_S,
}
# Per-run time caps (s). Measured on the 2-core machine (shared, niced), --quick, 1,000 jobs: the
# standard lane ~18 jobs/s, the batch lane ~17 jobs/s after the lane's round-trip cuts and the
# bus's several sender links (it was ~5), plus ~30 ms per job of submission and read-back outside
# the timed wall. A full run (10k + 10k + 2k faults) is then ~33 min; the caps leave room for a
# slower machine (8 jobs/s) and stop a stuck
# run instead of letting it take the whole benchmark (a capped run reports hit_time_cap, and its
# unfinished jobs count as lost).
CAP_S = {"standard": 1_200.0, "batch": 1_200.0, "faults": WINDOW_S + 300.0}
BACKLOG_SETTINGS = {
    "RETRY_TIMER_SCHEDULE": "*/1 * * * * *",
    "BACKLOG_BATCH_MAX_WAIT_S": "2",
    "BACKLOG_BATCH_WINDOW_S": f"{WINDOW_S:g}",
    "BACKLOG_BATCH_MARGIN_S": "10",
}


def _sim_regions() -> list[dict[str, Any]]:
    return [
        {
            "name": REGION,
            "deployments": [
                {"name": STANDARD_DEP, "model": ALIAS, "kind": "chat", "tpm": TPM},
                {
                    "name": BATCH_DEP,
                    "model": ALIAS,
                    "kind": "chat",
                    "sku": "global_batch",
                    "enqueued_tokens": 50_000_000,
                },
            ],
        }
    ]


def _gateway_settings(sim: SimProcess) -> Any:
    from shared.settings import GatewaySettings

    return GatewaySettings.model_validate(
        {
            "regions": [
                {
                    "name": REGION,
                    "endpoint": sim.endpoint(REGION),
                    "auth": "api_key",
                    "api_key": API_KEY,
                    "models": {ALIAS: {"deployment": STANDARD_DEP, "tpm": TPM}},
                    "batch": {ALIAS: {"deployment": BATCH_DEP, "enqueued_tokens": 50_000_000}},
                }
            ],
            "quota_minute_s": MINUTE_S,
        }
    )


def _request(job: int) -> dict[str, Any]:
    content = f"Job {job:06d}: reply with one short line of text, please."
    return {
        "model": ALIAS,
        "messages": [{"role": "user", "content": content}],
        "max_tokens": MAX_TOKENS,
    }


def _cost(usage: dict[str, int]) -> float:
    total = 0.0
    for lane in ("standard", "batch"):
        factor = PRICES["batch_discount"] if lane == "batch" else 1.0
        prompt = usage.get(f"{lane}:prompt_tokens", 0)
        completion = usage.get(f"{lane}:completion_tokens", 0)
        total += factor * (prompt * PRICES["input"] + completion * PRICES["output"]) / 1e6
    return total


async def _lane_run(
    sim: SimProcess,
    storage: str,
    jobs: int,
    lane: str,
    cap_s: float,
    file_lines: int,
    *,
    faults: bool = False,
) -> dict[str, Any]:
    from shared.aoai import Gateway

    settings = _gateway_settings(sim)
    gateway = Gateway(settings)
    stamps: dict[str, float] = {}

    def start() -> float:
        sim.reset()
        if faults:  # the first batch fails, the second expires with half its lines done
            control = sim.control(REGION)
            control.batch_fault("fail")
            control.batch_fault("expire", fraction=0.5)
        stamps["t0"] = time.monotonic()
        return stamps["t0"]

    try:
        out = await drain_via_backlog(
            gateway,
            jobs,
            request_for=_request,
            concurrency=CONCURRENCY,
            cap_s=cap_s,
            storage_connection=storage,
            on_start=start,
            settings={**BACKLOG_SETTINGS, "BACKLOG_BATCH_MAX_REQUESTS": str(file_lines)},
            gateway_settings=settings,
            lane=lane,
        )
    finally:
        await gateway.aclose()
    stats = await asyncio.to_thread(sim.stats, REGION)
    batches = await asyncio.to_thread(lambda: sim.control(REGION).batches()["batches"])
    standard = stats["deployments"][STANDARD_DEP]
    wall = out["wall_s"]
    quota = TPM * wall / MINUTE_S
    failed = sum(out["failed"].values())
    cost = _cost(out["usage"])
    return {
        "lane": lane,
        "jobs": jobs,
        "wall_s": round(wall, 1),
        "wall_batch_clock_h": round(wall / (WINDOW_S / 24), 2),
        "succeeded": out["succeeded"],
        "failed": out["failed"],
        "lost": out["not_terminal"] + failed,
        "dup": out["double_terminal_writes"],
        "lanes": out["lanes"],
        "usage": out["usage"],
        "cost_usd": round(cost, 4),
        "cost_per_1000_usd": round(cost * 1000 / max(1, out["succeeded"]), 4),
        "standard_tokens_charged": standard["tokens_charged"],
        "standard_requests": standard["requests"],
        "standard_quota_free": round(1 - standard["tokens_charged"] / quota, 4) if quota else None,
        "sim_batches": [
            {"status": b["status"], "lines": b["request_counts"]["total"]} for b in batches
        ],
        "hit_time_cap": out["hit_time_cap"],
    }


def run(quick: bool = False) -> dict[str, Any]:
    started = time.monotonic()
    with quiet_gateway_logs():
        return _run(quick, started)


def _run(quick: bool, started: float) -> dict[str, Any]:
    jobs = 1_000 if quick else 10_000
    fault_jobs = 400 if quick else 2_000
    file_lines = 250 if quick else FILE_LINES
    fault_lines = fault_jobs // 4
    why_not = backlog_available()
    if why_not is not None:
        return {"name": "batchlane", "skipped": why_not, "summary": f"batch: skipped ({why_not})"}
    runs: dict[str, Any] = {}
    with (
        SimProcess(
            _sim_regions(),
            minute_seconds=MINUTE_S,
            log_name="batchlane",
            extra={"batch": BATCH_CLOCK},
        ) as sim,
        Azurite() as azurite,
    ):
        storage = azurite.connection_string
        runs["standard"] = asyncio.run(
            _lane_run(sim, storage, jobs, "standard", CAP_S["standard"], file_lines)
        )
        print(f"  batchlane standard: {_line(runs['standard'])}", flush=True)
        runs["batch"] = asyncio.run(
            _lane_run(sim, storage, jobs, "batch", CAP_S["batch"], file_lines)
        )
        print(f"  batchlane batch: {_line(runs['batch'])}", flush=True)
        runs["faults"] = asyncio.run(
            _lane_run(sim, storage, fault_jobs, "batch", CAP_S["faults"], fault_lines, faults=True)
        )
        print(f"  batchlane faults: {_line(runs['faults'])}", flush=True)
    std, bat, flt = runs["standard"], runs["batch"], runs["faults"]
    ratio = bat["cost_per_1000_usd"] / std["cost_per_1000_usd"] if std["cost_per_1000_usd"] else 0
    summary = (
        f"batch: {bat['jobs']} jobs cost {ratio:.2f}x of standard, lost {bat['lost']}, "
        f"dup {bat['dup']}; with failed+expired batches lost {flt['lost']}, dup {flt['dup']}"
    )
    return {
        "name": "batchlane",
        "quick": quick,
        "setup": {
            "jobs": jobs,
            "fault_jobs": fault_jobs,
            "file_lines": file_lines,
            "fault_file_lines": fault_lines,
            "max_tokens": MAX_TOKENS,
            "standard_tpm": TPM,
            "minute_s": MINUTE_S,
            "batch_clock": BATCH_CLOCK,
            "prices_per_1m": PRICES,
            "backlog_settings": BACKLOG_SETTINGS,
            "concurrency": CONCURRENCY,
            "cap_s": CAP_S,
        },
        "runs": runs,
        "cost_ratio": round(ratio, 3),
        "summary": summary,
        "elapsed_s": round(time.monotonic() - started, 1),
    }


def _line(r: dict[str, Any]) -> str:
    return (
        f"{r['jobs']} jobs, {r['wall_s']} s ({r['wall_batch_clock_h']} batch-clock h), "
        f"${r['cost_per_1000_usd']}/1000, lost {r['lost']}, dup {r['dup']}, lanes {r['lanes']}, "
        f"standard quota free {r['standard_quota_free']}"
        + (" (TIME CAP HIT)" if r["hit_time_cap"] else "")
    )
