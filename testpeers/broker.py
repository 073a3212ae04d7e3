"""The Service Bus test broker (``sbbroker``) in a thread of the calling process, on a free
loopback port. The handle's ``stop()`` ends it."""

from __future__ import annotations

from typing import Any

from sbbroker import Broker, BrokerMessage

from .queues import broker_settings

__all__ = ["Broker", "BrokerMessage", "start_azure_broker", "start_broker"]


def start_broker(
    *,
    queues: tuple[str, ...] | list[str] = (),
    max_delivery_count: int = 10,
    lock_duration_s: float = 30.0,
    auto_create: bool = True,
    **kwargs: Any,
) -> Broker:
    """A started broker: free port, queues created on first use unless ``auto_create=False``."""
    broker = Broker(
        port=0,
        queues=queues,
        max_delivery_count=max_delivery_count,
        lock_duration_s=lock_duration_s,
        auto_create=auto_create,
        **kwargs,
    )
    return broker.start_in_thread()


def start_azure_broker(**overrides: Any) -> Broker:
    """A started broker whose queues behave as the ones ``infra/`` creates (one declaration,
    ``testpeers/servicebus_queues.json``, shared with ``make run``): the declared queues, and
    every queue created on first use, get their settings (duplicate detection included)."""
    names, settings = broker_settings()
    options: dict[str, Any] = {
        "queues": names,
        "max_delivery_count": settings.max_delivery_count,
        "lock_duration_s": settings.lock_duration_s,
        "dead_lettering_on_expiration": settings.dead_lettering_on_expiration,
        "duplicate_detection_window_s": settings.duplicate_detection_window_s,
    }
    options.update(overrides)
    return start_broker(**options)
