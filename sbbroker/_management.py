"""``$cbs`` and ``<queue>/$management`` request/response operations."""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass, field
from typing import Any

from azure.servicebus._pyamqp.message import Message, Properties

from ._codec import AMQPTypes, typed
from ._entities import EntityNotFound, LockLost, Queue, Registry
from ._message import STATE_DEFERRED, now_ms

__all__ = ["MgmtResponse", "handle_cbs", "handle_management"]

_LOGGER = logging.getLogger(__name__)
VENDOR = "com.microsoft:"
LOCK_LOST = b"com.microsoft:message-lock-lost"
MESSAGE_NOT_FOUND = b"com.microsoft:message-not-found"
NOT_IMPLEMENTED = b"amqp:not-implemented"
ARGUMENT_ERROR = b"com.microsoft:argument-error"


@dataclass
class MgmtResponse:
    """A management reply before encoding."""

    status: int
    description: str
    value: Any = None
    condition: bytes | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def to_message(self, request: Message, *, cbs: bool = False) -> Message:
        code_key, desc_key = (
            ("status-code", "status-description") if cbs else ("statusCode", "statusDescription")
        )
        app: dict[str, Any] = {code_key: self.status, desc_key: self.description}
        if self.condition:
            app["errorCondition"] = typed(AMQPTypes.symbol, self.condition)
        correlation = request.properties.message_id if request.properties else None
        return Message(
            properties=Properties(correlation_id=correlation),
            application_properties=app,
            value=self.value,
        )


def _text(value: Any) -> str | None:
    if value is None:
        return None
    return value.decode("utf-8") if isinstance(value, (bytes, bytearray)) else str(value)


def _tokens(body: dict) -> list[uuid.UUID]:
    result = []
    for token in body.get(b"lock-tokens") or []:
        result.append(token if isinstance(token, uuid.UUID) else uuid.UUID(_text(token)))
    return result


def handle_cbs(request: Message) -> MgmtResponse:
    """Accept any put-token: the broker does not authenticate."""
    app = request.application_properties or {}
    _LOGGER.debug("cbs %s for %s", _text(app.get(b"operation")), _text(app.get(b"name")))
    return MgmtResponse(202, "Accepted")


def handle_management(registry: Registry, queue: Queue, request: Message) -> MgmtResponse:
    """Run one management operation against ``queue``."""
    app = request.application_properties or {}
    operation = _text(app.get(b"operation")) or ""
    body = request.value if isinstance(request.value, dict) else {}
    handler = _OPERATIONS.get(operation)
    if handler is None:
        return MgmtResponse(
            501, f"Operation {operation!r} is not supported by sbbroker.", condition=NOT_IMPLEMENTED
        )
    try:
        return handler(registry, queue, body)
    except LockLost as exc:
        return MgmtResponse(410, str(exc), condition=LOCK_LOST)
    except EntityNotFound as exc:
        return MgmtResponse(
            404, f"The messaging entity '{exc}' could not be found.", condition=b"amqp:not-found"
        )


def _schedule(registry: Registry, queue: Queue, body: dict) -> MgmtResponse:
    numbers = []
    for item in body.get(b"messages") or []:
        payload = bytes(item[b"message"])
        message = queue.enqueue(payload)
        if message is None:  # dropped by duplicate detection: accepted, never delivered
            numbers.append(queue._take_seq())
            continue
        if message.scheduled_ms is None:  # the SDK always sets it; default to now
            message.scheduled_ms = now_ms()
        numbers.append(message.sequence_number)
    queue.dispatch()
    value = {
        "sequence-numbers": typed(AMQPTypes.array, [typed(AMQPTypes.long, n) for n in numbers])
    }
    return MgmtResponse(200, "OK", value)


def _cancel(registry: Registry, queue: Queue, body: dict) -> MgmtResponse:
    missing = queue.cancel_scheduled(int(n) for n in (body.get(b"sequence-numbers") or []))
    if missing:
        return MgmtResponse(
            404,
            f"The scheduled message(s) {missing} could not be found.",
            condition=MESSAGE_NOT_FOUND,
        )
    return MgmtResponse(200, "OK")


def _peek(registry: Registry, queue: Queue, body: dict) -> MgmtResponse:
    from_seq = int(body.get(b"from-sequence-number") or 1)
    count = int(body.get(b"message-count") or 1)
    found = queue.peek(from_seq, count)
    if not found:
        return MgmtResponse(204, "No messages to peek.")
    value = {"messages": [{"message": m.encode(peek=True)} for m in found]}
    return MgmtResponse(200, "OK", value)


def _renew(registry: Registry, queue: Queue, body: dict) -> MgmtResponse:
    expirations = [queue.renew(token) for token in _tokens(body)]
    value = {
        "expirations": typed(
            AMQPTypes.array, [typed(AMQPTypes.timestamp, ms) for ms in expirations]
        )
    }
    return MgmtResponse(200, "OK", value)


def _update_disposition(registry: Registry, queue: Queue, body: dict) -> MgmtResponse:
    status = _text(body.get(b"disposition-status"))
    for token in _tokens(body):
        if status == "completed":
            queue.complete(token)
        elif status == "abandoned":
            queue.abandon(token)
        elif status == "suspended":
            queue.dead_letter(
                token,
                _text(body.get(b"deadletter-reason")),
                _text(body.get(b"deadletter-description")),
            )
        elif status == "defered":
            queue.defer(token)
        else:
            return MgmtResponse(
                400, f"Unknown disposition-status {status!r}.", condition=ARGUMENT_ERROR
            )
    queue.dispatch()
    return MgmtResponse(200, "OK")


def _receive_by_sequence(registry: Registry, queue: Queue, body: dict) -> MgmtResponse:
    items = []
    for seq in body.get(b"sequence-numbers") or []:
        message = queue.messages.get(int(seq))
        if message is None or message.state != STATE_DEFERRED:
            return MgmtResponse(
                404, f"Deferred message {seq} not found.", condition=MESSAGE_NOT_FOUND
            )
        token = uuid.uuid4()
        message.lock_token = token
        message.locked_until_ms = now_ms() + int(queue.config.lock_duration_s * 1000)
        queue.locks[token] = message
        items.append(
            {
                "lock-token": token,
                "message": message.encode(locked_until_ms=message.locked_until_ms),
            }
        )
    return MgmtResponse(200, "OK", {"messages": items})


_OPERATIONS = {
    VENDOR + "schedule-message": _schedule,
    VENDOR + "cancel-scheduled-message": _cancel,
    VENDOR + "peek-message": _peek,
    VENDOR + "renew-lock": _renew,
    VENDOR + "update-disposition": _update_disposition,
    VENDOR + "receive-by-sequence-number": _receive_by_sequence,
}
