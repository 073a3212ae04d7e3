"""The timer trigger's logic: probe regions, re-drive parked jobs within quota, give up on some.

1. ``gateway.probe_regions()`` updates the shared region state (failover and fail-back).
2. Parked jobs that are visible again (their time has come) go back on the backlog, highest
   priority first, planned over the horizon until the next run (``redrive_horizon_s``): per alias,
   what ``gateway.capacity(alias)`` says is free now plus what its quota replenishes over the
   horizon, in requests and in tokens (each job's estimated cost is in its parking envelope).
   Each job is sent with a Service Bus scheduled enqueue time spread over the horizon at the
   sustained rate (``_plan``), so a reopened quota window gets no thundering herd; jobs beyond
   the horizon are looked at again after ``defer_s``. Jobs an earlier run scheduled that are not
   delivered yet count as already planned (``_pending``), so they are not counted twice.
3. Jobs parked ``max_parks`` times, or past their deadline, move to ``<parking>-poison``.

Every step is per message: one failure is counted and reported, the rest go on; a message that
failed stays hidden for ``redrive_claim_s`` and is retried by a later run.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from ..aoai import UnknownModel
from ._bus import Outgoing
from ._conclude import JobServices
from ._delivery import PROP_PARKS, PROP_PRIORITY, PROP_REDRIVES
from ._parking import ParkedJob
from ._plan import Allowance, plan_redrive
from ._records import JobRecord
from ._schedule import redrive_horizon_s
from ._store import Transition

__all__ = ["TimerReport", "redrive_parked_now", "run_timer"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class TimerReport:
    """What one timer run did. ``failed`` > 0 or ``errors`` means partial failure."""

    probes: dict[str, bool] = field(default_factory=dict)
    moved: int = 0
    scheduled: int = (
        0  # of the moved jobs, those sent with a scheduled enqueue time (later than now)
    )
    deferred: int = 0
    poisoned: int = 0
    dropped: int = 0  # parked copies of jobs that were already terminal
    failed: int = 0
    errors: tuple[str, ...] = ()
    horizon_s: float = 0.0
    plan: dict[str, dict[str, Any]] = field(
        default_factory=dict
    )  # per alias: allowance, jobs sent, last delay

    @property
    def ok(self) -> bool:
        return self.failed == 0 and not self.errors

    def as_dict(self) -> dict[str, Any]:
        return {
            "probes": dict(self.probes),
            "moved": self.moved,
            "scheduled": self.scheduled,
            "deferred": self.deferred,
            "poisoned": self.poisoned,
            "dropped": self.dropped,
            "failed": self.failed,
            "errors": list(self.errors),
            "horizon_s": self.horizon_s,
            "plan": {alias: dict(summary) for alias, summary in self.plan.items()},
        }


async def run_timer(svc: JobServices, *, probe: bool = True) -> TimerReport:
    started = svc.clock()
    counts = {"moved": 0, "scheduled": 0, "deferred": 0, "poisoned": 0, "dropped": 0, "failed": 0}
    errors: list[str] = []
    probes: dict[str, bool] = {}
    if probe:
        try:
            probes = dict(
                await asyncio.wait_for(
                    svc.gateway.probe_regions(), timeout=svc.settings.probe_timeout_s
                )
            )
        except Exception as exc:  # noqa: BLE001 - a failed or slow probe must not stop the re-drive
            errors.append(f"probe_regions: {exc.__class__.__name__}")
    settings = svc.settings
    batch: list[ParkedJob] = []
    async for item in svc.parking.due(
        max_messages=settings.redrive_max_per_run,
        claim_s=settings.redrive_claim_s,
        batch=settings.redrive_batch,
    ):
        if isinstance(item, ParkedJob):
            batch.append(item)
            continue
        reason, handle = item
        try:
            await svc.parking.to_poison_raw(getattr(handle, "content", "") or "", handle, reason)
            counts["poisoned"] += 1
        except Exception as exc:  # noqa: BLE001
            counts["failed"] += 1
            errors.append(f"poison unreadable: {exc.__class__.__name__}")
    batch.sort(key=lambda p: (-p.priority, p.retry_at))
    now = svc.clock()
    # Until the next run: the horizon from this run's start, less what probing and reading took.
    horizon = max(0.0, redrive_horizon_s(settings) - max(0.0, now - started))
    # Jobs to poison need no quota: they are left out of the plan.
    verdicts = {id(parked): _verdict(svc, parked, now) for parked in batch}
    by_alias: dict[str, list[ParkedJob]] = {}
    for parked in batch:
        if verdicts[id(parked)] is None:
            by_alias.setdefault(parked.model, []).append(parked)
    delays: dict[int, float | None] = {}
    plan: dict[str, dict[str, Any]] = {}
    default_cost: int | None = None
    for alias, jobs in by_alias.items():
        costs: list[int] = []
        for parked in jobs:
            if parked.cost is None and default_cost is None:
                default_cost = _default_cost(svc)
            costs.append(parked.cost if parked.cost is not None else int(default_cost or 0))
        earlier = await _pending(svc, alias, now)
        allowance = replace(
            _allowance(svc, alias),
            pending_requests=len(earlier),
            pending_tokens=sum(cost for _, cost in earlier),
        )
        planned = plan_redrive(costs, allowance, horizon)
        delays.update((id(parked), delay) for parked, delay in zip(jobs, planned))
        scheduled = [
            (now + d, c)
            for d, c in zip(planned, costs, strict=False)
            if d is not None and d >= _MIN_SCHEDULE_S
        ]
        if scheduled or earlier:
            await _remember(svc, alias, earlier + scheduled)
        sent = [d for d in planned if d is not None]
        plan[alias] = {
            "pending": len(earlier),
            "requests": round(allowance.requests_within(horizon), 1),
            "tokens": round(allowance.tokens_within(horizon)),
            "sent": len(sent),
            "deferred": len(planned) - len(sent),
            "last_s": round(max(sent), 3) if sent else None,
        }
    slots = asyncio.Semaphore(settings.redrive_concurrency)

    async def guarded(parked: ParkedJob) -> None:
        async with slots:
            try:
                outcome = await _one(svc, parked, verdicts[id(parked)], delays.get(id(parked)), now)
            except Exception as exc:  # noqa: BLE001 - counted; the message reappears after the claim
                counts["failed"] += 1
                errors.append(f"{parked.job_id}: {exc.__class__.__name__}")
                logger.warning(
                    "timer: job %s not moved: %s",
                    parked.job_id,
                    exc.__class__.__name__,
                    extra={"correlation_id": parked.job_id},
                )
                return
            if outcome == "scheduled":
                counts["moved"] += 1
            counts[outcome] += 1

    # The plan is made in priority order before any I/O, so concurrency cannot reorder it.
    await asyncio.gather(*(guarded(p) for p in batch))
    report = TimerReport(
        probes=probes, errors=tuple(errors[:50]), horizon_s=horizon, plan=plan, **counts
    )
    if report.moved or report.poisoned or report.failed or report.deferred:
        logger.info("timer: %s", report.as_dict(), extra={"timer": report.as_dict()})
    return report


def _verdict(svc: JobServices, parked: ParkedJob, now: float) -> str | None:
    """Why ``parked`` goes to the poison queue, or None."""
    if parked.deadline is not None and parked.deadline <= now:
        return "deadline_exceeded"
    if parked.parks >= svc.settings.max_parks:
        return "parked_too_often"
    return None


async def _one(
    svc: JobServices, parked: ParkedJob, verdict: str | None, delay: float | None, now: float
) -> str:
    if verdict is not None:
        await _poison_unless_done(svc, parked, verdict)
        return "poisoned"
    if delay is None:
        await svc.parking.defer(parked.handle, svc.settings.defer_s)
        return "deferred"
    record = await svc.store.get(parked.job_id)
    live = is_live_copy(parked)
    if record is None or record.terminal or not live(record):
        await _drop(svc, parked, record)
        return "dropped"
    step = await _requeue(svc, parked, record, delay=delay, now=now)
    if not step.moved:
        await _drop(svc, parked, step.record)
        return "dropped"
    await svc.parking.remove(parked)
    await svc.parking.forget_blob(parked)
    return "scheduled" if delay >= _MIN_SCHEDULE_S else "moved"


async def _requeue(
    svc: JobServices, parked: ParkedJob, record: JobRecord, *, delay: float, now: float
) -> Transition:
    """Move the job to ``queued`` from the live parked copy ``parked`` and send it to the backlog
    (the timer's re-drive and the operations' re-drive now). ``moved`` False: not the live copy."""
    # Recorded first (conditional on the ETag, only from this parked copy), sent second: a worker
    # that takes the sent message and sets ``running`` is never overwritten. A crash after the
    # record and before the send leaves the row ``queued`` from this copy, which reappears after
    # its claim and is sent then; a second send after a lost ``remove`` is dropped by the worker.
    # The body is read before the record: a copy whose body cannot be read leaves the row as it was.
    job_body = await svc.parking.job_body(parked)
    live = is_live_copy(parked)
    step = await svc.store.advance(parked.job_id, "queued", current=record, allow=live)
    if not step.moved:
        return step
    body = await svc.outgoing_body(parked.job_id, job_body)
    copy = parked.park_id or f"p{parked.parks}"
    await svc.bus.send(
        svc.settings.queue,
        Outgoing(
            body=body,
            message_id=f"{parked.job_id}.{copy}",  # not the job id: duplicate detection saw that one
            correlation_id=parked.job_id,
            application_properties={
                PROP_PRIORITY: parked.priority,
                PROP_PARKS: parked.parks,
                PROP_REDRIVES: parked.redrives,
            },
            scheduled_at=now + delay if delay >= _MIN_SCHEDULE_S else None,
        ),
    )
    await svc.checkpoint("after_redrive_send", parked.job_id)
    return step


async def redrive_parked_now(svc: JobServices, job_ids: list[str]) -> list[dict[str, Any]]:
    """The operations' re-drive: send each parked job to the backlog now, before its retry time.
    The body is read from the parked copy's blob (named by the row's ``park_id``), the row moves
    ``parked -> queued`` from that copy exactly as the timer moves it, and the invisible parked
    message is left where it is: when it surfaces the timer drops it (the row has moved on) or,
    after a crash between the record and the send, sends the job then. Per job:
    ``{"job_id", "redriven", "status"}`` (plus ``"error"`` when a step failed)."""
    out: list[dict[str, Any]] = []
    for job_id in job_ids:
        entry: dict[str, Any] = {"job_id": job_id, "redriven": False}
        try:
            record = await svc.store.get(job_id)
            entry["status"] = record.status if record is not None else "unknown"
            if record is not None and record.status == "parked" and record.park_id:
                step = await _requeue(
                    svc, _parked_copy(svc, record), record, delay=0.0, now=svc.clock()
                )
                entry["redriven"] = step.moved
                entry["status"] = step.record.status if step.record is not None else "unknown"
        except Exception as exc:  # noqa: BLE001 - reported per job; the parked copy stays as it was
            entry["error"] = exc.__class__.__name__
            logger.warning(
                "ops: parked job %s not re-driven: %s",
                job_id,
                exc.__class__.__name__,
                extra={"correlation_id": job_id},
            )
        else:
            if entry["redriven"]:
                logger.warning(
                    "ops: parked job %s re-driven now", job_id, extra={"correlation_id": job_id}
                )
        out.append(entry)
    return out


def _parked_copy(svc: JobServices, record: JobRecord) -> ParkedJob:
    """The live parked copy as the row names it (its message is invisible; its body is in blob)."""
    park_id = record.park_id or ""
    return ParkedJob(
        job_id=record.job_id,
        model=record.model or "",
        priority=record.priority,
        parks=record.parks,
        redrives=record.redrives,
        retry_at=record.retry_at or 0.0,
        deadline=None,
        job=None,
        job_blob=svc.parking.body_blob(record.job_id, park_id),
        park_id=park_id,
    )


def is_live_copy(parked: ParkedJob) -> Callable[[JobRecord], bool]:
    """The row names this parked copy as the job's live one: ``parked`` from it, or ``queued``
    from it with no worker yet (a re-drive whose send did not happen or must be repeated)."""

    def check(record: JobRecord) -> bool:
        if record.park_id != parked.park_id:
            return False
        return record.status == "parked" or (record.status == "queued" and not record.runner)

    return check


async def _drop(svc: JobServices, parked: ParkedJob, record: JobRecord | None) -> None:
    """A parked copy that is not the job's live one (finished, moved on, or parked twice)."""
    if record is None or not record.terminal:
        logger.info(
            "timer: parked copy %s of job %s is not the live one (row %s); dropped",
            parked.park_id,
            parked.job_id,
            record.status if record else "missing",
            extra={"correlation_id": parked.job_id},
        )
    await svc.parking.remove(parked)
    await svc.parking.forget_blob(parked)


async def _poison_unless_done(svc: JobServices, parked: ParkedJob, reason: str) -> None:
    record = await svc.store.get(parked.job_id)
    if record is None or record.terminal or not is_live_copy(parked)(record):
        await _drop(svc, parked, record)
        return
    await svc.parking.to_poison(parked, reason)


def _allowance(svc: JobServices, alias: str) -> Allowance:
    try:
        capacity = svc.gateway.capacity(alias)
    except UnknownModel:  # the worker fails the job permanently, at no quota cost: send a batch now
        return Allowance(free_requests=svc.settings.redrive_batch, free_tokens=_UNLIMITED)
    except Exception as exc:  # never fail open: the most conservative plan
        logger.error(
            "timer: capacity(%s) failed (%s); nothing re-driven for it this run",
            alias,
            exc.__class__.__name__,
            exc_info=exc,
            extra={"alert": {"kind": "redrive_capacity_failed", "alias": alias}},
        )
        return Allowance(free_requests=0, free_tokens=0)
    return Allowance(
        free_requests=max(0, int(capacity.requests)),
        free_tokens=max(0, int(capacity.tokens)),
        requests_per_s=max(0.0, float(capacity.requests_per_s)),
        tokens_per_s=max(0.0, float(capacity.tokens_per_s)),
    )


async def _pending(svc: JobServices, alias: str, now: float) -> list[tuple[float, int]]:
    """Re-drives of ``alias`` an earlier run scheduled that are still to be delivered."""
    try:
        return await svc.pending.load(alias, now)
    except Exception as exc:  # noqa: BLE001 - unknown: plan as if nothing were pending
        logger.warning("timer: pending re-drives of %s unreadable: %s", alias, type(exc).__name__)
        return []


async def _remember(svc: JobServices, alias: str, entries: list[tuple[float, int]]) -> None:
    try:
        await svc.pending.save(alias, entries)
    except Exception as exc:  # noqa: BLE001 - the next run then plans without them
        logger.warning("timer: pending re-drives of %s not saved: %s", alias, type(exc).__name__)


def _default_cost(svc: JobServices) -> int:
    """The estimate for an envelope parked before envelopes carried one."""
    try:
        return int(svc.gateway.estimate_cost(None))
    except Exception:  # noqa: BLE001 - a gateway without estimates: the access layer's own default
        return _FALLBACK_COST


_MIN_SCHEDULE_S = 0.05  # a shorter delay is sent at once
_UNLIMITED = 1 << 62
_FALLBACK_COST = 4096
