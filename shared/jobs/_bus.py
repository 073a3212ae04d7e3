"""Sending to Service Bus queues (the backlog, reply queues, re-drives) through one client.

The client is built by the composition root (``shared.servicebus``) and handed in; ``Bus``
closes its senders, the client's owner closes the client.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from ..telemetry import send_span

if TYPE_CHECKING:
    from azure.servicebus.aio import ServiceBusClient, ServiceBusSender

__all__ = ["Bus", "Outgoing", "QueueNotAuthorized", "QueueNotFound", "QueueUnusable"]

logger = logging.getLogger(__name__)


class QueueUnusable(LookupError):
    """The target queue cannot take the message, and retrying will not help."""


class QueueNotFound(QueueUnusable):
    """The target queue does not exist."""


class QueueNotAuthorized(QueueUnusable):
    """The app has no right to send to the target queue (no Data Sender role on it)."""


@dataclass(frozen=True, slots=True)
class Outgoing:
    body: bytes
    message_id: str
    correlation_id: str | None = None
    subject: str | None = None
    application_properties: dict[str, Any] = field(default_factory=dict)
    scheduled_at: float | None = None  # epoch seconds; None = now
    content_type: str = "application/json"


_LINKS_PER_QUEUE = 4  # senders per queue: sends on one sender are serialized, so several links


class Bus:
    """Up to ``_LINKS_PER_QUEUE`` senders per queue, opened on first use; a send takes a free one
    (sends on one sender are serialized), so concurrent sends (submissions, replies) overlap."""

    def __init__(self, client: ServiceBusClient, *, links: int = _LINKS_PER_QUEUE) -> None:
        self._client = client
        self._links = max(1, links)
        self._senders: dict[str, tuple[ServiceBusSender, asyncio.Lock]] = {}
        self._turn = 0

    def _sender(self, queue: str) -> tuple[str, tuple[ServiceBusSender, asyncio.Lock]]:
        keys = [f"{queue}#{i}" for i in range(self._links)]
        free = [k for k in keys if k in self._senders and not self._senders[k][1].locked()]
        if free:
            key = free[0]
        else:
            missing = [k for k in keys if k not in self._senders]
            self._turn += 1
            key = missing[0] if missing else keys[self._turn % len(keys)]
        if key not in self._senders:
            self._senders[key] = (self._client.get_queue_sender(queue_name=queue), asyncio.Lock())
        return key, self._senders[key]

    async def send(self, queue: str, message: Outgoing) -> None:
        from azure.servicebus import ServiceBusMessage

        properties = dict(message.application_properties)
        with send_span(queue, message.message_id, properties):  # traceparent -> properties
            sb_message = ServiceBusMessage(
                message.body,
                message_id=message.message_id,
                correlation_id=message.correlation_id,
                subject=message.subject,
                content_type=message.content_type,
                application_properties=properties or None,  # type: ignore[arg-type]  # the SDK's value union is narrower than what it accepts at run time
            )
            if message.scheduled_at is not None:
                sb_message.scheduled_enqueue_time_utc = datetime.fromtimestamp(
                    message.scheduled_at, UTC
                )
            await self._send(queue, sb_message)

    async def _send(self, queue: str, sb_message: Any) -> None:
        from azure.servicebus.exceptions import (
            MessagingEntityNotFoundError,
            ServiceBusAuthorizationError,
        )

        key, (sender, lock) = self._sender(queue)
        try:
            async with lock:
                await sender.send_messages(sb_message)
        except MessagingEntityNotFoundError as exc:
            await self._drop(key)
            raise QueueNotFound(f"Service Bus queue '{queue}' does not exist") from exc
        except ServiceBusAuthorizationError as exc:
            await self._drop(key)
            raise QueueNotAuthorized(
                f"this app may not send to Service Bus queue '{queue}' (no Data Sender role)"
            ) from exc
        except Exception:
            await self._drop(key)  # a broken link is rebuilt on the next send
            raise

    async def _drop(self, queue: str) -> None:
        entry = self._senders.pop(queue, None)
        if entry is not None:
            try:
                await entry[0].close()
            except Exception:
                logger.debug("closing sender for %s failed", queue, exc_info=True)

    async def aclose(self) -> None:
        """Close the senders (the client is its owner's to close)."""
        for queue in list(self._senders):
            await self._drop(queue)
