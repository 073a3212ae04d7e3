"""Scale-out: K app instances (separate dev server processes) share two regions' quota.

Each run starts K ``python -m devserver`` processes (HTTP, Service Bus pumps, the timer under
its blob lease) on one Azurite, one Service Bus test broker and one simulator with two regions
and a shortened quota minute (``MINUTE_S`` = 20 s, so the request window is 3.3 s; the backlog's
timings scale with it, ``TIME_SCALE``).

The quota is dimensioned below what this 2-core machine carries (about 14 jobs/s for the whole
stack), so the benchmark measures coordination, not the CPU ceiling: 32,000 TPM and 192 RPM
(Azure's ratio) per region, 64,000 tokens per 20 s combined, about 9.6 jobs/s at 334 tokens a
job; requests (32 per request window per region) bind after tokens. It submits the backlog of jobs over ``POST /api/v1/jobs`` (spread
over the instances), which then drain through the real backlog path (worker function, parking,
re-drive timer), while an open-loop interactive load of HTTP chats at ``INTERACTIVE_SHARE`` of
the combined quota goes to random instances throughout.

Scenarios, in the same run: the ledger at K = 1, 4, 8; K = 8 with the ledger off (per-instance
pacing, as before the ledger); K LiteLLM Routers (usage-based routing, each told the
deployments' full TPM/RPM, as LiteLLM documents per-pod limits) draining the same jobs and
carrying the same interactive load in this process, their counters per Router as per pod.

Figures: the simulator's charged tokens per complete quota minute (sampled at each window
edge, ``bench._quota``), split into interactive (the calls this process made, charged as the
simulator charges them) and backlog; *share* = backlog tokens / (combined quota - interactive
tokens) over the complete minutes while the backlog was still draining (the first minute, the
ramp, is left out, and so is the drain's tail: a minute that began with fewer jobs left than it
could carry, where no pacing could fill it); upstream 429 share = 429s / requests at the
simulator; interactive calls answered 429 (``all_throttled``) and their added latency (minus
the simulator's own, measured direct); lost = jobs not succeeded at the end; dup = backlog
requests the simulator served beyond one per succeeded job. ``share_all_windows`` keeps the
tail's minutes in, as the share was computed before 2026-12-08 (a run whose last jobs were
re-driven late added a minute of a few jobs, 0.55 at K = 8 on 2026-12-02, to its share).

Repeats: each K runs ``REPEATS`` (3) times, the repeats interleaved (K = 1, 4, 8, then again),
and every judged figure is the median of the runs with its range (lowest-highest) beside it;
a target is met only if the median meets it (``aggregate``, ``_targets``). Ledger off and
LiteLLM run once (comparisons, not targets). One ledger scenario of 2,000 jobs takes about
4.5 minutes on the 2-core machine (the drain, about 232 s at full share, plus start-up and
submission), so the published run takes about 50 minutes; ``BENCH_SCALEOUT_REPEATS``,
``BENCH_SCALEOUT_KS``, ``BENCH_SCALEOUT_JOBS`` (a scenario's length) and
``BENCH_SCALEOUT_PEERS=0`` shorten it, and ``python -m bench.scaleout --repeats 2 --ks 1,8
--jobs 1000 --no-peers --out F`` runs a shortened comparison outside the report.
Where the share goes without the machine's noise: ``python -m bench.ledger_share``.
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import random
import statistics
import subprocess
import tempfile
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ._backlog import Azurite, backlog_available
from ._harness import (
    HOST,
    PY,
    ROOT,
    BrokerProcess,
    Budget,
    SimProcess,
    child_env,
    free_ports,
    gateway_regions,
    wait_http,
)
from ._quota import QuotaSampler, rate_series, window_totals
from ._stats import percentile

__all__ = ["plot", "run"]

ALIAS = "gpt-4o"
DEPLOYMENT = "bench-chat"
REGIONS = ("east", "west")
MINUTE_S = 20.0  # request window (RPM / 6): 3.3 s
TPM = 32_000  # per region per (scaled) minute: 64,000 combined, about 9.6 jobs/s
RPM = TPM * 6 // 1000  # Azure's ratio: 192 (32 per request window); TPM binds first
MAX_TOKENS = 320  # backlog jobs: ~334 tokens charged each; TPM binds before RPM
INTERACTIVE_MAX_TOKENS = 100
INTERACTIVE_SHARE = 0.10
TTFT_MS = 100.0
TIME_SCALE = MINUTE_S / 60.0
BACKLOG_SETTINGS = {
    "RETRY_TIMER_SCHEDULE": f"*/{max(1, round(30 * TIME_SCALE))} * * * * *",
    "BACKLOG_DEFER_S": f"{15 * TIME_SCALE:g}",
    "BACKLOG_REDRIVE_CLAIM_S": f"{60 * TIME_SCALE:g}",
    "BACKLOG_JOB_TIMEOUT_S": f"{180 * TIME_SCALE:g}",
    "GATEWAY_BACKLOG_THROTTLE_WAIT_S": f"{60 * TIME_SCALE:g}",  # a quota minute, as by default
}
TARGET_SHARE = {8: 0.95, 1: 0.97}
TARGET_429 = 0.005
REPEATS = 3  # runs of each K in the published run: the median, with the range beside it
LITELLM_CONCURRENCY = 16  # per Router, as maxConcurrentCalls per instance


def _job_messages(job: int) -> list[dict[str, str]]:
    return [
        {"role": "user", "content": f"Job {job:06d}: reply with one short line of text, please."}
    ]


def _chat_messages(n: int) -> list[dict[str, str]]:
    return [{"role": "user", "content": f"Interactive question {n:06d}: a short answer?"}]


def _charge(messages: list[dict[str, str]], max_tokens: int) -> int:
    return math.ceil(len(messages[0]["content"]) / 4) + max_tokens


INTERACTIVE_CHARGE = _charge(_chat_messages(0), INTERACTIVE_MAX_TOKENS)
JOB_CHARGE = _charge(_job_messages(0), MAX_TOKENS)
QUOTA_PER_MINUTE = TPM * len(REGIONS)
INTERACTIVE_RATE = INTERACTIVE_SHARE * QUOTA_PER_MINUTE / MINUTE_S / INTERACTIVE_CHARGE  # calls/s
JOBS = 2_000  # per scenario, as the issue asks (quick mode: 200)


def drain_s(jobs: int) -> float:
    """The shortest possible drain: the jobs' tokens over what the interactive load leaves of the
    combined quota (2,000 jobs: 2,000 x 334 / 57,600 per 20 s minute = about 232 s)."""
    per_s = QUOTA_PER_MINUTE * (1.0 - INTERACTIVE_SHARE) / MINUTE_S
    return jobs * JOB_CHARGE / per_s


def time_cap_s(jobs: int) -> float:
    """A scenario's cap from when its instances answer, submission included: twice the shortest
    drain (a run with 429 storms, parking and re-drives, as the baselines have, may take that
    long) plus 30 s for submitting the jobs through the instances."""
    return round(2.0 * drain_s(jobs) + 30.0)


def _sim_regions() -> list[dict[str, Any]]:
    return [
        {
            "name": r,
            "deployments": [
                {"name": DEPLOYMENT, "model": ALIAS, "kind": "chat", "tpm": TPM, "rpm": RPM}
            ],
        }
        for r in REGIONS
    ]


# ------------------------------------------------------------------------------ processes


_Broker = BrokerProcess  # python -m sbbroker in its own process (8 instances talk to it)


class _Instances:
    """K dev servers (the whole app: HTTP, pumps, timer lease), one process each."""

    def __init__(self, k: int, env: dict[str, str]) -> None:
        self.ports = free_ports(k)
        self._env = env
        self.procs: list[subprocess.Popen[bytes]] = []
        self._dir = tempfile.TemporaryDirectory(prefix="bench-scaleout-")

    def urls(self) -> list[str]:
        return [f"http://{HOST}:{p}/api" for p in self.ports]

    def __enter__(self) -> _Instances:
        for i, port in enumerate(self.ports):
            log = open(Path(self._dir.name) / f"i{i}.log", "wb")
            self.procs.append(
                subprocess.Popen(
                    [PY, "-m", "devserver", "--port", str(port), "--log-level", "warning"],
                    cwd=ROOT,
                    env=child_env({**self._env, "WEBSITE_INSTANCE_ID": f"bench-{i}"}),
                    stdout=log,
                    stderr=subprocess.STDOUT,
                )
            )
        try:
            for port, proc in zip(self.ports, self.procs, strict=True):
                wait_http(f"http://{HOST}:{port}/api/health", 90, proc)
        except BaseException:
            self.__exit__()
            raise
        return self

    def log_tail(self, i: int = 0, chars: int = 1500) -> str:
        try:
            return (Path(self._dir.name) / f"i{i}.log").read_text(errors="replace")[-chars:]
        except OSError:
            return ""

    def __exit__(self, *exc: object) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.terminate()
        for proc in self.procs:
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)
        self._dir.cleanup()


# ------------------------------------------------------------------------------ load


class _Interactive:
    """Open-loop Poisson arrivals of HTTP chats (or Router calls) at ``rate`` per second."""

    def __init__(self, call: Any, rate: float, t0: float, seed: int = 7) -> None:
        self._call = call
        self._rate = rate
        self._t0 = t0
        self._rng = random.Random(seed)
        self.records: list[tuple[float, float, str]] = []  # (t sent, latency s, outcome)
        self._tasks: set[asyncio.Task[None]] = set()

    async def run(self, stop: asyncio.Event) -> None:
        n = 0
        while not stop.is_set():
            try:
                await asyncio.wait_for(stop.wait(), self._rng.expovariate(self._rate))
                break
            except TimeoutError:
                pass
            n += 1
            task = asyncio.create_task(self._one(n))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        if self._tasks:
            await asyncio.wait(self._tasks, timeout=30)

    async def _one(self, n: int) -> None:
        sent = time.monotonic()
        try:
            outcome = await self._call(n)
        except Exception as exc:  # noqa: BLE001 - recorded by class
            outcome = type(exc).__name__
        self.records.append((sent - self._t0, time.monotonic() - sent, outcome))


async def _direct_latency(sim: SimProcess) -> float:
    """The simulator's own latency for an interactive chat (median of a few direct calls)."""
    import httpx

    url = f"{sim.endpoint(REGIONS[0])}/openai/v1/chat/completions"
    body = {"model": DEPLOYMENT, "messages": _chat_messages(0), "max_tokens": 10}
    samples = []
    async with httpx.AsyncClient(timeout=10) as client:
        for _ in range(15):
            t = time.monotonic()
            await client.post(url, json=body, headers={"api-key": "bench-key"})
            samples.append(time.monotonic() - t)
    sim.reset()
    return percentile(samples, 0.5)


async def _count_terminal(table: Any) -> tuple[int, int]:
    """Jobs succeeded and failed: the job rows only (RowKey ``job``); each terminal write also
    leaves an audit row (``terminal-...``) with a status, which must not count twice."""
    succeeded = failed = 0
    async for entity in table.query_entities(
        "RowKey eq 'job' and (status eq 'succeeded' or status eq 'failed')", select=["status"]
    ):
        if entity.get("status") == "succeeded":
            succeeded += 1
        else:
            failed += 1
    return succeeded, failed


# ------------------------------------------------------------------------------ one scenario


async def _instances_scenario(
    name: str,
    k: int,
    ledger: bool,
    sim: SimProcess,
    azurite: Azurite,
    broker: _Broker,
    jobs: int,
    cap_s: float,
    direct_s: float,
) -> dict[str, Any]:
    import httpx
    from azure.data.tables.aio import TableClient

    tag = uuid.uuid4().hex[:8]
    regions = gateway_regions(
        sim, [(r, 1, DEPLOYMENT, TPM) for r in REGIONS], ALIAS, rpm=dict.fromkeys(REGIONS, RPM)
    )
    env = {
        "FUNCTIONS_WORKER_RUNTIME": "python",
        "GATEWAY_REGIONS": json.dumps(regions),
        "GATEWAY_QUOTA_MINUTE_S": str(MINUTE_S),
        "GATEWAY_LEDGER_ENABLED": "true" if ledger else "false",
        "GATEWAY_LEDGER_TABLE": f"ledger{tag}",
        "GATEWAY_HEALTH_TABLE": f"health{tag}",
        "GATEWAY_DEFAULT_THROTTLE_COOLDOWN_S": f"{10 * TIME_SCALE:g}",
        # One Azurite serves every instance on a 2-core machine: a lease may take seconds there,
        # and two timeouts in a row would send an instance to the fallback share.
        "GATEWAY_LEDGER_TIMEOUT_S": "5",
        "AzureWebJobsStorage": azurite.connection_string,
        "AzureFunctionsWebHost__hostid": f"bench{tag}",
        "ServiceBusConnection": broker.connection_string,
        "BACKLOG_QUEUE": f"so{tag}",
        "PARKING_QUEUE": f"sopark{tag}",
        "BACKLOG_JOBS_TABLE": f"sojobs{tag}",
        "BACKLOG_RESULTS_CONTAINER": f"sores{tag}",
        **BACKLOG_SETTINGS,
    }
    with _Instances(k, env) as instances:
        budget = Budget(cap_s)  # from when the instances answer: start-up is not in the cap
        urls = instances.urls()
        rng = random.Random(11)
        async with httpx.AsyncClient(timeout=60, limits=httpx.Limits(max_connections=200)) as http:

            async def interactive(n: int) -> str:
                response = await http.post(
                    f"{rng.choice(urls)}/v1/chat/completions",
                    json={
                        "model": ALIAS,
                        "messages": _chat_messages(n),
                        "max_tokens": INTERACTIVE_MAX_TOKENS,
                    },
                )
                if response.status_code == 200:
                    return "ok"
                try:
                    return str(response.json()["error"]["code"])
                except Exception:  # noqa: BLE001
                    return f"http_{response.status_code}"

            sim.reset()
            t0 = time.monotonic()
            sampler = QuotaSampler(sim, REGIONS, MINUTE_S, budget, every_s=0.25)
            sampler.start(t0)
            stop = asyncio.Event()
            load = _Interactive(interactive, INTERACTIVE_RATE, t0)
            load_task = asyncio.create_task(load.run(stop))
            gate = asyncio.Semaphore(16)
            submit_errors = 0

            async def submit(job: int) -> None:
                nonlocal submit_errors
                body = {
                    "request": {
                        "model": ALIAS,
                        "messages": _job_messages(job),
                        "max_tokens": MAX_TOKENS,
                    }
                }
                async with gate:
                    for attempt in range(3):  # a loaded machine drops a connection now and then
                        try:
                            response = await http.post(
                                f"{urls[(job + attempt) % k]}/v1/jobs", json=body
                            )
                        except httpx.TransportError:
                            continue
                        if response.status_code == 202:
                            return
                submit_errors += 1

            await asyncio.gather(*(submit(j) for j in range(jobs)))
            submit_s = time.monotonic() - t0
            table = TableClient.from_connection_string(
                azurite.connection_string, table_name=env["BACKLOG_JOBS_TABLE"]
            )
            progress: list[tuple[float, int]] = []
            async with table:
                succeeded = failed = 0
                while not budget.expired():
                    try:
                        succeeded, failed = await _count_terminal(table)
                    except Exception:  # noqa: BLE001 - a slow Azurite: ask again
                        await asyncio.sleep(0.5)
                        continue
                    progress.append((round(time.monotonic() - t0, 2), succeeded))
                    if succeeded + failed >= jobs - submit_errors:
                        break
                    await asyncio.sleep(0.5)
                wall = time.monotonic() - t0
                stop.set()
                await load_task
                await asyncio.sleep(1.0)  # stragglers: a duplicate would show at the simulator
                succeeded, failed = await _count_terminal(table)
            sampler.stop()
            log_tail = instances.log_tail(0, 4000)
            health = []
            for url in urls:
                try:
                    # the ledger's report is in the details (the dev server enforces no key)
                    health.append((await http.get(f"{url}/health/details")).json())
                except Exception:  # noqa: BLE001
                    health.append({})
    stats = [sim.stats(r) for r in REGIONS]
    return _summarize(
        name,
        k,
        stats,
        sampler,
        load.records,
        direct_s,
        wall=wall,
        jobs=jobs,
        succeeded=succeeded,
        failed=failed,
        progress=progress,
        extra={
            "ledger": ledger,
            "submit_s": round(submit_s, 2),
            "submit_errors": submit_errors,
            "hit_time_cap": budget.expired(),
            "progress": progress[:: max(1, len(progress) // 120)],
            "ledger_stats": _ledger_stats(health),
            "log_tail": log_tail[-1500:],
        },
    )


def _ledger_stats(health: list[dict[str, Any]]) -> dict[str, Any] | None:
    reports = [(h.get("gateway") or h).get("ledger") for h in health if isinstance(h, dict)]
    reports = [r for r in reports if r and "stats" in r]
    if not reports:
        return None
    total = {
        key: sum(r["stats"].get(key, 0) for r in reports)
        for key in (
            "reads",
            "writes",
            "conflicts",
            "backoffs",
            "backoff_s",
            "failures",
            "slow_leases",
            "leases",
            "refusals",
            "charges",
            "leased_tokens",
            "leased_requests",
            "expired_tokens",
            "expired_backlog_tokens",
            "expired_requests",
            "forgotten_requests",
        )
    }
    total["backoff_s"] = round(total["backoff_s"], 2)
    calls = max(1, total["charges"])
    total["transactions_per_1000_calls"] = round(
        1000.0 * (total["reads"] + total["writes"]) / calls, 1
    )
    total["instances_reporting"] = len(reports)
    return total


async def _litellm_scenario(
    k: int, sim: SimProcess, jobs: int, cap_s: float, direct_s: float
) -> dict[str, Any]:
    from ._peers import litellm_router

    routers = []
    for _ in range(k):
        router = litellm_router(
            [{"endpoint": sim.endpoint(r), "deployment": DEPLOYMENT} for r in REGIONS],
            num_retries=2,
            allowed_fails=3,
            cooldown_time=5,
            timeout=30.0,
            routing_strategy="usage-based-routing-v2",
        )
        for dep in router.model_list:  # each pod told the deployment's full quota
            dep["litellm_params"]["tpm"] = TPM
            dep["litellm_params"]["rpm"] = RPM
        routers.append(router)
    budget = Budget(cap_s)
    rng = random.Random(11)
    sim.reset()
    t0 = time.monotonic()
    sampler = QuotaSampler(sim, REGIONS, MINUTE_S, budget, every_s=0.25)
    sampler.start(t0)
    stop = asyncio.Event()

    async def interactive(n: int) -> str:
        router = rng.choice(routers)
        try:
            await router.acompletion(
                model=ALIAS, messages=_chat_messages(n), max_tokens=INTERACTIVE_MAX_TOKENS
            )
        except Exception as exc:  # noqa: BLE001
            return (
                "rate_limit"
                if "429" in str(exc) or "RateLimit" in type(exc).__name__
                else type(exc).__name__
            )
        return "ok"

    load = _Interactive(interactive, INTERACTIVE_RATE, t0)
    load_task = asyncio.create_task(load.run(stop))
    queue: asyncio.Queue[int] = asyncio.Queue()
    for j in range(jobs):
        queue.put_nowait(j)
    succeeded = lost = 0
    progress: list[tuple[float, int]] = []

    async def worker(router: Any) -> None:
        nonlocal succeeded, lost
        while not queue.empty() and not budget.expired():
            job = queue.get_nowait()
            try:
                await router.acompletion(
                    model=ALIAS, messages=_job_messages(job), max_tokens=MAX_TOKENS
                )
                succeeded += 1
                progress.append((round(time.monotonic() - t0, 2), succeeded))
            except Exception:  # noqa: BLE001 - the job is lost
                lost += 1

    await asyncio.gather(*(worker(r) for r in routers for _ in range(LITELLM_CONCURRENCY)))
    wall = time.monotonic() - t0
    stop.set()
    await load_task
    sampler.stop()
    stats = [sim.stats(r) for r in REGIONS]
    return _summarize(
        f"litellm K={k}",
        k,
        stats,
        sampler,
        load.records,
        direct_s,
        wall=wall,
        jobs=jobs,
        succeeded=succeeded,
        failed=lost,
        progress=progress,
        extra={"progress": progress[:: max(1, len(progress) // 120)]},
    )


# ------------------------------------------------------------------------------ figures


def _summarize(
    name: str,
    k: int,
    stats: list[dict[str, Any]],
    sampler: QuotaSampler,
    records: list[tuple[float, float, str]],
    direct_s: float,
    *,
    wall: float,
    jobs: int,
    succeeded: int,
    failed: int,
    extra: dict[str, Any],
    progress: list[tuple[float, int]],
) -> dict[str, Any]:
    requests = sum(s.get("deployments", {}).get(DEPLOYMENT, {}).get("requests", 0) for s in stats)
    throttled = sum(s["throttled"] for s in stats)
    # Chat calls only (the timer's region probes, GET /models, are requests too).
    served = sum(s.get("deployments", {}).get(DEPLOYMENT, {}).get("served", 0) for s in stats)
    ok = [r for r in records if r[2] == "ok"]
    interactive_by_window: dict[int, int] = {}
    for t, _, _ in ok:
        w = int(t // MINUTE_S)
        interactive_by_window[w] = interactive_by_window.get(w, 0) + INTERACTIVE_CHARGE
    totals = window_totals(sampler.edges, wall, MINUTE_S)
    windows = []
    for w, total in enumerate(totals):
        inter = interactive_by_window.get(w, 0)
        backlog = max(0, total - inter)
        windows.append(
            {
                "window": w,
                "total": total,
                "interactive": inter,
                "backlog": backlog,
                "share": round(backlog / max(1, QUOTA_PER_MINUTE - inter), 3),
            }
        )
    # The ramp is left out: the first minute, and every minute before the last job was submitted.
    ramp = max(MINUTE_S, float(extra.get("submit_s") or 0.0))
    after_ramp = [w for w in windows if w["window"] * MINUTE_S >= ramp]
    # So is the drain's tail: a minute that began with fewer jobs left than it could carry
    # (no pacing could fill it; a straggler re-driven late would otherwise add such a minute).
    for w in windows:
        w["jobs_left"] = jobs_left_at(progress, jobs, w["window"] * MINUTE_S)
        w["backlog_bound"] = w["jobs_left"] * JOB_CHARGE >= QUOTA_PER_MINUTE - w["interactive"]
    judged = [w for w in after_ramp if w["backlog_bound"]]
    share = _share_over(judged)
    share_all = _share_over(after_ramp)
    added = [max(0.0, lat - direct_s) * 1000.0 for _, lat, outcome in records if outcome == "ok"]
    outcomes: dict[str, int] = {}
    for _, _, outcome in records:
        outcomes[outcome] = outcomes.get(outcome, 0) + 1
    throttled_series = []
    prev_t, prev_th = 0.0, 0
    for t, _, _, th in sampler.samples:
        if t - prev_t > 1e-6:
            throttled_series.append((round(t, 3), round((th - prev_th) / (t - prev_t), 2)))
        prev_t, prev_th = t, th
    backlog_served = served - len(ok)
    return {
        "scenario": name,
        "k": k,
        "jobs": jobs,
        "succeeded": succeeded,
        "lost": jobs - succeeded,
        "failed": failed,
        "dup": max(0, backlog_served - succeeded),
        "wall_s": round(wall, 2),
        "jobs_per_s": round(succeeded / wall, 2) if wall > 0 else None,
        "upstream_requests": requests,
        "upstream_429": throttled,
        "upstream_429_share": round(throttled / requests, 4) if requests else 0.0,
        "share": share,
        "share_all_windows": share_all,  # the tail's minutes included (as before 2026-12-08)
        "judged_windows": [w["window"] for w in judged],
        "windows": windows,
        "interactive": {
            "calls": len(records),
            "ok": len(ok),
            "outcomes": outcomes,
            "all_throttled": outcomes.get("all_throttled", 0) + outcomes.get("rate_limit", 0),
            "added_ms_p50": round(percentile(added, 0.5), 1) if added else None,
            "added_ms_p99": round(percentile(added, 0.99), 1) if added else None,
        },
        "series": {
            "tokens_per_s": rate_series(sampler.samples),
            "throttled_per_s": throttled_series,
        },
        **extra,
    }


def jobs_left_at(progress: list[tuple[float, int]], jobs: int, t: float) -> int:
    """Jobs not yet succeeded at ``t``, by the last progress sample (time, succeeded) at or
    before it (none yet: all of them)."""
    done = 0
    for at, succeeded in progress:
        if at > t:
            break
        done = succeeded
    return jobs - done


def _share_over(windows: list[dict[str, Any]]) -> float | None:
    """Backlog tokens over what interactive left of the combined quota, in ``windows``."""
    left = sum(QUOTA_PER_MINUTE - w["interactive"] for w in windows)
    return round(sum(w["backlog"] for w in windows) / left, 3) if left > 0 else None


def _line(r: dict[str, Any]) -> str:
    if "error" in r:
        return f"error {r['error']}"
    share = r.get("share")
    return (
        f"share {share if share is not None else '-'}x, 429s {100 * r['upstream_429_share']:.1f}%, "
        f"interactive throttled {r['interactive']['all_throttled']}, lost {r['lost']}, dup {r['dup']}"
    )


# ------------------------------------------------------------------------------ repeats


def _median(values: list[float]) -> float:
    return float(statistics.median(values))


def aggregate(results: list[dict[str, Any]]) -> dict[str, Any]:
    """One K's repeats as one scenario: every judged figure (share, upstream 429 share,
    interactive ``all_throttled``, lost, dup) is the median of the runs that finished, with
    its range (lowest, highest) under ``range``; the rest (windows, series, ledger statistics)
    is the run whose share is the median (the lower middle one for an even count). A run that
    failed is listed under ``repeats`` and left out of the medians (``runs`` counts the
    others); when all failed, the first failure is the scenario's."""
    ok = [r for r in results if "error" not in r]
    compact = [_compact(r) for r in results]
    if not ok:
        return {**results[0], "runs": 0, "repeats": compact}
    by_share = sorted(ok, key=lambda r: (r["share"] is None, r["share"] or 0.0))
    middle = by_share[(len(by_share) - 1) // 2]
    figures = {
        "share": [r["share"] for r in ok if r["share"] is not None],
        "upstream_429_share": [r["upstream_429_share"] for r in ok],
        "upstream_429": [r["upstream_429"] for r in ok],
        "all_throttled": [r["interactive"]["all_throttled"] for r in ok],
        "lost": [r["lost"] for r in ok],
        "dup": [r["dup"] for r in ok],
    }
    out = {**middle, "interactive": dict(middle["interactive"])}
    spread: dict[str, list[float]] = {}
    for key, values in figures.items():
        if not values:
            out[key] = None
            continue
        value = _median(values)
        value = round(value, 4) if key.endswith("share") else value
        value = int(value) if value == int(value) and not key.endswith("share") else value
        if key == "all_throttled":
            out["interactive"]["all_throttled"] = value
        else:
            out[key] = value
        spread[key] = [min(values), max(values)]
    out["runs"] = len(ok)
    out["range"] = spread
    out["repeats"] = compact
    return out


def _compact(r: dict[str, Any]) -> dict[str, Any]:
    """A repeat's headline figures, as kept beside the median."""
    if "error" in r:
        return {"repeat": r.get("repeat"), "error": r["error"]}
    ledger = r.get("ledger_stats") or {}
    return {
        "repeat": r.get("repeat"),
        "share": r["share"],
        "share_all_windows": r.get("share_all_windows"),
        "upstream_429_share": r["upstream_429_share"],
        "upstream_429": r.get("upstream_429"),
        # when each 429 was counted (s from the start, sampled): at a window's edge or not
        "throttled_at": [t for t, rate in r.get("series", {}).get("throttled_per_s", []) if rate],
        "all_throttled": r["interactive"]["all_throttled"],
        "lost": r["lost"],
        "dup": r["dup"],
        "wall_s": r["wall_s"],
        "ledger_failures": ledger.get("failures"),
        "slow_leases": ledger.get("slow_leases"),
        "repeat_s": r.get("repeat_s"),
        "load_average": r.get("load_average"),
        "expired_tokens": ledger.get("expired_tokens"),
        "expired_backlog_tokens": ledger.get("expired_backlog_tokens"),
        "leased_tokens": ledger.get("leased_tokens"),
    }


def _runs(r: dict[str, Any]) -> int:
    return int(r.get("runs") or 1)


def _share_text(r: dict[str, Any]) -> str:
    """``0.95x`` and, for repeats, the range beside it: ``0.95x (range 0.931-0.962, 3 runs)``."""
    share = r.get("share")
    if share is None:
        return "-"
    text = f"{share:.2f}x"
    low_high = (r.get("range") or {}).get("share")
    if _runs(r) >= 2 and low_high:
        text += f" (range {low_high[0]:.3f}-{low_high[1]:.3f}, {_runs(r)} runs)"
    return text


def _summary(scenarios: dict[str, dict[str, Any]]) -> str:
    parts = []
    for k in (8, 4, 1):
        r = scenarios.get(f"ledger K={k}")
        if r is None:
            continue
        if "error" in r:
            parts.append(f"K={k} error")
            continue
        parts.append(
            f"K={k} share {_share_text(r)}, 429s {100 * r['upstream_429_share']:.1f}%, "
            f"interactive throttled {r['interactive']['all_throttled']}, lost {r['lost']}, dup {r['dup']}"
        )
    for label, key in (("ledger off", "ledger off K=8"), ("litellm", "litellm K=8")):
        r = scenarios.get(key)
        if r is not None and "error" not in r:
            parts.append(f"{label} K=8 429s {100 * r['upstream_429_share']:.1f}%")
    return "scaleout: " + "; ".join(parts)


def _spread(r: dict[str, Any], key: str) -> dict[str, Any]:
    """``runs`` and ``range`` for a target, where the figure is a median of repeats."""
    low_high = (r.get("range") or {}).get(key)
    if _runs(r) >= 2 and low_high:
        return {"runs": _runs(r), "range": low_high}
    return {"runs": _runs(r)}


def _targets(scenarios: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """Each K's targets, judged on the median of its runs (``met`` only if the median meets
    it), with the runs' range beside it."""
    out = []
    for k in (8, 4, 1):
        r = scenarios.get(f"ledger K={k}")
        if r is None or "error" in r:
            continue
        if k in TARGET_SHARE:
            out.append(
                {
                    "what": f"K={k} backlog share of what interactive leaves",
                    "target": f">= {TARGET_SHARE[k]}",
                    "measured": r["share"],
                    "met": r["share"] is not None and r["share"] >= TARGET_SHARE[k],
                    **_spread(r, "share"),
                }
            )
        out.append(
            {
                "what": f"K={k} upstream 429 share",
                "target": f"<= {TARGET_429:.1%}",
                "measured": r["upstream_429_share"],
                "met": r["upstream_429_share"] <= TARGET_429,
                **_spread(r, "upstream_429_share"),
            }
        )
        spread = r.get("range") or {}
        triple = ("all_throttled", "lost", "dup")
        target = {
            "what": f"K={k} interactive all_throttled / lost / dup",
            "target": "0 / 0 / 0",
            "measured": f"{r['interactive']['all_throttled']} / {r['lost']} / {r['dup']}",
            "met": r["interactive"]["all_throttled"] == 0 and r["lost"] == 0 and r["dup"] == 0,
            "runs": _runs(r),
        }
        if _runs(r) >= 2 and all(key in spread for key in triple):
            target["range"] = [" / ".join(f"{spread[key][i]:g}" for key in triple) for i in (0, 1)]
        out.append(target)
    return out


@dataclass(frozen=True, slots=True)
class Plan:
    """What one ``run`` measures: each K of ``ks`` ``repeats`` times (the repeats interleaved,
    K by K, so a change in the machine's load touches every K alike) with ``jobs`` jobs per
    scenario, then (``peers``) ledger off and LiteLLM at K = 8 once each, for comparison."""

    repeats: int
    ks: tuple[int, ...]
    jobs: int
    peers: bool


def plan_from(quick: bool, env: Mapping[str, str]) -> Plan:
    """The plan for ``run``: the published run's (``REPEATS`` x K = 1, 4, 8 with ``JOBS`` jobs,
    peers included) or quick mode's (one run of K = 1 and 8, 200 jobs), each part overridable
    from ``env``: ``BENCH_SCALEOUT_REPEATS``, ``BENCH_SCALEOUT_KS`` (``1,8``),
    ``BENCH_SCALEOUT_JOBS`` (a scenario's length: about ``drain_s(jobs)`` plus the start-up),
    ``BENCH_SCALEOUT_PEERS`` (``0``: skip ledger off and LiteLLM)."""
    repeats = int(env.get("BENCH_SCALEOUT_REPEATS") or (1 if quick else REPEATS))
    ks_text = env.get("BENCH_SCALEOUT_KS")
    ks = tuple(int(k) for k in ks_text.split(",")) if ks_text else ((1, 8) if quick else (1, 4, 8))
    jobs = int(env.get("BENCH_SCALEOUT_JOBS") or (200 if quick else JOBS))
    peers = (env.get("BENCH_SCALEOUT_PEERS") or "1") not in ("0", "false", "no")
    if repeats < 1 or jobs < 1 or not ks or min(ks) < 1:
        raise ValueError("BENCH_SCALEOUT_REPEATS, _JOBS and _KS must be positive")
    return Plan(repeats, ks, jobs, peers)


def run(quick: bool = False, plan: Plan | None = None) -> dict[str, Any]:
    started = time.monotonic()
    why_not = backlog_available()
    if why_not is not None:
        return {"name": "scaleout", "error": why_not, "summary": f"scaleout: not run ({why_not})"}
    plan = plan or plan_from(quick, os.environ)
    jobs = plan.jobs
    cap_s = 60.0 if quick else time_cap_s(jobs)
    ks = plan.ks
    runs: dict[str, list[dict[str, Any]]] = {f"ledger K={k}": [] for k in ks}
    scenarios: dict[str, dict[str, Any]] = {}
    with (
        SimProcess(
            _sim_regions(),
            minute_seconds=MINUTE_S,
            latency={"ttft_ms": TTFT_MS, "per_token_ms": 0},
            log_name="scaleout",
        ) as sim,
        Azurite() as azurite,
        _Broker() as broker,
    ):
        direct_s = asyncio.run(_direct_latency(sim))
        order = [(rep, f"ledger K={k}", k, True) for rep in range(plan.repeats) for k in ks]
        if plan.peers:
            order.append((0, "ledger off K=8", 8, False))
        for rep, name, k, ledger in order:
            repeat_started = time.monotonic()
            try:
                result = asyncio.run(
                    _instances_scenario(
                        name, k, ledger, sim, azurite, broker, jobs, cap_s, direct_s
                    )
                )
            except Exception as exc:  # noqa: BLE001 - one scenario failing must not hide the rest
                result = {"scenario": name, "error": f"{type(exc).__name__}: {exc}"}
            result["repeat"] = rep + 1
            result["repeat_s"] = round(time.monotonic() - repeat_started, 1)
            result["load_average"] = _load()
            if ledger:
                runs[name].append(result)
            else:
                scenarios[name] = result
            print(f"  scaleout {name} run {rep + 1}: {_line(result)}", flush=True)
        for name, results in runs.items():
            scenarios[name] = aggregate(results)
        if plan.peers:
            try:
                from ._peers import ensure_litellm

                ensure_litellm()
                scenarios["litellm K=8"] = asyncio.run(
                    _litellm_scenario(8, sim, jobs, cap_s, direct_s)
                )
            except Exception as exc:  # noqa: BLE001
                scenarios["litellm K=8"] = {
                    "scenario": "litellm K=8",
                    "error": f"{type(exc).__name__}: {exc}",
                }
            print(f"  scaleout litellm K=8: {_line(scenarios['litellm K=8'])}", flush=True)
    ordered = {f"ledger K={k}": scenarios[f"ledger K={k}"] for k in ks}
    ordered.update({n: r for n, r in scenarios.items() if n not in ordered})
    return {
        "name": "scaleout",
        "quick": quick,
        "setup": {
            "regions": list(REGIONS),
            "minute_s": MINUTE_S,
            "time_scale": TIME_SCALE,
            "tpm_per_region": TPM,
            "rpm_per_region": RPM,
            "jobs": jobs,
            "job_charge": JOB_CHARGE,
            "interactive_charge": INTERACTIVE_CHARGE,
            "interactive_rate_per_s": round(INTERACTIVE_RATE, 2),
            "interactive_share": INTERACTIVE_SHARE,
            "backlog_settings": BACKLOG_SETTINGS,
            "sim_ttft_ms": TTFT_MS,
            "direct_latency_ms": round(direct_s * 1000.0, 1),
            "time_cap_s": cap_s,
            "shortest_drain_s": round(drain_s(jobs), 1),
            "instances": list(ks),
            "repeats": plan.repeats,
            "peers": plan.peers,
        },
        "scenarios": ordered,
        "targets": _targets(ordered),
        "summary": _summary(ordered),
        "load_average": _load(),
        "elapsed_s": round(time.monotonic() - started, 1),
    }


def _load() -> list[float] | None:
    try:
        return [round(x, 1) for x in os.getloadavg()]
    except OSError:
        return None


def plot(result: dict[str, Any], path: Path) -> None:
    """Throughput and 429s over time at K = 8, with and without the ledger."""
    from ._plots import _plt

    plt = _plt()
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(9, 6), sharex=True)
    colors = {"ledger K=8": "#1f77b4", "ledger off K=8": "#d62728"}
    for name, color in colors.items():
        r = result["scenarios"].get(name)
        if not r or "error" in r:
            continue
        xs, ys = (
            zip(*r["series"]["tokens_per_s"], strict=True)
            if r["series"]["tokens_per_s"]
            else ((), ())
        )
        top.plot(xs, ys, color=color, label=name, linewidth=1)
        xs, ys = (
            zip(*r["series"]["throttled_per_s"]) if r["series"]["throttled_per_s"] else ((), ())
        )
        bottom.plot(xs, ys, color=color, label=name, linewidth=1)
    quota = QUOTA_PER_MINUTE / MINUTE_S
    top.axhline(quota, color="#7f7f7f", linestyle="--", linewidth=0.8, label="combined quota")
    top.set_ylabel("tokens charged / s")
    bottom.set_ylabel("upstream 429s / s")
    bottom.set_xlabel(f"seconds (quota minute = {MINUTE_S:g}s)")
    top.legend(loc="upper right", fontsize=8)
    bottom.legend(loc="upper right", fontsize=8)
    top.set_title("Scale-out: 8 instances draining the backlog, with and without the quota ledger")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    """``python -m bench.scaleout [--repeats N] [--ks 1,8] [--jobs N] [--no-peers] --out F``:
    a shortened run for comparing changes (not the published figures: ``python -m bench``)."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m bench.scaleout")
    parser.add_argument("--repeats", type=int, default=REPEATS)
    parser.add_argument("--ks", default="1,4,8")
    parser.add_argument("--jobs", type=int, default=JOBS)
    parser.add_argument("--no-peers", action="store_true")
    parser.add_argument("--out", required=True)
    args = parser.parse_args(argv)
    plan = Plan(
        args.repeats, tuple(int(k) for k in args.ks.split(",")), args.jobs, not args.no_peers
    )
    result = run(plan=plan)
    Path(args.out).write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
    print(result["summary"])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
