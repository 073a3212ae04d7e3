"""``Backlog``: the one object the triggers and the job endpoints talk to, and its builder."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..credentials import close_all
from ..responses import InMemoryAffinityStore
from ..telemetry import job_span, traced_job
from ._bus import Bus, Outgoing
from ._cancel import cancel_job
from ._claim import JobTooLarge
from ._conclude import Checkpoint, JobServices, _no_checkpoint
from ._contract import JobMessage
from ._delivery import PROP_PRIORITY, Delivery
from ._parking import ParkingLot
from ._payloads import PayloadStore
from ._pending import TablePendingSchedule
from ._poison import process_dead_letter, process_parking_poison
from ._records import JobRecord
from ._redrive import TimerReport, redrive_parked_now, run_timer
from ._store import TableJobStore
from ._worker import process_delivery

if TYPE_CHECKING:
    from azure.data.tables.aio import TableClient
    from azure.servicebus.aio import ServiceBusClient
    from azure.storage.blob.aio import ContainerClient
    from azure.storage.queue.aio import QueueClient

    from shared.aoai import AccessLayer
    from shared.responses import AffinityStore

    from ..settings import BacklogSettings
    from ._conclude import LaneHooks

__all__ = ["Backlog", "BacklogClients", "LanePlugin", "Submission", "build_backlog"]


@dataclass(frozen=True, slots=True)
class Submission:
    record: JobRecord
    created: bool  # False: the job id was known already (an idempotent re-submit)
    enqueued: bool


class Backlog:
    def __init__(
        self, services: JobServices, *, closers: tuple[Callable[[], Awaitable[None]], ...] = ()
    ) -> None:
        self.services = services
        self._closers = closers

    @property
    def settings(self) -> BacklogSettings:
        return self.services.settings

    async def submit(self, job: JobMessage) -> Submission:
        """Record the job as queued, then enqueue it (message_id = job id, so duplicate detection works).
        Re-submitting a known, unfinished job id with the same payload enqueues again: the worker runs
        it once. Refused before anything is written: a known job id with another payload
        (``JobIdConflict``), a body over ``max_job_bytes`` (``JobTooLarge``). A body over the
        Service Bus message size goes by claim check. If the send fails, a row this call created
        is removed again, so a failed submission leaves nothing behind."""
        with job_span("submit", job.job_id, None):  # the trace the worker continues
            return await self._submit(job)

    async def _submit(self, job: JobMessage) -> Submission:
        svc = self.services
        body = job.to_body()
        if len(body) > svc.settings.max_job_bytes:
            raise JobTooLarge(len(body), svc.settings.max_job_bytes)
        message = await svc.outgoing_body(job.job_id, body, job.reply_to)
        record, created = await svc.store.ensure(job)
        if record.terminal:
            return Submission(record, created, enqueued=False)
        try:
            await self._enqueue(job, message)
        except Exception:
            if created:
                await svc.store.discard(record)
            raise
        return Submission(record, created, enqueued=True)

    async def _enqueue(self, job: JobMessage, message: bytes) -> None:
        svc = self.services
        await svc.bus.send(
            svc.settings.queue,
            Outgoing(
                body=message,
                message_id=job.job_id,
                correlation_id=job.job_id,
                subject=job.kind,
                application_properties={
                    PROP_PRIORITY: job.priority,
                    "model": job.model,
                    "schema_version": job.schema_version,
                },
            ),
        )

    async def status(self, job_id: str, *, owner: str | None) -> dict[str, Any] | None:
        """The job as the status endpoint shows it, with its result once it succeeded. ``owner``:
        the caller asking (HTTP); a job it did not submit is None, exactly as an unknown id, and
        the batch's internals (the Azure batch id, the deployment, every line's counts) are left
        out. None: an operator (the ops routes), who sees every job whole."""
        record = await self.services.store.get(job_id)
        if record is None or not _visible(record, owner):
            return None
        out = record.public()
        lane = self.services.batch_lane
        if record.batch_id and lane is not None:  # the batch lane's hook: the batch's progress
            row = await lane.store.get_batch(record.batch_id)
            if row is not None:
                batch = row.public()
                out["batch"] = (
                    batch if owner is None else {k: batch.get(k) for k in ("id", "state", "status")}
                )
        if record.status == "succeeded":
            out["result"] = await self.services.store.load_result(record)
        return out

    async def cancel(
        self, job_id: str, *, by: str | None = None, owner: str | None
    ) -> dict[str, Any] | None:
        """Cancel a waiting job (see ``_cancel``); its status as ``status`` shows it, None when
        unknown or, for an ``owner`` (the caller asking), not its own. Raises
        ``JobNotCancellable`` for a running or otherwise finished job."""
        record = await self.services.store.get(job_id)
        if record is None or not _visible(record, owner):
            return None
        ended = await cancel_job(self.services, job_id, by=by)
        return None if ended is None else await self.status(job_id, owner=owner)

    async def process(self, delivery: Delivery) -> str:
        work = process_delivery(self.services, delivery)
        return await traced_job(
            "process", delivery.message_id, delivery.application_properties, work
        )

    async def process_dead_letter(self, delivery: Delivery) -> str:
        work = process_dead_letter(self.services, delivery)
        return await traced_job(
            "dead_letter", delivery.message_id, delivery.application_properties, work
        )

    async def process_parking_poison(self, text: str, *, dequeue_count: int | None = None) -> str:
        work = process_parking_poison(self.services, text, dequeue_count=dequeue_count)
        return await traced_job("parking_poison", None, None, work)

    async def run_timer(self, *, probe: bool = True) -> TimerReport:
        report = await run_timer(self.services, probe=probe)
        if self.services.batch_lane is not None:  # the batch lane's hook: submit, poll, finish
            await self.services.batch_lane.tick(self.services)
        return report

    async def redrive_parked(self, job_ids: list[str]) -> list[dict[str, Any]]:
        """Send these parked jobs to the backlog now (the operations' re-drive); per job results."""
        return await redrive_parked_now(self.services, job_ids)

    async def aclose(self) -> None:
        """Close every client and credential, even when closing one of them fails."""
        await close_all(list(self._closers))


# The batch lane as the composition root plugs it in: given the backlog's payload store, the
# lane (``shared.batchlane.BatchLane``) or None.
LanePlugin = Callable[[PayloadStore], "LaneHooks | None"]


@dataclass(frozen=True, slots=True)
class BacklogClients:
    """The storage and Service Bus clients the backlog runs on, built by the composition root
    (``shared.runtime.backlog_clients``): the job store's table, the results container, the
    parking queue and its poison queue, and the Service Bus client. The parking lot closes the
    queues; ``closers``: what else the backlog closes with itself (the job table, the
    container, and the Service Bus client and credentials when it owns them)."""

    jobs_table: TableClient
    results: ContainerClient
    parking: QueueClient
    parking_poison: QueueClient
    service_bus: ServiceBusClient
    closers: tuple[Callable[[], Awaitable[None]], ...] = ()


def build_backlog(
    settings: BacklogSettings,
    gateway: AccessLayer,
    clients: BacklogClients,
    *,
    clock: Callable[[], float] = time.time,
    checkpoint: Checkpoint | None = None,
    lane: LanePlugin | None = None,
    responses: AffinityStore | None = None,
) -> Backlog:
    """The backlog on ``clients`` (built by the composition root, ``shared.runtime``).
    ``lane``: how the composition root plugs the batch lane in (given the backlog's payload
    store; None when no region names a Global Batch deployment). The backlog never builds it.
    ``responses``: where stored responses live (shared with the HTTP routes; closed by its
    owner); None: this backlog's own, in memory."""
    payloads = PayloadStore(clients.results)
    store = TableJobStore(
        clients.jobs_table,
        payloads,
        inline_result_chars=settings.inline_result_chars,
        reply_lease_s=settings.reply_lease_s,
        clock=clock,
    )
    parking = ParkingLot(
        clients.parking,
        clients.parking_poison,
        payloads,
        max_park_s=settings.max_park_s,
        min_park_s=settings.min_park_s,
        clock=clock,
    )
    bus = Bus(clients.service_bus)
    batch_lane = lane(payloads) if lane is not None else None
    services = JobServices(
        settings=settings,
        gateway=gateway,
        store=store,
        bus=bus,
        parking=parking,
        clock=clock,
        checkpoint=checkpoint or _no_checkpoint,
        pending=TablePendingSchedule(clients.jobs_table),
        payloads=payloads,
        batch_lane=batch_lane,
        responses=responses if responses is not None else InMemoryAffinityStore(),
    )
    closers: list[Callable[[], Awaitable[None]]] = [bus.aclose, parking.aclose]
    if batch_lane is not None:
        closers.append(batch_lane.aclose)  # with its table
    closers.extend(clients.closers)
    return Backlog(services, closers=tuple(closers))


def _visible(record: JobRecord, owner: str | None) -> bool:
    """A job is its submitter's (the caller the gateway recorded) and the operators' (``None``)."""
    return owner is None or record.caller == owner
