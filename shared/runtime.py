"""The composition root: process-wide services, built lazily on first use and cached.

``function_app.py`` handlers call these; nothing is built at import time, so indexing stays
cheap and a bad app setting surfaces as a ``SettingsError`` on first use (the health route
reports it) instead of breaking the worker's indexing.

Tests: after changing the environment, call ``reset()`` so the next call rebuilds from it
(``await aclose()`` first if the old services ran on a loop that is still alive).
Other pieces add their own lazily built services here, following the same pattern.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, cast

if TYPE_CHECKING:
    from shared.aoai import Gateway
    from shared.jobs import Backlog
    from shared.settings import BacklogSettings, GatewaySettings

__all__ = ["aclose", "backlog", "backlog_settings", "gateway", "reset", "settings"]

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
        if "gateway" not in _cache:
            from shared.aoai import Gateway

            _cache["gateway"] = Gateway(current)
        return cast("Gateway", _cache["gateway"])


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
    with _lock:
        if "backlog" not in _cache:
            from shared.jobs import build_backlog

            _cache["backlog"] = build_backlog(current, gw, gateway_settings=gateway_settings)
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
    jobs = built.get("backlog")
    if jobs is not None:
        await cast("Backlog", jobs).aclose()
    gw = built.get("gateway")
    if gw is not None:
        await cast("Gateway", gw).aclose()
