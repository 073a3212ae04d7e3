"""The backlog's dead-letter queue: peek at it, and send chosen messages back to the backlog.

Re-driving receives from the dead-letter queue in peek-lock, sends a copy of each chosen message
(same body, subject, content type and properties, minus the dead-letter ones) to the backlog
queue, then completes the original; messages not chosen are abandoned (left as they were). The
job store keeps each job to one terminal state, so a re-driven job that had already finished only
has its reply re-sent.

The copy goes under a new message id, ``<job id>.r<dead-letter sequence number>``, as the other
re-drive paths do (``<job id>.d<n>``, ``<job id>.<park id>``): the backlog queue has duplicate
detection, and the original id (the job id) was seen when the job was submitted, so within the
window Service Bus would accept the copy and drop it while the dead-letter copy is completed. The
id is derived from the dead-lettered message, so re-driving the same message twice (a retry after
a failure between the send and the complete) is still dropped as a duplicate. The job's identity
travels in the body (``job_id``, which a job message always carries; a JSON object without one
gets the original message id there, which is what the worker would have fallen back to) and in
the correlation id.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from azure.servicebus.aio import ServiceBusClient

__all__ = ["peek_dead_letters", "redrive_dead_letters"]

_DROP = {"DeadLetterReason", "DeadLetterErrorDescription"}
_MAX_BASE = 100  # a job id's longest (shared.jobs' contract); Service Bus allows 128 per message id


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


def _with_identity(body: bytes, message_id: str | None) -> tuple[bytes, str | None]:
    """(the body to re-send, the job id it names). A JSON object without a ``job_id`` gets the
    original message id as its ``job_id``; any other body is sent as it was."""
    try:
        raw = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return body, message_id
    if not isinstance(raw, dict):
        return body, message_id
    job_id = raw.get("job_id")
    if isinstance(job_id, str) and job_id:
        return body, job_id
    if "job_id" in raw or message_id is None:
        return body, message_id
    return json.dumps({**raw, "job_id": message_id}).encode("utf-8"), message_id


def _redrive_message_id(job_id: str | None, sequence_number: int) -> str:
    """The re-driven copy's message id: new for each dead-lettered message, stable for one."""
    return f"{(job_id or 'message')[:_MAX_BASE]}.r{sequence_number}"


async def peek_dead_letters(
    client: ServiceBusClient, queue: str, *, limit: int = 50
) -> list[dict[str, Any]]:
    """Up to ``limit`` dead-lettered messages of ``queue``, oldest first, without locking them."""
    from azure.servicebus import ServiceBusSubQueue

    async with client.get_queue_receiver(
        queue, sub_queue=ServiceBusSubQueue.DEAD_LETTER
    ) as receiver:
        messages = await receiver.peek_messages(max_message_count=limit)
    return [_row(m) for m in messages]


async def redrive_dead_letters(
    client: ServiceBusClient,
    queue: str,
    sequence_numbers: Iterable[int],
    *,
    max_wait_s: float = 2.0,
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
                original_id = str(message.message_id) if message.message_id is not None else None
                body, job_id = _with_identity(_body(message), original_id)
                await sender.send_messages(
                    ServiceBusMessage(
                        body,
                        # Never the original id: duplicate detection saw it (module docstring).
                        message_id=_redrive_message_id(job_id, message.sequence_number),
                        correlation_id=message.correlation_id or job_id,
                        subject=message.subject,
                        content_type=message.content_type,
                        application_properties=props or None,  # type: ignore[arg-type]  # the SDK's value union is narrower than what it accepts
                    )
                )
                await receiver.complete_message(message)
                done.append(message.sequence_number)
    return {"redriven": sorted(done), "missing": sorted(wanted - set(done))}
