"""The Service Bus test broker (``sbbroker``) in a thread of the calling process, on a free
loopback port. The handle's ``stop()`` ends it."""

from __future__ import annotations

from typing import Any

from sbbroker import Broker, BrokerMessage

__all__ = ["Broker", "BrokerMessage", "start_broker"]


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
