"""Backlog chaos: jobs through the real path (Service Bus test broker -> worker -> access layer ->
simulator, job store and parking in Azurite, the timer and both poison handlers) while the
simulator injects 429 storms (absurd retry-after values included), 5xx bursts, hangs and a
region outage, and the worker "crashes" on some deliveries.

Crashes: the checkpoint seam raises before the model call, after it (result not stored) or after
the terminal state is stored (reply not sent); and the queue side sometimes loses the completion
after the function returned (the host dying before it settles). Each crash is an exception
the host sees, so Service Bus redelivers.

Checks: every job reaches exactly one terminal state (one winning terminal write, counted from
the store's log), none is lost, and no job gets more than one reply. The counts are printed.

``python -m bench.chaos --jobs 2000`` (plain script; starts Azurite, the simulator and the broker
on free loopback ports and stops them). ``bench/tests/test_chaos.py`` runs it with a few hundred.
``run_kill_chaos`` (below) kills the app process for real: ``bench/tests/test_kill_chaos.py``.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import random
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
REGIONS = ("eastus2", "swedencentral")
CRASH_STAGES = ("before_call", "after_call", "after_finish")
CYCLE_S = 12.0

__all__ = ["ChaosReport", "KillReport", "main", "run", "run_chaos", "run_kill_chaos"]


@dataclass
class ChaosReport:
    jobs: int
    elapsed_s: float = 0.0
    succeeded: int = 0
    failed: Counter[str] = field(default_factory=Counter)
    not_terminal: int = 0
    terminal_writes: int = 0
    double_terminal_writes: int = 0
    replies: int = 0
    jobs_without_reply: int = 0
    duplicate_replies: int = 0
    deliveries: int = 0
    crashes: Counter[str] = field(default_factory=Counter)
    parks: int = 0
    timer_runs: int = 0
    dead_letter_deliveries: int = 0
    sim_requests: int = 0
    faults: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return (
            self.not_terminal == 0
            and self.double_terminal_writes == 0
            and self.terminal_writes == self.jobs
            and self.duplicate_replies == 0
            and self.jobs_without_reply == 0
            and self.succeeded + sum(self.failed.values()) == self.jobs
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "jobs": self.jobs,
            "elapsed_s": round(self.elapsed_s, 1),
            "succeeded": self.succeeded,
            "failed": dict(self.failed),
            "not_terminal": self.not_terminal,
            "terminal_writes": self.terminal_writes,
            "double_terminal_writes": self.double_terminal_writes,
            "replies": self.replies,
            "jobs_without_reply": self.jobs_without_reply,
            "duplicate_replies": self.duplicate_replies,
            "deliveries": self.deliveries,
            "crashes": dict(self.crashes),
            "parks": self.parks,
            "timer_runs": self.timer_runs,
            "dead_letter_deliveries": self.dead_letter_deliveries,
            "sim_requests": self.sim_requests,
            "faults": self.faults,
            "ok": self.ok,
        }

    def summary(self) -> str:
        failed = ", ".join(f"{code} {n}" for code, n in sorted(self.failed.items())) or "none"
        crashes = ", ".join(f"{stage} {n}" for stage, n in sorted(self.crashes.items())) or "none"
        return (
            f"chaos: {self.jobs} jobs in {self.elapsed_s:.1f}s: {self.succeeded} succeeded, failed: {failed}; "
            f"not terminal {self.not_terminal}; terminal writes {self.terminal_writes} (double {self.double_terminal_writes}); "
            f"replies {self.replies} (duplicated {self.duplicate_replies}, missing {self.jobs_without_reply}); "
            f"deliveries {self.deliveries}, crashes: {crashes}; parks {self.parks}; dead-letter deliveries "
            f"{self.dead_letter_deliveries}; timer runs {self.timer_runs}; simulator requests {self.sim_requests} -> "
            f"{'OK' if self.ok else 'FAILED'}"
        )


class _TerminalWrites(logging.Handler):
    """Counts winning terminal writes per job from shared.jobs._conclude's log records."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.per_job: Counter[str] = Counter()

    def emit(self, record: logging.LogRecord) -> None:
        job = getattr(record, "job", None)
        if isinstance(job, dict) and "status" in job and "job_id" in job:
            self.per_job[job["job_id"]] += 1


async def _chaos_driver(sim: Any, stop: asyncio.Event, faults: list[str]) -> None:
    """The fault timeline, repeated every ``CYCLE_S`` until ``stop`` (the absurd retry-after once)."""

    def inject(region: str, kind: str, **params: Any) -> None:
        sim.region(region).fault(kind, **params)
        faults.append(f"{region}:{kind}:{','.join(f'{k}={v}' for k, v in params.items())}")

    once = [
        (0.3, lambda: inject("swedencentral", "hang", count=2)),  # held until the read timeout
        (
            3.0,
            lambda: inject(
                "eastus2", "throttle", count=1, retry_after_s=86400, deployment="embed-eastus2"
            ),
        ),  # absurd
        (4.5, lambda: inject("swedencentral", "reset", duration_s=2.0)),  # region outage
    ]
    cycle = [
        (
            0.0,
            lambda: inject("eastus2", "throttle", duration_s=2.0, retry_after_s=1),
        ),  # 429 storm on the primary
        (0.0, lambda: inject("swedencentral", "error", duration_s=1.0, status=503)),  # 5xx burst
        (
            2.5,
            lambda: [inject(r, "throttle", duration_s=1.5, retry_after_s=2) for r in REGIONS],
        ),  # all throttled: parking
        (7.0, lambda: inject("eastus2", "error", duration_s=1.0, status=500)),
        (8.0, lambda: [inject(r, "throttle", duration_s=1.0, retry_after_ms=700) for r in REGIONS]),
    ]
    started = time.monotonic()
    rounds = 0
    while not stop.is_set():
        steps = sorted(
            (
                (at + rounds * CYCLE_S, action)
                for at, action in cycle + (once if rounds == 0 else [])
            ),
            key=lambda step: step[0],
        )
        for at, action in steps:
            delay = at - (time.monotonic() - started)
            if delay > 0:
                try:
                    await asyncio.wait_for(stop.wait(), timeout=delay)
                    return
                except TimeoutError:
                    pass
            action()
        rounds += 1
        delay = rounds * CYCLE_S - (time.monotonic() - started)
        if delay > 0:
            try:
                await asyncio.wait_for(stop.wait(), timeout=delay)
                return
            except TimeoutError:
                pass


async def run_chaos(
    *,
    jobs: int,
    sim: Any,
    broker: Any,
    storage_connection: str,
    seed: int = 7,
    crash_rate: float = 0.08,
    deadline_s: float = 40.0,
    timeout_s: float = 50.0,
    concurrency: int = 16,
    faults: bool = True,
    log: Any = print,
) -> ChaosReport:
    """Run ``jobs`` jobs through the backlog under faults; returns the counts (does not assert)."""
    import function_app
    from devserver.queues import QueueSide
    from shared.aoai import Gateway
    from shared.jobs import BacklogTriggers, JobMessage, delivery_from_servicebus
    from shared.runtime import build_backlog
    from shared.settings import load_backlog_settings
    from testpeers.gateway import settings_for_sim

    rng = random.Random(seed)
    tag = uuid.uuid4().hex[:8]
    env = {
        "BACKLOG_QUEUE": f"chaos{tag}",
        "PARKING_QUEUE": f"chaosparked{tag}",
        "RETRY_TIMER_SCHEDULE": "*/1 * * * * *",
        "BACKLOG_JOBS_TABLE": f"chaosjobs{tag}",
        "BACKLOG_RESULTS_CONTAINER": f"chaosresults{tag}",
        "ServiceBusConnection": broker.connection_string,
        "AzureWebJobsStorage": storage_connection,
        "BACKLOG_JOB_TIMEOUT_S": "10",
        "BACKLOG_DLQ_REDRIVE_DELAY_S": "1",
        "BACKLOG_MAX_DLQ_REDRIVES": "3",
        "BACKLOG_DEFER_S": "1",
        "BACKLOG_REDRIVE_CLAIM_S": "5",
        "BACKLOG_PROBE_TIMEOUT_S": "1",
        "BACKLOG_REPLY_QUEUES": f'{{"*": ["chaosreplies{tag}"]}}',
    }
    reply_queue = f"chaosreplies{tag}"
    broker.create_queue(reply_queue)
    report = ChaosReport(jobs=jobs)
    crash_plan: dict[str, str] = {}
    crashed: set[tuple[str, str]] = set()

    async def checkpoint(stage: str, job_id: str) -> None:
        if crash_plan.get(job_id) == stage and (job_id, stage) not in crashed:
            crashed.add((job_id, stage))
            report.crashes[stage] += 1
            raise RuntimeError(f"chaos: worker crash at {stage}")

    gateway = Gateway(settings_for_sim(sim))
    backlog = build_backlog(load_backlog_settings(env), gateway, checkpoint=checkpoint)
    writes = _TerminalWrites()
    core_log = logging.getLogger("shared.jobs._conclude")
    core_log.addHandler(writes)
    previous_level = core_log.level
    core_log.setLevel(logging.INFO)
    lost_completion: set[str] = set()

    triggers = BacklogTriggers(backlog)  # the app's wiring, with faults around it

    async def worker(msg: Any) -> None:
        report.deliveries += 1
        delivery = delivery_from_servicebus(msg)
        await triggers.worker(msg)
        key = f"{delivery.message_id}:{delivery.sequence_number}"
        if key not in lost_completion and rng.random() < crash_rate / 2:
            lost_completion.add(key)  # the host died after the function returned: no completion
            report.crashes["lost_completion"] += 1
            raise RuntimeError("chaos: completion lost")

    async def dead_letters(msg: Any) -> None:
        report.dead_letter_deliveries += 1
        await triggers.dead_letters(msg)

    async def timer(arg: Any) -> None:
        report.timer_runs += 1
        await triggers.timer(arg)

    handlers = {
        "backlog_worker": worker,
        "backlog_dead_letters": dead_letters,
        "backlog_timer": timer,
        "parking_poison": triggers.parking_poison,
    }
    side = QueueSide(
        function_app.app,
        env,
        host_json={"extensions": {"serviceBus": {"maxConcurrentCalls": concurrency}}},
    )
    side.build(wrap=lambda name, default: handlers.get(name, default))
    stop = asyncio.Event()
    faults_stop = asyncio.Event()
    started = time.monotonic()
    pumps = asyncio.create_task(side.run(stop))
    driver = asyncio.create_task(
        _chaos_driver(sim, faults_stop, report.faults) if faults else faults_stop.wait()
    )
    ids: list[str] = []
    submits: list[Any] = []
    try:
        deadline = None
        for i in range(jobs):
            roll = rng.random()
            if roll < 0.2:
                request: dict[str, Any] = {
                    "model": "text-embedding-3-small",
                    "input": [f"chaos {i} {k}" for k in range(rng.randint(1, 4))],
                }
            elif roll < 0.25:
                request = {
                    "model": "gpt-4o",
                    "messages": [{"role": "user", "content": f"chaos {i} SIM_FILTER_PROMPT"}],
                    "max_tokens": 8,
                }
            else:
                request = {
                    "model": "gpt-4o",
                    "messages": [{"role": "user", "content": f"chaos job {i}"}],
                    "max_tokens": 8,
                }
            if deadline is None:
                from datetime import datetime, timedelta

                deadline = datetime.now(UTC) + timedelta(seconds=deadline_s)
            job = JobMessage(
                request=request, reply_to=reply_queue, priority=rng.randint(0, 9), deadline=deadline
            )
            if rng.random() < crash_rate:
                crash_plan[job.job_id] = rng.choice(CRASH_STAGES)
            ids.append(job.job_id)
            submits.append(job)
        slots = asyncio.Semaphore(32)  # many clients submitting at once

        async def submit(job: Any) -> None:
            async with slots:
                await backlog.submit(job)

        await asyncio.gather(*(submit(job) for job in submits))
        log(f"chaos: {jobs} jobs submitted in {time.monotonic() - started:.1f}s")
        store = backlog.services.store
        pending = set(ids)
        records: dict[str, Any] = {}
        last_note = waiting = time.monotonic()
        # The wait is counted from the last submission: on a loaded machine submitting alone can
        # take most of the budget, and the jobs' deadlines already bound the work itself.
        while pending and time.monotonic() - waiting < timeout_s:
            for job_id in list(pending):
                record = await store.get(job_id)
                if record is not None and record.terminal and record.reply_state != "pending":
                    records[job_id] = record
                    pending.discard(job_id)
            if pending:
                if time.monotonic() - last_note > 5:
                    log(
                        f"chaos: {len(pending)} jobs still running after {time.monotonic() - started:.0f}s"
                    )
                    last_note = time.monotonic()
                await asyncio.sleep(0.25)
        report.elapsed_s = time.monotonic() - started
        await asyncio.sleep(0.5)  # let stragglers (duplicates being processed) settle
    finally:
        faults_stop.set()
        stop.set()
        await asyncio.gather(driver, pumps, return_exceptions=True)
        core_log.removeHandler(writes)
        core_log.setLevel(previous_level)
    report.not_terminal = len(ids) - len(records)
    for record in records.values():
        if record.status == "succeeded":
            report.succeeded += 1
        else:
            report.failed[(record.error or {}).get("code", "unknown")] += 1
        report.parks += record.parks
    report.terminal_writes = sum(writes.per_job[j] for j in ids)
    report.double_terminal_writes = sum(1 for j in ids if writes.per_job[j] > 1)
    per_job_replies: Counter[str] = Counter(
        str(m.correlation_id) for m in broker.messages(reply_queue)
    )
    report.replies = sum(per_job_replies.values())
    report.duplicate_replies = sum(n - 1 for n in per_job_replies.values() if n > 1)
    report.jobs_without_reply = sum(1 for j in records if per_job_replies[j] == 0)
    report.sim_requests = sum(sim.region(r).stats()["requests"] for r in REGIONS)
    await backlog.aclose()
    await gateway.aclose()
    return report


# -- real crashes: the app as a process, killed with SIGKILL ----------------------------------


@dataclass
class KillReport:
    """Counts from the job store's rows and the reply queue (not from logs)."""

    jobs: int
    kills: int = 0
    restarts: int = 0
    elapsed_s: float = 0.0
    succeeded: int = 0
    failed: Counter[str] = field(default_factory=Counter)
    lost: int = 0  # not terminal (or reply still pending) when the run ended
    terminal_writes: int = 0  # audit rows written with each winning terminal write
    duplicated_terminal_writes: int = 0  # jobs with more than one
    replies_sent: int = 0  # accepted by the reply queue, before duplicate detection
    duplicate_replies_before_detection: int = 0
    duplicate_replies_after_detection: int = 0  # what consumers see
    jobs_without_reply: int = 0
    parks: int = 0

    @property
    def ok(self) -> bool:
        return (
            self.lost == 0
            and self.duplicated_terminal_writes == 0
            and self.terminal_writes == self.jobs
            and self.duplicate_replies_after_detection == 0
            and self.jobs_without_reply == 0
            and self.kills > 0
        )

    def as_dict(self) -> dict[str, Any]:
        out = {k: getattr(self, k) for k in self.__dataclass_fields__}
        out["failed"] = dict(self.failed)
        out["elapsed_s"] = round(self.elapsed_s, 1)
        out["ok"] = self.ok
        return out

    def summary(self) -> str:
        failed = ", ".join(f"{code} {n}" for code, n in sorted(self.failed.items())) or "none"
        return (
            f"kill -9 chaos: {self.jobs} jobs, app killed {self.kills}x (SIGKILL) and restarted, "
            f"{self.elapsed_s:.1f}s: {self.succeeded} succeeded, failed: {failed}; lost {self.lost}; "
            f"terminal writes {self.terminal_writes} (duplicated {self.duplicated_terminal_writes}); "
            f"replies sent {self.replies_sent}, duplicate replies before duplicate detection "
            f"{self.duplicate_replies_before_detection}, after {self.duplicate_replies_after_detection}, "
            f"missing {self.jobs_without_reply}; parks {self.parks} -> {'OK' if self.ok else 'FAILED'}"
        )


def _start_app(env: dict[str, str], port: int, log_path: Path) -> subprocess.Popen[bytes]:
    log = open(log_path, "ab")  # noqa: SIM115 - handed to the child, closed with it
    try:
        return subprocess.Popen(
            [sys.executable, "-m", "devserver", "--port", str(port), "--log-level", "warning"],
            env=env,
            cwd=ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    finally:
        log.close()


async def run_kill_chaos(
    *,
    jobs: int,
    sim: Any,
    broker: Any,
    storage_connection: str,
    kills: int = 3,
    seed: int = 11,
    submit_over_s: float = 8.0,
    timeout_s: float = 60.0,
    workdir: Path | None = None,
    log: Any = print,
) -> KillReport:
    """``python -m devserver`` (HTTP, Service Bus pumps, timer, poison queue) as a separate process
    against ``broker``, Azurite and ``sim``; jobs flow in over ``submit_over_s`` while the process
    is killed with SIGKILL ``kills`` times at random points and restarted. The broker should use
    short locks (a killed worker's messages come back when their lock expires)."""
    import os

    from shared.jobs import JobMessage
    from shared.runtime import build_backlog
    from shared.settings import load_backlog_settings
    from testpeers.devserver import settings_env
    from testpeers.gateway import settings_for_sim
    from testpeers.ports import free_port, wait_for_port

    rng = random.Random(seed)
    tag = uuid.uuid4().hex[:8]
    reply_queue = f"killreplies{tag}"
    broker.create_queue(reply_queue, duplicate_detection_window_s=600)
    backlog_env = {
        "BACKLOG_QUEUE": f"kill{tag}",
        "PARKING_QUEUE": f"killparked{tag}",
        "RETRY_TIMER_SCHEDULE": "*/1 * * * * *",
        "BACKLOG_JOBS_TABLE": f"killjobs{tag}",
        "BACKLOG_RESULTS_CONTAINER": f"killresults{tag}",
        "BACKLOG_REPLY_QUEUES": f'{{"*": ["{reply_queue}"]}}',
        "ServiceBusConnection": broker.connection_string,
        "AzureWebJobsStorage": storage_connection,
        "BACKLOG_JOB_TIMEOUT_S": "10",
        "BACKLOG_DLQ_REDRIVE_DELAY_S": "1",
        "BACKLOG_DEFER_S": "1",
        "BACKLOG_REDRIVE_CLAIM_S": "3",
        "BACKLOG_PROBE_TIMEOUT_S": "1",
        "BACKLOG_REPLY_LEASE_S": "5",
    }
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GATEWAY_", "BACKLOG_"))}
    env.update(settings_env(settings_for_sim(sim)))
    env.update(backlog_env)
    workdir = workdir or Path(tempfile.mkdtemp(prefix="killchaos-"))
    app_log = workdir / "devserver.log"
    port = free_port()
    report = KillReport(jobs=jobs)
    backlog = build_backlog(load_backlog_settings(backlog_env), gateway=None)
    store = backlog.services.store
    started = time.monotonic()
    proc = _start_app(env, port, app_log)
    await asyncio.to_thread(wait_for_port, port, timeout=60, proc=proc)
    flow = time.monotonic()  # jobs, kills and storms are timed from here

    async def killer() -> None:
        nonlocal proc
        moments = sorted(rng.uniform(0.8, submit_over_s + 2.0) for _ in range(kills))
        for at in moments:
            await asyncio.sleep(max(0.0, at - (time.monotonic() - flow)))
            proc.kill()  # SIGKILL: no shutdown, no settlement, no cleanup
            await asyncio.to_thread(proc.wait)
            report.kills += 1
            proc = _start_app(env, port, app_log)
            report.restarts += 1
            await asyncio.to_thread(wait_for_port, port, timeout=60, proc=proc)

    async def storms() -> None:
        # all regions throttled for a while, twice: jobs park and are re-driven by the timer
        for at in (1.0, submit_over_s * 0.6):
            await asyncio.sleep(max(0.0, at - (time.monotonic() - flow)))
            for region in REGIONS:
                sim.region(region).fault("throttle", duration_s=2.0, retry_after_s=1)

    ids: list[str] = []
    killing = asyncio.create_task(killer())
    storming = asyncio.create_task(storms())
    try:
        for i in range(jobs):
            await asyncio.sleep(max(0.0, i * submit_over_s / jobs - (time.monotonic() - flow)))
            job = JobMessage(
                request={
                    "model": "gpt-4o",
                    "messages": [{"role": "user", "content": f"kill chaos job {i}"}],
                    "max_tokens": 8,
                },
                reply_to=reply_queue,
                priority=rng.randint(0, 9),
            )
            await backlog.submit(job)
            ids.append(job.job_id)
        await killing
        await storming
        pending = set(ids)
        last_note = time.monotonic()
        while pending and time.monotonic() - started < timeout_s:
            for job_id in list(pending):
                record = await store.get(job_id)
                if record is not None and record.terminal and record.reply_state != "pending":
                    pending.discard(job_id)
            if pending:
                if time.monotonic() - last_note > 5:
                    log(
                        f"kill chaos: {len(pending)} jobs not done after {time.monotonic() - started:.0f}s"
                    )
                    last_note = time.monotonic()
                await asyncio.sleep(0.25)
        report.elapsed_s = time.monotonic() - started
    finally:
        killing.cancel()
        storming.cancel()
        proc.terminate()
        try:
            await asyncio.wait_for(asyncio.to_thread(proc.wait), 15)
        except TimeoutError:
            proc.kill()
    for job_id in ids:
        record = await store.get(job_id)
        if record is None or not record.terminal or record.reply_state == "pending":
            report.lost += 1
            continue
        if record.status == "succeeded":
            report.succeeded += 1
        else:
            report.failed[(record.error or {}).get("code", "unknown")] += 1
        report.parks += record.parks
        writes = await store.terminal_writes(job_id)
        report.terminal_writes += writes
        report.duplicated_terminal_writes += writes > 1
    per_job: Counter[str] = Counter(str(m.correlation_id) for m in broker.messages(reply_queue))
    dropped = broker.duplicates_dropped(reply_queue)
    report.duplicate_replies_after_detection = sum(n - 1 for n in per_job.values() if n > 1)
    report.duplicate_replies_before_detection = report.duplicate_replies_after_detection + dropped
    report.replies_sent = sum(per_job.values()) + dropped
    report.jobs_without_reply = sum(1 for j in ids if per_job[j] == 0)
    await backlog.aclose()
    return report


# -- plain-script entry point -------------------------------------------------------------------


def _start_azurite(workdir: Path) -> Any:
    """Azurite through the test suite's starter (``testpeers.azurite``); ``.stop()`` ends it."""
    from testpeers.azurite import start_azurite

    workdir.mkdir(parents=True, exist_ok=True)
    return start_azurite(workdir)


def run_standalone(
    jobs: int, *, seed: int = 7, timeout_s: float | None = None, **options: Any
) -> ChaosReport:
    """Start Azurite, the simulator and the broker on free loopback ports, run, stop them all."""
    import sbbroker
    from testpeers.sim import start_sim

    workdir = Path(tempfile.mkdtemp(prefix="chaos-"))
    (workdir / "sim").mkdir(parents=True, exist_ok=True)
    budget = timeout_s if timeout_s is not None else max(60.0, jobs / 10)
    azurite = sim = broker = None
    try:
        azurite = _start_azurite(workdir / "azurite")
        connection = azurite.connection_string
        sim = start_sim(workdir=workdir / "sim")
        broker = sbbroker.Broker(port=0).start_in_thread()
        return asyncio.run(
            run_chaos(
                jobs=jobs,
                sim=sim,
                broker=broker,
                storage_connection=connection,
                seed=seed,
                deadline_s=budget * 0.8,
                timeout_s=budget,
                **options,
            )
        )
    finally:
        if broker is not None:
            broker.stop()
        if sim is not None:
            sim.stop()
        if azurite is not None:
            azurite.stop()
        shutil.rmtree(workdir, ignore_errors=True)


def run_kill_standalone(jobs: int, *, kills: int = 4, seed: int = 11) -> KillReport:
    """The SIGKILL chaos with its own Azurite, simulator and broker (short locks)."""
    import sbbroker
    from testpeers.sim import start_sim

    workdir = Path(tempfile.mkdtemp(prefix="killchaos-"))
    (workdir / "sim").mkdir(parents=True, exist_ok=True)
    azurite = sim = broker = None
    try:
        azurite = _start_azurite(workdir / "azurite")
        connection = azurite.connection_string
        sim = start_sim(workdir=workdir / "sim")
        broker = sbbroker.Broker(port=0, lock_duration_s=3).start_in_thread()
        return asyncio.run(
            run_kill_chaos(
                jobs=jobs,
                sim=sim,
                broker=broker,
                storage_connection=connection,
                kills=kills,
                seed=seed,
                timeout_s=max(90.0, jobs / 2),
                workdir=workdir,
            )
        )
    finally:
        if broker is not None:
            broker.stop()
        if sim is not None:
            sim.stop()
        if azurite is not None:
            azurite.stop()
        shutil.rmtree(workdir, ignore_errors=True)


def run(quick: bool = False) -> dict[str, Any]:
    """``python -m bench`` hook: the in-process chaos, then the SIGKILL chaos."""
    report = run_standalone(300 if quick else 2000)
    kill = run_kill_standalone(60 if quick else 200, kills=3 if quick else 5)
    return {
        "name": "chaos",
        **report.as_dict(),
        "kill": kill.as_dict(),
        "summary": f"{report.summary()} | {kill.summary()}",
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.chaos",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--jobs", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument(
        "--timeout",
        type=float,
        default=None,
        help="seconds to wait for every job (default max(60, jobs/10))",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.ERROR, format="%(levelname)s %(name)s: %(message)s")
    report = run_standalone(args.jobs, seed=args.seed, timeout_s=args.timeout)
    print(report.summary())
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
