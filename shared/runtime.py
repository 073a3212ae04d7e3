"""The composition root: the one place that builds the app's infrastructure and hands it on.

Built here (lazily on first use, cached for the process):

* storage: one ``StorageTarget`` (``shared.storage``) from the storage settings, a connection
  string or identity-based storage under the app's one credential pool (``shared.credentials``);
  every table, container and queue client of the app comes from it: the shared region-state table and
  the deployment quota ledger (handed to the gateway as ``VerdictStore`` / ``LedgerStore``), per-caller
  windows and usage rows, and the backlog's job table, results container, parking queues and
  batch table (``BacklogClients``);
* Service Bus: one client (``shared.servicebus``), shared by the backlog's sender and the
  operations routes' dead-letter peeks;
* the gateway, the backlog and the operations routes get these objects; none of them builds a
  client (``tests/unit/test_composition_root.py`` holds every module to it).

``function_app.py`` handlers call these; nothing is built at import time, so indexing stays
cheap and a bad app setting surfaces as a ``SettingsError`` on first use (the health route
reports it) instead of breaking the worker's indexing. Imports stay inside the functions for
the same reason (cold start), not to hide a cycle.

Tests and benchmarks build the same way: ``build_gateway`` and ``build_backlog`` (standalone
objects that own their clients); ``trigger_wiring`` in ``shared.jobs`` maps trigger inputs. After
changing the environment call ``reset()`` so the next call rebuilds from it (``await aclose()``
first if the old services ran on a loop that is still alive).
"""

from __future__ import annotations

import asyncio
import os
import threading
import time
from collections.abc import Awaitable, Callable, Iterable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from azure.data.tables.aio import TableClient
    from azure.servicebus.aio import ServiceBusClient

    from shared.aoai import (
        AccessLayer,
        Admission,
        CallObserver,
        ClientProvider,
        Clock,
        Gateway,
        VerdictStore,
    )
    from shared.batchlane import BatchLane
    from shared.callerlimits import CallerLimiter
    from shared.credentials import CredentialPool
    from shared.jobs import Backlog, BacklogClients, Checkpoint, LanePlugin, PayloadStore
    from shared.pacing import LedgerStore
    from shared.responses import AffinityStore
    from shared.settings import BacklogSettings, GatewaySettings
    from shared.storage import StorageTarget
    from shared.telemetry import Providers, TelemetrySettings
    from shared.usage import TokenSink, UsageRecorder, UsageSettings

__all__ = [
    "aclose",
    "backlog",
    "backlog_clients",
    "backlog_settings",
    "batch_lane",
    "build_backlog",
    "build_gateway",
    "caller_limiter",
    "gateway",
    "gateway_stores",
    "jobs_table",
    "reset",
    "response_affinity",
    "service_bus",
    "settings",
    "telemetry",
    "usage",
    "usage_settings",
    "verdict_store",
]


class _Built:
    """What this process has built so far (each None until first use)."""

    def __init__(self) -> None:
        self.settings: GatewaySettings | None = None
        self.backlog_settings: BacklogSettings | None = None
        self.usage_settings: UsageSettings | None = None
        self.telemetry_settings: TelemetrySettings | None = None
        self.telemetry: tuple[Providers | None] | None = None
        self.credentials: CredentialPool | None = None
        self.storage: tuple[StorageTarget | None] | None = None
        self.verdicts: tuple[VerdictStore | None] | None = None
        self.service_bus: ServiceBusClient | None = None
        self.gateway: Gateway | None = None
        self.usage: UsageRecorder | None = None
        self.caller_limiter: tuple[CallerLimiter | None] | None = None
        self.backlog_clients: BacklogClients | None = None
        self.backlog: Backlog | None = None
        self.response_affinity: AffinityStore | None = None


class _Root:
    lock = threading.RLock()
    built = _Built()


def settings() -> GatewaySettings:
    """The gateway settings from the environment; raises ``SettingsError`` (not cached) when invalid."""
    with _Root.lock:
        if _Root.built.settings is None:
            from shared.settings import load_gateway_settings

            _Root.built.settings = load_gateway_settings()
            _warn_unknown_settings()
        return _Root.built.settings


def _warn_unknown_settings() -> None:
    """Name each GATEWAY_*/BACKLOG_* app setting nothing reads (a typo does nothing otherwise),
    with the closest known one; once per process, when the settings are first loaded."""
    import logging

    from shared.settings import unknown_settings

    log = logging.getLogger(__name__)
    for misspelling in unknown_settings(os.environ):
        log.warning(misspelling.message())


def backlog_settings() -> BacklogSettings:
    """The backlog's settings (queues, job store, limits); raises ``SettingsError`` when invalid."""
    with _Root.lock:
        if _Root.built.backlog_settings is None:
            from shared.settings import load_backlog_settings

            _Root.built.backlog_settings = load_backlog_settings()
        return _Root.built.backlog_settings


def usage_settings() -> UsageSettings:
    """Usage accounting settings (table, flush interval, price table)."""
    with _Root.lock:
        if _Root.built.usage_settings is None:
            from shared.usage import load_usage_settings

            _Root.built.usage_settings = load_usage_settings()
        return _Root.built.usage_settings


def telemetry() -> Providers | None:
    """The OpenTelemetry providers when an exporter is configured (built once), else None."""
    with _Root.lock:
        if _Root.built.telemetry is None:
            from shared.telemetry import configure, load_telemetry_settings

            found = load_telemetry_settings()
            _Root.built.telemetry_settings = found
            _Root.built.telemetry = (configure(found),)
        return _Root.built.telemetry[0]


# ---------------------------------------------------------------------------- infrastructure


def _credentials() -> CredentialPool:
    """The process's one credential pool (the app's credential policy), closed last."""
    with _Root.lock:
        if _Root.built.credentials is None:
            from shared.credentials import CredentialPool

            _Root.built.credentials = CredentialPool()
        return _Root.built.credentials


def _storage() -> StorageTarget | None:
    """The app's storage (from the gateway settings: ``AzureWebJobsStorage`` or its
    identity-based form); None when none is configured."""
    current = settings()
    with _Root.lock:
        if _Root.built.storage is None:
            from shared.storage import storage_target

            _Root.built.storage = (storage_target(current, credentials=_credentials()),)
        return _Root.built.storage[0]


def gateway_stores(
    current: GatewaySettings, storage: StorageTarget | None, *, owns_credentials: bool = False
) -> tuple[VerdictStore | None, LedgerStore | None]:
    """The shared region-state store and the deployment quota ledger's store on ``storage`` (None each without
    storage; the ledger's also when it is disabled). ``owns_credentials``: each store closes
    the storage's credential pool with itself (a standalone gateway; closing twice is fine)."""
    if storage is None:
        return None, None
    from shared.aoai import TableVerdictStore
    from shared.pacing import TableLedgerStore

    verdicts = TableVerdictStore(
        None,
        current.health_table,
        target=storage.table_target(
            current.health_table, timeout_s=2.0, owns_credentials=owns_credentials
        ),
    )
    ledger = None
    if current.ledger_enabled:
        ledger = TableLedgerStore(
            None,
            current.ledger_table,
            target=storage.table_target(
                current.ledger_table,
                timeout_s=current.ledger_timeout_s,
                owns_credentials=owns_credentials,
            ),
        )
    return verdicts, ledger


def verdict_store() -> VerdictStore | None:
    """The shared region-state store, the same object the gateway reads and writes (the operations
    routes show and clear it); None when no storage is configured."""
    gateway()
    with _Root.lock:
        return None if _Root.built.verdicts is None else _Root.built.verdicts[0]


def service_bus() -> ServiceBusClient:
    """The process's Service Bus client (the backlog's namespace), closed by ``aclose``."""
    current = backlog_settings()
    pool = _credentials()
    with _Root.lock:
        if _Root.built.service_bus is None:
            from shared.servicebus import connect_service_bus

            _Root.built.service_bus = connect_service_bus(current, pool)
        return _Root.built.service_bus


def backlog_clients(
    current: BacklogSettings, storage: StorageTarget, bus: ServiceBusClient
) -> BacklogClients:
    """The backlog's storage clients on ``storage`` and the Service Bus client ``bus`` (the
    backlog closes the storage clients; ``bus`` and the credentials stay their owner's)."""
    from shared.jobs import BacklogClients
    from shared.storage import BACKLOG_OPTIONS

    table = storage.table(current.jobs_table, options=BACKLOG_OPTIONS)
    container = storage.container(current.results_container, options=BACKLOG_OPTIONS)
    return BacklogClients(
        jobs_table=table,
        results=container,
        parking=storage.queue(current.parking_queue, options=BACKLOG_OPTIONS),
        parking_poison=storage.queue(current.parking_poison_queue, options=BACKLOG_OPTIONS),
        service_bus=bus,
        closers=(table.close, container.close),
    )


def _backlog_storage(current: BacklogSettings, pool: CredentialPool | None) -> StorageTarget:
    from shared.settings import SettingsError
    from shared.storage import storage_target

    storage = storage_target(current, credentials=pool)
    if storage is None:  # BacklogSettings refuses this already; a guard for the type
        raise SettingsError("storage_connection: no storage is configured for the backlog")
    return storage


# ---------------------------------------------------------------------------- builders


def build_gateway(
    current: GatewaySettings,
    *,
    clients: ClientProvider | None = None,
    observers: Iterable[CallObserver] | None = None,
    instance: str | None = None,
    clock: Clock | None = None,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    verdicts: VerdictStore | None = None,
    ledger: LedgerStore | None = None,
    admission: Admission | None = None,
) -> Gateway:
    """A standalone gateway with the stores on the storage ``current`` names (closed with the
    gateway, credentials too); ``verdicts`` / ``ledger`` given replace them. ``admission``: asked
    before each call (per-caller limits, ``CallerLimiter``); the caller closes it."""
    from shared.aoai import Gateway
    from shared.storage import storage_target

    found_verdicts: VerdictStore | None = None
    found_ledger: LedgerStore | None = None
    if verdicts is None or ledger is None:
        storage = storage_target(current)
        found_verdicts, found_ledger = gateway_stores(current, storage, owns_credentials=True)
    return Gateway(
        current,
        clients=clients,
        observers=observers,
        instance=instance,
        clock=clock,
        sleep=sleep,
        verdicts=verdicts if verdicts is not None else found_verdicts,
        ledger=ledger if ledger is not None else found_ledger,
        admission=admission,
    )


def build_backlog(
    current: BacklogSettings,
    gateway: AccessLayer | None,
    *,
    clock: Callable[[], float] = time.time,
    checkpoint: Checkpoint | None = None,
    gateway_settings: GatewaySettings | None = None,
    lane_checkpoint: Checkpoint | None = None,
    usage: UsageRecorder | None = None,
    responses: AffinityStore | None = None,
) -> Backlog:
    """A standalone backlog (tests, benchmarks, a second process): its own storage clients,
    Service Bus client and credentials, all closed by its ``aclose``. ``responses``: where
    stored responses live (its owner closes it); None: a store of its own on the backlog's
    storage (the same table the HTTP routes use)."""
    from shared.credentials import CredentialPool
    from shared.jobs import BacklogClients
    from shared.jobs import build_backlog as assemble
    from shared.servicebus import connect_service_bus

    pool = CredentialPool()
    storage = _backlog_storage(current, pool)
    bus = connect_service_bus(current, pool)
    given = backlog_clients(current, storage, bus)
    closers = (*given.closers, bus.close, pool.aclose)
    if responses is None:
        from shared.responses import AFFINITY_TABLE, affinity_store

        responses = affinity_store(storage.table(AFFINITY_TABLE))
        closers = (responses.aclose, *closers)
    owned = BacklogClients(
        jobs_table=given.jobs_table,
        results=given.results,
        parking=given.parking,
        parking_poison=given.parking_poison,
        service_bus=bus,
        closers=closers,
    )
    return assemble(
        current,
        gateway,  # type: ignore[arg-type]  # None: a backlog that never runs a job (tests)
        owned,
        clock=clock,
        checkpoint=checkpoint,
        lane=batch_lane(
            current, gateway_settings, storage, checkpoint=lane_checkpoint, usage=usage
        ),
        responses=responses,
    )


def batch_lane(
    current: BacklogSettings,
    gateway_settings: GatewaySettings | None,
    storage: StorageTarget,
    *,
    checkpoint: Checkpoint | None = None,
    usage: UsageRecorder | None = None,
) -> LanePlugin | None:
    """How the batch lane plugs into the backlog: None unless a region of ``gateway_settings``
    names a Global Batch deployment; else, given the backlog's payload store, the lane on its
    own table (which it closes)."""
    if gateway_settings is None:
        return None
    from shared.batchlane import batch_targets, build_batch_lane

    if not batch_targets(gateway_settings):
        return None
    from shared.storage import BACKLOG_OPTIONS

    def plug(payloads: PayloadStore) -> BatchLane | None:
        table = storage.table(current.batch_table, options=BACKLOG_OPTIONS)
        return build_batch_lane(
            current, gateway_settings, table, payloads, checkpoint=checkpoint, usage=usage
        )

    return plug


# ---------------------------------------------------------------------------- services


def gateway() -> Gateway:
    """The process-wide access layer, built from ``settings()`` on first use."""
    current = settings()
    with _Root.lock:
        built = _Root.built.gateway
    if built is not None:
        return built
    observers = _observers(current)  # outside the lock: they take it themselves
    limiter = caller_limiter()
    storage = _storage()
    with _Root.lock:
        if _Root.built.gateway is None:
            from shared.aoai import Gateway

            verdicts, ledger = gateway_stores(current, storage)
            _Root.built.verdicts = (verdicts,)
            # Azure sets WEBSITE_INSTANCE_ID per instance (the dev server too): region state and the
            # quota ledger name the instance by it.
            # Per-caller limits (``limiter``) are the gateway's admission hook: checked before
            # any upstream call of a known alias.
            _Root.built.gateway = Gateway(
                current,
                observers=observers,
                instance=os.environ.get("WEBSITE_INSTANCE_ID"),
                verdicts=verdicts,
                ledger=ledger,
                admission=limiter,
            )
        return _Root.built.gateway


def usage() -> UsageRecorder:
    """The usage recorder (an observer of the gateway), on the app's storage."""
    found = usage_settings()
    storage = _storage()
    with _Root.lock:
        if _Root.built.usage is None:
            from shared.usage import InMemoryUsageStore, TableUsageStore, UsageRecorder

            store = (
                TableUsageStore(storage.table(found.usage_table))
                if storage is not None
                else InMemoryUsageStore()
            )
            _Root.built.usage = UsageRecorder(store, flush_s=found.usage_flush_s)
        return _Root.built.usage


def response_affinity() -> AffinityStore:
    """Where each stored response lives (the Responses API's affinity), in the app's storage (a
    table beside the region-state, ledger and usage tables); in memory without storage."""
    storage = _storage()
    with _Root.lock:
        if _Root.built.response_affinity is None:
            from shared.responses import AFFINITY_TABLE, affinity_store

            _Root.built.response_affinity = affinity_store(
                storage.table(AFFINITY_TABLE) if storage is not None else None
            )
        return _Root.built.response_affinity


def caller_limiter() -> CallerLimiter | None:
    """Per-caller limits (GATEWAY_CALLER_LIMITS) shared through the app's storage; None
    when no limits are set."""
    storage = _storage()
    with _Root.lock:
        if _Root.built.caller_limiter is None:
            from shared.callerlimits import (
                CallerLimiter,
                InMemoryWindowStore,
                TableWindowStore,
                load_caller_limits,
            )

            limits = load_caller_limits()
            limiter = None
            if limits is not None:
                store = (
                    TableWindowStore(storage.table(limits.table))
                    if storage is not None
                    else InMemoryWindowStore()
                )
                limiter = CallerLimiter(limits, store)
            _Root.built.caller_limiter = (limiter,)
        return _Root.built.caller_limiter[0]


def _observers(current: GatewaySettings) -> list[CallObserver]:
    """The gateway's observers: the log record, telemetry when configured, and the one token
    counter when usage is enabled or caller limits are set."""
    from urllib.parse import urlsplit

    from shared.aoai import CallLog

    observers: list[CallObserver] = [CallLog()]
    providers = telemetry()
    if providers is not None:
        from shared.telemetry import TelemetryObserver

        found = _Root.built.telemetry_settings
        observers.append(
            TelemetryObserver(
                tracer_provider=providers.tracer_provider,
                meter_provider=providers.meter_provider,
                servers={r.name: urlsplit(str(r.endpoint)).hostname or "" for r in current.regions},
                capture_content=bool(found is not None and found.capture_content),
                health=lambda: gateway().health_report(),
            )
        )
    # One per-caller token counter feeds usage accounting and the per-caller monthly limits.
    sinks: list[TokenSink] = []
    if usage_settings().enabled:
        sinks.append(usage())
    limiter = caller_limiter()
    if limiter is not None:
        sinks.append(limiter)
    if sinks:
        from shared.usage import CallerTokenCounter

        observers.append(CallerTokenCounter(sinks))
    return observers


def backlog() -> Backlog:
    """The backlog (job store, Service Bus sender, parking queues) on top of ``gateway()``."""
    current = backlog_settings()
    gw = gateway()
    gateway_settings = settings()
    recorder = usage() if usage_settings().enabled else None  # batch-lane lines are counted too
    clients = _backlog_clients()
    with _Root.lock:
        if _Root.built.backlog is None:
            from shared.jobs import build_backlog as assemble

            lane = batch_lane(
                current, gateway_settings, _backlog_storage(current, _credentials()), usage=recorder
            )
            _Root.built.backlog = assemble(
                current, gw, clients, lane=lane, responses=response_affinity()
            )
        return _Root.built.backlog


def _backlog_clients() -> BacklogClients:
    """The backlog's clients, built once (the backlog and the operations routes share them)."""
    current = backlog_settings()
    bus = service_bus()
    pool = _credentials()
    with _Root.lock:
        if _Root.built.backlog_clients is None:
            storage = _backlog_storage(current, pool)
            _Root.built.backlog_clients = backlog_clients(current, storage, bus)
        return _Root.built.backlog_clients


def jobs_table() -> TableClient:
    """The job store's table client (the backlog's own): the operations routes list parked
    jobs from it."""
    return _backlog_clients().jobs_table


def reset() -> None:
    """Forget every cached service (for tests): the next call rebuilds from the environment."""
    with _Root.lock:
        _Root.built = _Built()


async def aclose() -> None:
    """Close the cached services that hold connections, then the Service Bus client and the
    credentials they share, then forget them."""
    with _Root.lock:
        built, _Root.built = _Root.built, _Built()
    from shared.credentials import close_all

    # Every service is closed, even when closing another fails.
    closers: list[Callable[[], Awaitable[None]]] = []
    if built.response_affinity is not None:
        closers.append(built.response_affinity.aclose)
    if built.backlog is not None:
        closers.append(built.backlog.aclose)  # with its clients
    elif built.backlog_clients is not None:  # built for the operations routes alone
        clients = built.backlog_clients
        for client in (clients.parking, clients.parking_poison):
            closers.append(client.close)
        closers.extend(clients.closers)
    if built.gateway is not None:
        closers.append(built.gateway.aclose)
    limiter = None if built.caller_limiter is None else built.caller_limiter[0]
    if limiter is not None:
        closers.append(limiter.aclose)
    if built.usage is not None:
        closers.append(built.usage.aclose)
    if built.service_bus is not None:
        closers.append(built.service_bus.close)
    if built.credentials is not None:
        closers.append(built.credentials.aclose)
    try:
        await close_all(closers, what="service")
    finally:
        providers = None if built.telemetry is None else built.telemetry[0]
        if providers is not None:
            providers.flush()
