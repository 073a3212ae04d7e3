"""``Backlog``: the one object the triggers and the job endpoints talk to, and its builder."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..storage import expand_dev_connection
from ..telemetry import job_span, traced_job
from ._bus import Bus, Outgoing, connect_service_bus
from ._cancel import cancel_job
from ._claim import JobTooLarge
from ._contract import JobMessage
from ._core import Checkpoint, JobServices, _no_checkpoint
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
    from shared.aoai import AccessLayer

    from ..settings import BacklogSettings, GatewaySettings

__all__ = ["Backlog", "Submission", "build_backlog"]


@dataclass(frozen=True, slots=True)
class Submission:
    record: JobRecord
    created: bool  # False: the job id was known already (an idempotent re-submit)
    enqueued: bool


class Backlog:
    def __init__(self, services: JobServices, *, closers: tuple[Any, ...] = ()) -> None:
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

    async def status(self, job_id: str) -> dict[str, Any] | None:
        """The job as the status endpoint shows it, with its result once it succeeded."""
        record = await self.services.store.get(job_id)
        if record is None:
            return None
        out = record.public()
        lane = self.services.batch_lane
        if record.batch_id and lane is not None:  # the batch lane's hook: the batch's progress
            row = await lane.store.get_batch(record.batch_id)
            if row is not None:
                out["batch"] = row.public()
        if record.status == "succeeded":
            out["result"] = await self.services.store.load_result(record)
        return out

    async def cancel(self, job_id: str, *, by: str | None = None) -> dict[str, Any] | None:
        """Cancel a waiting job (see ``_cancel``); its status as ``status`` shows it, None when
        unknown. Raises ``JobNotCancellable`` for a running or otherwise finished job."""
        record = await cancel_job(self.services, job_id, by=by)
        return None if record is None else await self.status(job_id)

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
        from ..credentials import close_all

        await close_all(list(self._closers))


def build_backlog(
    settings: BacklogSettings,
    gateway: AccessLayer,
    *,
    clock: Callable[[], float] = time.time,
    checkpoint: Checkpoint | None = None,
    gateway_settings: GatewaySettings | None = None,
    lane_checkpoint: Checkpoint | None = None,
    usage: Any = None,
) -> Backlog:
    """Build the SDK clients from settings (connection strings locally; in Azure identity-based
    connections under the app's one credential policy, ``shared.credentials``). With
    ``gateway_settings`` naming Global Batch deployments, the batch lane is built too."""
    from azure.storage.queue import TextBase64DecodePolicy, TextBase64EncodePolicy

    from ..credentials import CredentialPool

    credentials = CredentialPool()
    credential = (
        None if settings.storage_connection else credentials.get(settings.storage_client_id)
    )
    table = _table_client(settings, credential)
    container = _container_client(settings, credential)
    codec = {
        "message_encode_policy": TextBase64EncodePolicy(),
        "message_decode_policy": TextBase64DecodePolicy(),
    }
    parking_q = _queue_client(settings, credential, settings.parking_queue, codec)
    poison_q = _queue_client(settings, credential, settings.parking_poison_queue, codec)
    payloads = PayloadStore(container)
    store = TableJobStore(
        table,
        payloads,
        inline_result_chars=settings.inline_result_chars,
        reply_lease_s=settings.reply_lease_s,
        clock=clock,
    )
    parking = ParkingLot(
        parking_q,
        poison_q,
        payloads,
        max_park_s=settings.max_park_s,
        min_park_s=settings.min_park_s,
        clock=clock,
    )
    bus = Bus(connect_service_bus(settings, credentials))
    lane = None
    if gateway_settings is not None:
        from ..batchlane import build_batch_lane

        lane = build_batch_lane(
            settings,
            gateway_settings,
            _table_client(settings, credential, settings.batch_table),
            payloads,
            checkpoint=lane_checkpoint,
            usage=usage,
        )
    services = JobServices(
        settings=settings,
        gateway=gateway,
        store=store,
        bus=bus,
        parking=parking,
        clock=clock,
        checkpoint=checkpoint or _no_checkpoint,
        pending=TablePendingSchedule(table),
        payloads=payloads,
        batch_lane=lane,
    )
    closers: list[Any] = [bus.aclose, parking.aclose, table.close, container.close]
    if lane is not None:
        closers.append(lane.aclose)
    closers.append(credentials.aclose)
    return Backlog(services, closers=tuple(closers))


# Storage calls fail fast enough to answer 503 while the HTTP caller waits (the SDK default
# retries for about a minute); the backlog's own redelivery is the retry for queue work.
_STORAGE_CLIENT: dict[str, Any] = {
    "retry_total": 2,
    "retry_backoff_factor": 0.5,
    "connection_timeout": 5,
    "read_timeout": 30,
}


def _table_client(settings: BacklogSettings, credential: Any, name: str | None = None) -> Any:
    from azure.data.tables.aio import TableClient

    if settings.storage_connection:
        return TableClient.from_connection_string(
            _expand_dev(settings.storage_connection),
            table_name=name or settings.jobs_table,
            **_STORAGE_CLIENT,
        )
    return TableClient(
        settings.storage_endpoint("table"),
        table_name=name or settings.jobs_table,
        credential=credential,
        **_STORAGE_CLIENT,
    )


def _container_client(settings: BacklogSettings, credential: Any) -> Any:
    from azure.storage.blob.aio import ContainerClient

    if settings.storage_connection:
        return ContainerClient.from_connection_string(
            _expand_dev(settings.storage_connection),
            container_name=settings.results_container,
            **_STORAGE_CLIENT,
        )
    return ContainerClient(
        settings.storage_endpoint("blob"),
        container_name=settings.results_container,
        credential=credential,
        **_STORAGE_CLIENT,
    )


def _queue_client(
    settings: BacklogSettings, credential: Any, name: str, codec: dict[str, Any]
) -> Any:
    from azure.storage.queue.aio import QueueClient

    if settings.storage_connection:
        return storage_queue_client(settings.storage_connection, name, **_STORAGE_CLIENT)
    return QueueClient(
        settings.storage_endpoint("queue"),
        queue_name=name,
        credential=credential,
        **codec,
        **_STORAGE_CLIENT,
    )


_expand_dev = expand_dev_connection  # the dev server's queue side uses it too


def storage_queue_client(connection: str, queue: str, **options: Any) -> Any:
    """An async ``QueueClient`` for ``queue`` from a connection string (``UseDevelopmentStorage=true``
    means Azurite's default ports), with the base64 text codec the host's queue trigger uses."""
    from azure.storage.queue import TextBase64DecodePolicy, TextBase64EncodePolicy
    from azure.storage.queue.aio import QueueClient

    return QueueClient.from_connection_string(
        expand_dev_connection(connection),
        queue_name=queue,
        message_encode_policy=TextBase64EncodePolicy(),
        message_decode_policy=TextBase64DecodePolicy(),
        **options,
    )
