"""The collaborators every backlog step shares, and the one way a job ends: finish, then reply.

Crash windows, and why each is safe:
- result stored, reply not sent: the redelivered message finds the job terminal with the reply
  ``pending`` and this delivery's lease (same message, same owner) and sends it;
- reply sent, ``sent`` mark lost: the redelivery sends the reply again with the same
  message_id (``<job>:reply``), which Service Bus duplicate detection on the reply queue
  drops, and which consumers can dedupe on (at-least-once is the best any broker offers);
- two deliveries of the same job at once: ``finish`` is a conditional write, one wins; the
  loser sees the winner's lease and stays quiet.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ._bus import Bus, Outgoing, QueueNotFound
from ._contract import JobMessage, JobReply
from ._records import JobRecord, Terminal
from ._store import FinishResult, JobStore

if TYPE_CHECKING:
    from shared.aoai import AccessLayer

    from ..settings import BacklogSettings
    from ._parking import ParkingLot

__all__ = ["Checkpoint", "JobServices", "conclude", "deliver_reply", "reply_message_id"]

logger = logging.getLogger(__name__)

Checkpoint = Callable[[str, str], Awaitable[None]]


async def _no_checkpoint(stage: str, job_id: str) -> None:
    return None


@dataclass(frozen=True)
class JobServices:
    """Passed to every step. ``checkpoint(stage, job_id)`` is a fault-injection seam for chaos tests."""

    settings: BacklogSettings
    gateway: AccessLayer
    store: JobStore
    bus: Bus
    parking: ParkingLot
    clock: Callable[[], float] = time.time
    checkpoint: Checkpoint = field(default=_no_checkpoint)
    batch_lane: Any = None  # shared.batchlane.BatchLane when a region has Global Batch deployments


def reply_message_id(job_id: str) -> str:
    return f"{job_id}:reply"


async def conclude(
    svc: JobServices,
    job_id: str,
    outcome: Terminal,
    *,
    owner: str,
    job: JobMessage | None = None,
    reply_to: str | None = None,
    force_reply: bool = False,
    current: JobRecord | None = None,
) -> FinishResult:
    """Write the terminal outcome (once) and make sure its reply goes out (once)."""
    result = await svc.store.finish(
        job_id, outcome, owner=owner, job=job, reply_to=reply_to, current=current
    )
    if result.won:
        extra: dict[str, Any] = {"job_id": job_id, "status": outcome.status}
        if outcome.error:
            extra["error_code"] = outcome.error.get("code")
        logger.info(
            "job %s %s", job_id, outcome.status, extra={"correlation_id": job_id, "job": extra}
        )
    await svc.checkpoint("after_finish", job_id)
    # The winner's terminal write also took the reply lease: no separate claim needed.
    await deliver_reply(svc, result.record, owner=owner, force=force_reply, claimed=result.won)
    return result


async def deliver_reply(
    svc: JobServices, record: JobRecord, *, owner: str, force: bool = False, claimed: bool = False
) -> bool:
    """Send the pending reply if this delivery may (``claimed``: it holds the lease already); True when sent now."""
    if record.reply_state != "pending" or not record.reply_to:
        return False
    lease = (
        record if claimed else await svc.store.claim_reply(record.job_id, owner=owner, force=force)
    )
    if lease is None:
        return False
    reply = await _reply_of(svc, lease)
    body = reply.model_dump_json(exclude_none=True).encode("utf-8")
    try:
        await svc.bus.send(
            lease.reply_to or "",
            Outgoing(
                body=body,
                message_id=reply_message_id(lease.job_id),
                correlation_id=lease.job_id,
                subject=lease.status,
                application_properties={"job_id": lease.job_id, "status": lease.status},
            ),
        )
    except QueueNotFound:
        logger.error(
            "job %s: reply queue '%s' does not exist; the reply is dropped",
            lease.job_id,
            lease.reply_to,
            extra={
                "correlation_id": lease.job_id,
                "alert": {
                    "kind": "reply_undeliverable",
                    "job_id": lease.job_id,
                    "reply_to": lease.reply_to,
                },
            },
        )
        await svc.store.mark_replied(lease.job_id, state="undeliverable")
        return False
    await svc.checkpoint("after_reply", lease.job_id)
    await svc.store.mark_replied(lease.job_id)
    return True


async def _reply_of(svc: JobServices, record: JobRecord) -> JobReply:
    status_url = f"{svc.settings.status_route.rstrip('/')}/{record.job_id}"
    if record.status == "failed":
        return JobReply(
            job_id=record.job_id,
            status="failed",
            error=record.error or {"code": "failed", "message": ""},
        )
    if record.result_chars and record.result_chars > svc.settings.inline_reply_bytes:
        return JobReply(job_id=record.job_id, status="succeeded", result_url=status_url)
    result = await svc.store.load_result(record)
    if result is not None and len(json.dumps(result)) > svc.settings.inline_reply_bytes:
        return JobReply(job_id=record.job_id, status="succeeded", result_url=status_url)
    return JobReply(job_id=record.job_id, status="succeeded", result=result)
