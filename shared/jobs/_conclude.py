"""The collaborators every backlog step shares, and the one way a job ends: finish, then reply.

Crash windows, and why each is safe:
- result stored, reply not sent: the redelivered message (or, once Service Bus dead-letters it,
  the same message from the dead-letter queue: same ``Delivery.owner``) finds the job terminal
  with the reply ``pending`` under its own lease and sends it; nobody else can take a live lease;
- reply sent, ``sent`` mark lost: the redelivery sends the reply again with the same
  message_id (``<job>:reply``), which Service Bus duplicate detection on the reply queue
  drops, and which consumers can dedupe on. This is the one remaining window (and a lease
  holder stalled longer than ``reply_lease_s``, whose lease another owner may then take);
- two deliveries of the same job at once: ``finish`` is a conditional write, one wins; the
  loser sees the winner's lease and stays quiet; ``mark_replied`` writes only under the lease.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from ..responses import AffinityStore, InMemoryAffinityStore
from ._bus import Bus, Outgoing, QueueUnusable
from ._claim import pack, unpack
from ._contract import JobMessage, JobReply
from ._pending import InMemoryPendingSchedule, PendingSchedule
from ._records import JobRecord, Terminal
from ._store import FinishResult, JobStore

if TYPE_CHECKING:
    from shared.aoai import AccessLayer

    from ..settings import BacklogSettings
    from ._parking import ParkingLot
    from ._payloads import PayloadStore

__all__ = [
    "Checkpoint",
    "JobServices",
    "LaneBatch",
    "LaneHooks",
    "LaneRows",
    "conclude",
    "deliver_reply",
    "reply_message_id",
]

logger = logging.getLogger(__name__)

Checkpoint = Callable[[str, str], Awaitable[None]]


async def _no_checkpoint(stage: str, job_id: str) -> None:
    return None


# What the backlog needs of the batch lane (``shared.batchlane.BatchLane`` is the one): the hooks
# the worker, the timer, the status route and a cancel call. Typed here, beside the services that
# carry it, so ``jobs`` never imports ``batchlane``; the composition root plugs the lane in.


class LaneBatch(Protocol):
    """One batch of the lane, as a job's status shows it."""

    def public(self) -> dict[str, Any]: ...


class LaneRows(Protocol):
    """The lane's rows, as far as the backlog reads or drops them."""

    async def get_batch(self, batch_ref: str) -> LaneBatch | None: ...

    async def drop_pending(self, alias: str, job_ids: list[str]) -> None: ...


class LaneHooks(Protocol):
    @property
    def store(self) -> LaneRows: ...

    def wants(self, job: JobMessage, now: float) -> bool:
        """Whether ``job`` goes to the lane instead of a model call now."""
        ...

    async def accept(self, svc: JobServices, job: JobMessage, record: JobRecord) -> None:
        """Take ``job`` into the lane (the row becomes ``batched``)."""
        ...

    async def tick(self, svc: JobServices) -> object:
        """The timer's turn: assemble, submit, poll and finish batches."""
        ...

    async def aclose(self) -> None: ...


@dataclass(frozen=True)
class JobServices:
    """Passed to every step. ``checkpoint(stage, job_id)`` is a fault-injection seam for chaos tests."""

    settings: BacklogSettings
    gateway: AccessLayer
    store: JobStore
    bus: Bus
    parking: ParkingLot
    clock: Callable[[], float] = time.time
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep  # waits between retries (a test seam)
    checkpoint: Checkpoint = field(default=_no_checkpoint)
    pending: PendingSchedule = field(default_factory=InMemoryPendingSchedule)
    batch_lane: LaneHooks | None = (
        None  # the batch lane, when a region has Global Batch deployments
    )
    payloads: PayloadStore | None = None  # claim-checked job bodies
    # Where stored responses live (the Responses API's affinity): the composition root passes
    # the app's shared store, so jobs and HTTP requests continue each other's responses.
    responses: AffinityStore = field(default_factory=InMemoryAffinityStore)

    async def outgoing_body(self, job_id: str, body: bytes, reply_to: str | None = None) -> bytes:
        """What goes on the backlog queue for ``body``: itself, or a claim check when too large."""
        return await pack(
            self.payloads,
            job_id,
            body,
            max_message_bytes=self.settings.max_message_bytes,
            reply_to=reply_to,
        )

    async def incoming_body(self, body: bytes) -> bytes:
        return await unpack(self.payloads, body)


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
    current: JobRecord | None = None,
    allow: Callable[[JobRecord], bool] | None = None,
) -> FinishResult:
    """Write the terminal outcome (once) and make sure its reply goes out (once). ``allow``: the
    row as it must be for this step to end the job (else nothing is written, ``won`` False)."""
    result = await svc.store.finish(
        job_id, outcome, owner=owner, job=job, reply_to=reply_to, current=current, allow=allow
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
    if result.won or result.record.terminal:
        await deliver_reply(svc, result.record, owner=owner, claimed=result.won)
    return result


async def deliver_reply(
    svc: JobServices, record: JobRecord, *, owner: str, claimed: bool = False
) -> bool:
    """Send the pending reply if this delivery holds, or may take, the lease (``claimed``: it
    holds it already). A live lease of another owner is never taken. True when sent now."""
    if record.reply_state != "pending" or not record.reply_to:
        return False
    lease = record if claimed else await svc.store.claim_reply(record.job_id, owner=owner)
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
    except QueueUnusable as exc:  # missing, or not ours to send to: retrying cannot help
        logger.error(
            "job %s: reply undeliverable (%s); the reply is dropped",
            lease.job_id,
            exc,
            extra={
                "correlation_id": lease.job_id,
                "alert": {
                    "kind": "reply_undeliverable",
                    "job_id": lease.job_id,
                    "reply_to": lease.reply_to,
                },
            },
        )
        await svc.store.mark_replied(lease, state="undeliverable")
        return False
    await svc.checkpoint("after_reply", lease.job_id)
    await svc.store.mark_replied(lease)
    return True


async def _reply_of(svc: JobServices, record: JobRecord) -> JobReply:
    status_url = f"{svc.settings.status_route.rstrip('/')}/{record.job_id}"
    if record.status in ("failed", "cancelled"):
        return JobReply(
            job_id=record.job_id,
            status="cancelled" if record.status == "cancelled" else "failed",
            error=record.error or {"code": record.status, "message": ""},
        )
    if record.result_chars and record.result_chars > svc.settings.inline_reply_bytes:
        return JobReply(job_id=record.job_id, status="succeeded", result_url=status_url)
    result = await svc.store.load_result(record)
    if result is not None and len(json.dumps(result)) > svc.settings.inline_reply_bytes:
        return JobReply(job_id=record.job_id, status="succeeded", result_url=status_url)
    return JobReply(job_id=record.job_id, status="succeeded", result=result)
