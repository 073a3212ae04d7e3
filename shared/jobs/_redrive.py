"""The timer trigger's logic: probe regions, re-drive parked jobs within quota, give up on some.

1. ``gateway.probe_regions()`` updates the shared health (failover and fail-back).
2. Parked jobs that are visible again (their time has come) go back on the backlog, highest
   priority first, at most ``gateway.capacity(alias).requests`` per alias per run, so a reopened
   quota window does not get a thundering herd; the rest are looked at again after ``defer_s``.
3. Jobs parked ``max_parks`` times, or past their deadline, move to ``<parking>-poison``.

Every step is per message: one failure is counted and reported, the rest go on; a message that
failed stays hidden for ``redrive_claim_s`` and is retried by a later run.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from typing import Any

from ._bus import Outgoing
from ._core import JobServices
from ._delivery import PROP_PARKS, PROP_PRIORITY, PROP_REDRIVES
from ._parking import ParkedJob

__all__ = ["TimerReport", "run_timer"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class TimerReport:
    """What one timer run did. ``failed`` > 0 or ``errors`` means partial failure."""

    probes: dict[str, bool] = field(default_factory=dict)
    moved: int = 0
    deferred: int = 0
    poisoned: int = 0
    dropped: int = 0  # parked copies of jobs that were already terminal
    failed: int = 0
    errors: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return self.failed == 0 and not self.errors

    def as_dict(self) -> dict[str, Any]:
        return {
            "probes": dict(self.probes), "moved": self.moved, "deferred": self.deferred, "poisoned": self.poisoned,
            "dropped": self.dropped, "failed": self.failed, "errors": list(self.errors),
        }


async def run_timer(svc: JobServices, *, probe: bool = True) -> TimerReport:
    counts = {"moved": 0, "deferred": 0, "poisoned": 0, "dropped": 0, "failed": 0}
    errors: list[str] = []
    probes: dict[str, bool] = {}
    if probe:
        try:
            probes = dict(await asyncio.wait_for(svc.gateway.probe_regions(), timeout=svc.settings.probe_timeout_s))
        except Exception as exc:  # noqa: BLE001 - a failed or slow probe must not stop the re-drive
            errors.append(f"probe_regions: {exc.__class__.__name__}")
    settings = svc.settings
    batch: list[ParkedJob] = []
    async for item in svc.parking.due(max_messages=settings.redrive_max_per_run, claim_s=settings.redrive_claim_s, batch=settings.redrive_batch):
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
    budgets: dict[str, int] = {}
    now = svc.clock()
    slots = asyncio.Semaphore(settings.redrive_concurrency)

    async def guarded(parked: ParkedJob) -> None:
        async with slots:
            try:
                counts[await _one(svc, parked, budgets, now)] += 1
            except Exception as exc:  # noqa: BLE001 - counted; the message reappears after the claim
                counts["failed"] += 1
                errors.append(f"{parked.job_id}: {exc.__class__.__name__}")
                logger.warning("timer: job %s not moved: %s", parked.job_id, exc.__class__.__name__, extra={"correlation_id": parked.job_id})

    # Quota is reserved in priority order before any I/O, so concurrency cannot reorder it.
    await asyncio.gather(*(guarded(p) for p in batch))
    report = TimerReport(probes=probes, errors=tuple(errors[:50]), **counts)
    if report.moved or report.poisoned or report.failed or report.deferred:
        logger.info("timer: %s", report.as_dict(), extra={"timer": report.as_dict()})
    return report


async def _one(svc: JobServices, parked: ParkedJob, budgets: dict[str, int], now: float) -> str:
    if parked.deadline is not None and parked.deadline <= now:
        await _poison_unless_done(svc, parked, "deadline_exceeded")
        return "poisoned"
    if parked.parks >= svc.settings.max_parks:
        await _poison_unless_done(svc, parked, "parked_too_often")
        return "poisoned"
    if parked.model not in budgets:
        budgets[parked.model] = _capacity(svc, parked.model)
    if budgets[parked.model] <= 0:
        await svc.parking.defer(parked.handle, svc.settings.defer_s)
        return "deferred"
    budgets[parked.model] -= 1  # reserved before the first await
    record = await svc.store.get(parked.job_id)
    if record is not None and record.terminal:
        budgets[parked.model] += 1
        await svc.parking.remove(parked)
        await svc.parking.forget_blob(parked)
        return "dropped"
    body = await svc.parking.job_body(parked)
    await svc.bus.send(
        svc.settings.queue,
        Outgoing(
            body=body,
            message_id=f"{parked.job_id}.p{parked.parks}",  # not the job id: duplicate detection saw that one
            correlation_id=parked.job_id,
            application_properties={PROP_PRIORITY: parked.priority, PROP_PARKS: parked.parks, PROP_REDRIVES: parked.redrives},
        ),
    )
    await svc.parking.remove(parked)
    await svc.parking.forget_blob(parked)
    await svc.store.progress(parked.job_id, "queued")
    return "moved"


async def _poison_unless_done(svc: JobServices, parked: ParkedJob, reason: str) -> None:
    record = await svc.store.get(parked.job_id)
    if record is not None and record.terminal:
        await svc.parking.remove(parked)
        await svc.parking.forget_blob(parked)
        return
    await svc.parking.to_poison(parked, reason)


def _capacity(svc: JobServices, alias: str) -> int:
    try:
        capacity = svc.gateway.capacity(alias)
    except Exception:  # noqa: BLE001 - an unknown alias is the worker's to fail, permanently
        return svc.settings.redrive_batch
    return max(0, int(capacity.requests))
