"""The composition root: process-wide services, built lazily on first use and cached.

``function_app.py`` handlers call these; nothing is built at import time, so indexing stays
cheap and a bad app setting surfaces as a ``SettingsError`` on first use (the health route
reports it) instead of breaking the worker's indexing.

Tests: after changing the environment, call ``reset()`` so the next call rebuilds from it
(``await aclose()`` first if the old services ran on a loop that is still alive).
Other pieces add their own lazily built services here, following the same pattern.
"""

from __future__ import annotations

import os
import threading
from typing import TYPE_CHECKING, cast

if TYPE_CHECKING:
    from shared.aoai import CallObserver, Gateway
    from shared.jobs import Backlog
    from shared.quotas import CallerQuotas
    from shared.responses import AffinityStore
    from shared.settings import BacklogSettings, GatewaySettings
    from shared.telemetry import Providers, TelemetrySettings
    from shared.usage import UsageRecorder, UsageSettings

__all__ = [
    "aclose",
    "backlog",
    "backlog_settings",
    "caller_quotas",
    "gateway",
    "reset",
    "response_affinity",
    "settings",
    "telemetry",
    "usage",
    "usage_settings",
]

_lock = threading.Lock()
_cache: dict[str, object] = {}


def settings() -> GatewaySettings:
    """The gateway settings from the environment; raises ``SettingsError`` (not cached) when invalid."""
    with _lock:
        if "settings" not in _cache:
            from shared.settings import load_gateway_settings

            _cache["settings"] = load_gateway_settings()
        return cast("GatewaySettings", _cache["settings"])


def gateway() -> Gateway:
    """The process-wide access layer, built from ``settings()`` on first use."""
    current = settings()
    with _lock:
        built = _cache.get("gateway")
    if built is not None:
        return cast("Gateway", built)
    observers = _observers(current)  # outside the lock: they take it themselves
    quotas = caller_quotas()
    if quotas is not None:
        observers.append(quotas)  # counts each caller's monthly tokens
    with _lock:
        if "gateway" not in _cache:
            from shared.aoai import Gateway

            # Azure sets WEBSITE_INSTANCE_ID per instance (the dev server too): health and the
            # quota ledger name the instance by it.
            built = Gateway(
                current,
                observers=observers,
                instance=os.environ.get("WEBSITE_INSTANCE_ID"),
            )
            if quotas is not None:
                from shared.quotas import QuotaGateway

                # per-caller limits before any upstream call; everything else passes through
                built = cast("Gateway", QuotaGateway(built, quotas))
            _cache["gateway"] = built
        return cast("Gateway", _cache["gateway"])


def telemetry() -> Providers | None:
    """The OpenTelemetry providers when an exporter is configured (built once), else None."""
    with _lock:
        if "telemetry" not in _cache:
            from shared.telemetry import configure, load_telemetry_settings

            _cache["telemetry_settings"] = found = load_telemetry_settings()
            _cache["telemetry"] = configure(found)
        return cast("Providers | None", _cache["telemetry"])


def usage_settings() -> UsageSettings:
    """Usage accounting settings (table, flush interval, price table)."""
    with _lock:
        if "usage_settings" not in _cache:
            from shared.usage import load_usage_settings

            _cache["usage_settings"] = load_usage_settings()
        return cast("UsageSettings", _cache["usage_settings"])


def usage() -> UsageRecorder:
    """The usage recorder (an observer of the gateway), on the gateway's storage."""
    found, current = usage_settings(), settings()
    with _lock:
        if "usage" not in _cache:
            from shared.usage import UsageRecorder, table_store

            store = table_store(current, found.usage_table)
            _cache["usage"] = UsageRecorder(store, flush_s=found.usage_flush_s)
        return cast("UsageRecorder", _cache["usage"])


def response_affinity() -> AffinityStore:
    """Where each stored response lives (the Responses API's affinity), in the gateway's storage
    (a table beside the health, ledger and usage tables); in memory without storage."""
    current = settings()
    with _lock:
        if "response_affinity" not in _cache:
            from shared.responses import affinity_store

            _cache["response_affinity"] = affinity_store(current)
        return cast("AffinityStore", _cache["response_affinity"])


def caller_quotas() -> CallerQuotas | None:
    """Per-caller limits (GATEWAY_CALLER_LIMITS) shared through the gateway's storage; None
    when no limits are set."""
    current = settings()
    with _lock:
        if "caller_quotas" not in _cache:
            from shared.quotas import (
                CallerQuotas,
                InMemoryWindowStore,
                TableWindowStore,
                load_caller_limits,
            )
            from shared.usage import table_client

            limits = load_caller_limits()
            quotas = None
            if limits is not None:
                client = table_client(current, limits.table)
                store = TableWindowStore(client) if client is not None else InMemoryWindowStore()
                quotas = CallerQuotas(limits, store)
            _cache["caller_quotas"] = quotas
        return cast("CallerQuotas | None", _cache["caller_quotas"])


def _observers(current: GatewaySettings) -> list[CallObserver]:
    """The gateway's observers: the log record, telemetry when configured, usage when enabled."""
    from urllib.parse import urlsplit

    from shared.aoai import CallLog

    observers: list[CallObserver] = [CallLog()]
    providers = telemetry()
    if providers is not None:
        from shared.telemetry import TelemetryObserver

        observers.append(
            TelemetryObserver(
                tracer_provider=providers.tracer_provider,
                meter_provider=providers.meter_provider,
                servers={r.name: urlsplit(str(r.endpoint)).hostname or "" for r in current.regions},
                capture_content=cast(
                    "TelemetrySettings", _cache["telemetry_settings"]
                ).capture_content,
                health=lambda: cast("Gateway", _cache["gateway"]).health_report(),
            )
        )
    if usage_settings().enabled:
        observers.append(usage())
    return observers


def backlog_settings() -> BacklogSettings:
    """The backlog's settings (queues, job store, limits); raises ``SettingsError`` when invalid."""
    with _lock:
        if "backlog_settings" not in _cache:
            from shared.settings import load_backlog_settings

            _cache["backlog_settings"] = load_backlog_settings()
        return cast("BacklogSettings", _cache["backlog_settings"])


def backlog() -> Backlog:
    """The backlog (job store, Service Bus sender, parking queues) on top of ``gateway()``."""
    current = backlog_settings()
    gw = gateway()
    gateway_settings = settings()
    recorder = usage() if usage_settings().enabled else None  # batch-lane lines are counted too
    with _lock:
        if "backlog" not in _cache:
            from shared.jobs import build_backlog

            _cache["backlog"] = build_backlog(
                current, gw, gateway_settings=gateway_settings, usage=recorder
            )
        return cast("Backlog", _cache["backlog"])


def reset() -> None:
    """Forget every cached service (for tests): the next call rebuilds from the environment."""
    with _lock:
        _cache.clear()


async def aclose() -> None:
    """Close the cached services that hold connections, then forget them."""
    with _lock:
        built = dict(_cache)
        _cache.clear()
    from shared.credentials import close_all

    # Every service is closed, even when closing another fails.
    closers = []
    jobs, gw = built.get("backlog"), built.get("gateway")
    quotas, recorder = built.get("caller_quotas"), built.get("usage")
    affinity = built.get("response_affinity")
    if affinity is not None:
        closers.append(cast("AffinityStore", affinity).aclose)
    if jobs is not None:
        closers.append(cast("Backlog", jobs).aclose)
    if gw is not None:
        closers.append(cast("Gateway", gw).aclose)
    if quotas is not None:
        closers.append(cast("CallerQuotas", quotas).aclose)
    if recorder is not None:
        closers.append(cast("UsageRecorder", recorder).aclose)
    try:
        await close_all(closers, what="service")
    finally:
        providers = built.get("telemetry")
        if providers is not None:
            cast("Providers", providers).flush()
