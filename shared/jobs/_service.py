"""``Backlog``: the one object the triggers and the job endpoints talk to, and its builder."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..telemetry import job_span, traced_job
from ._bus import Bus, Outgoing, connect_service_bus
from ._contract import JobMessage
from ._core import Checkpoint, JobServices, _no_checkpoint
from ._delivery import PROP_PRIORITY, Delivery
from ._parking import ParkingLot
from ._payloads import PayloadStore
from ._poison import process_dead_letter, process_parking_poison
from ._records import JobRecord
from ._redrive import TimerReport, run_timer
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
        it once. A known job id with another payload raises ``JobIdConflict`` before anything is written."""
        with job_span("submit", job.job_id, None):  # the trace the worker continues
            return await self._submit(job)

    async def _submit(self, job: JobMessage) -> Submission:
        svc = self.services
        record, created = await svc.store.ensure(job)
        if record.terminal:
            return Submission(record, created, enqueued=False)
        await svc.bus.send(
            svc.settings.queue,
            Outgoing(
                body=job.to_body(),
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
        return Submission(record, created, enqueued=True)

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

    async def aclose(self) -> None:
        for closer in self._closers:
            await closer()


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
    """Build the SDK clients from settings (connection strings locally, managed identity in Azure).
    With ``gateway_settings`` naming Global Batch deployments, the batch lane is built too."""
    from azure.storage.queue import TextBase64DecodePolicy, TextBase64EncodePolicy

    credential = None
    if not settings.storage_connection:
        from azure.identity.aio import DefaultAzureCredential, ManagedIdentityCredential

        credential = (
            ManagedIdentityCredential(client_id=settings.storage_client_id)
            if settings.storage_client_id
            else DefaultAzureCredential()
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
        inline_bytes=settings.inline_park_bytes,
        max_park_s=settings.max_park_s,
        min_park_s=settings.min_park_s,
        clock=clock,
    )
    bus = Bus(connect_service_bus(settings))
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
        batch_lane=lane,
    )
    closers: list[Any] = [bus.aclose, parking.aclose, table.close, container.close]
    if lane is not None:
        closers.append(lane.aclose)
    if credential is not None:
        closers.append(credential.close)
    return Backlog(services, closers=tuple(closers))


def _table_client(settings: BacklogSettings, credential: Any, name: str | None = None) -> Any:
    from azure.data.tables.aio import TableClient

    if settings.storage_connection:
        return TableClient.from_connection_string(
            _expand_dev(settings.storage_connection), table_name=name or settings.jobs_table
        )
    return TableClient(
        f"https://{settings.storage_account}.table.core.windows.net",
        table_name=name or settings.jobs_table,
        credential=credential,
    )


def _container_client(settings: BacklogSettings, credential: Any) -> Any:
    from azure.storage.blob.aio import ContainerClient

    if settings.storage_connection:
        return ContainerClient.from_connection_string(
            _expand_dev(settings.storage_connection), container_name=settings.results_container
        )
    return ContainerClient(
        f"https://{settings.storage_account}.blob.core.windows.net",
        container_name=settings.results_container,
        credential=credential,
    )


def _queue_client(
    settings: BacklogSettings, credential: Any, name: str, codec: dict[str, Any]
) -> Any:
    from azure.storage.queue.aio import QueueClient

    if settings.storage_connection:
        return storage_queue_client(settings.storage_connection, name)
    return QueueClient(
        f"https://{settings.storage_account}.queue.core.windows.net",
        queue_name=name,
        credential=credential,
        **codec,
    )


# The emulator's published well-known account and key (not a secret); what UseDevelopmentStorage=true means.
_DEV = (
    "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;"
    "AccountKey=Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==;"
    "BlobEndpoint=http://127.0.0.1:10000/devstoreaccount1;QueueEndpoint=http://127.0.0.1:10001/devstoreaccount1;"
    "TableEndpoint=http://127.0.0.1:10002/devstoreaccount1;"
)


def storage_queue_client(connection: str, queue: str) -> Any:
    """An async ``QueueClient`` for ``queue`` from a connection string (``UseDevelopmentStorage=true``
    means Azurite's default ports), with the base64 text codec the host's queue trigger uses."""
    from azure.storage.queue import TextBase64DecodePolicy, TextBase64EncodePolicy
    from azure.storage.queue.aio import QueueClient

    return QueueClient.from_connection_string(
        _expand_dev(connection),
        queue_name=queue,
        message_encode_policy=TextBase64EncodePolicy(),
        message_decode_policy=TextBase64DecodePolicy(),
    )


def _expand_dev(connection: str) -> str:
    return (
        _DEV
        if connection.strip().rstrip(";").lower() == "usedevelopmentstorage=true"
        else connection
    )
