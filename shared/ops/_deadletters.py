"""The backlog's dead-letter queue: peek at it, and send chosen messages back to the backlog.

Re-driving receives from the dead-letter queue in peek-lock, sends a copy of each chosen message
(same body, message id, correlation id and properties, minus the dead-letter ones) to the
backlog queue, then completes the original; messages not chosen are abandoned (left as they
were). The job store keeps each job to one terminal state, so a re-driven job that had already
finished only has its reply re-sent.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

__all__ = ["peek_dead_letters", "redrive_dead_letters"]

_DROP = {"DeadLetterReason", "DeadLetterErrorDescription"}


def _text(value: Any) -> Any:
    return value.decode("utf-8", "replace") if isinstance(value, bytes | bytearray) else value


def _props(message: Any) -> dict[str, Any]:
    return {str(_text(k)): _text(v) for k, v in (message.application_properties or {}).items()}


def _body(message: Any) -> bytes:
    body = message.body
    return bytes(body) if isinstance(body, bytes | bytearray) else b"".join(body)


def _row(message: Any) -> dict[str, Any]:
    props = _props(message)
    return {
        "sequence_number": message.sequence_number,
        "message_id": str(message.message_id) if message.message_id is not None else None,
        "reason": message.dead_letter_reason or props.get("DeadLetterReason"),
        "description": (
            message.dead_letter_error_description or props.get("DeadLetterErrorDescription") or ""
        )[:300],
        "delivery_count": message.delivery_count,
        "enqueued_at": message.enqueued_time_utc.isoformat() if message.enqueued_time_utc else None,
        "subject": message.subject,
        "bytes": len(_body(message)),
    }


async def peek_dead_letters(client: Any, queue: str, *, limit: int = 50) -> list[dict[str, Any]]:
    """Up to ``limit`` dead-lettered messages of ``queue``, oldest first, without locking them."""
    from azure.servicebus import ServiceBusSubQueue

    async with client.get_queue_receiver(
        queue, sub_queue=ServiceBusSubQueue.DEAD_LETTER
    ) as receiver:
        messages = await receiver.peek_messages(max_message_count=limit)
    return [_row(m) for m in messages]


async def redrive_dead_letters(
    client: Any, queue: str, sequence_numbers: Iterable[int], *, max_wait_s: float = 2.0
) -> dict[str, list[int]]:
    """Send the chosen dead-lettered messages back to ``queue``: ``{"redriven": [...], "missing": [...]}``."""
    from azure.servicebus import ServiceBusMessage, ServiceBusSubQueue

    wanted = set(sequence_numbers)
    done: list[int] = []
    async with (
        client.get_queue_receiver(
            queue, sub_queue=ServiceBusSubQueue.DEAD_LETTER, max_wait_time=max_wait_s
        ) as receiver,
        client.get_queue_sender(queue) as sender,
    ):
        while wanted - set(done):
            batch = await receiver.receive_messages(max_message_count=50, max_wait_time=max_wait_s)
            if not batch:
                break
            for message in batch:
                if message.sequence_number not in wanted:
                    await receiver.abandon_message(message)
                    continue
                props = {k: v for k, v in _props(message).items() if k not in _DROP}
                await sender.send_messages(
                    ServiceBusMessage(
                        _body(message),
                        message_id=str(message.message_id)
                        if message.message_id is not None
                        else None,
                        correlation_id=message.correlation_id,
                        subject=message.subject,
                        content_type=message.content_type,
                        application_properties=props or None,  # type: ignore[arg-type]  # the SDK's value union is narrower than what it accepts
                    )
                )
                await receiver.complete_message(message)
                done.append(message.sequence_number)
    return {"redriven": sorted(done), "missing": sorted(wanted - set(done))}
