"""The one place that knows the Functions trigger types: turn them into our frozen values.

``azure.functions`` is only imported for typing, so ``shared.jobs`` stays importable without it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._delivery import Delivery

if TYPE_CHECKING:
    import azure.functions as func

__all__ = ["delivery_from_servicebus", "text_from_queue_message"]


def delivery_from_servicebus(msg: func.ServiceBusMessage) -> Delivery:
    """A Delivery from the host's ServiceBusMessage (main queue or dead-letter queue)."""
    props: dict[str, Any] = {}
    for source in ("user_properties", "application_properties"):
        value = getattr(msg, source, None)
        if isinstance(value, dict):
            props.update(value)
    return Delivery(
        body=msg.get_body(),
        message_id=getattr(msg, "message_id", None),
        delivery_count=int(getattr(msg, "delivery_count", None) or 1),
        sequence_number=getattr(msg, "sequence_number", None),
        application_properties=props,
        correlation_id=getattr(msg, "correlation_id", None),
        dead_letter_reason=getattr(msg, "dead_letter_reason", None)
        or _text(props.get("DeadLetterReason")),
        dead_letter_description=getattr(msg, "dead_letter_error_description", None)
        or _text(props.get("DeadLetterErrorDescription")),
    )


def text_from_queue_message(msg: func.QueueMessage) -> tuple[str, int | None]:
    """The (already base64-decoded by the host) text of a Storage queue message and its dequeue count."""
    return msg.get_body().decode("utf-8", errors="replace"), getattr(msg, "dequeue_count", None)


def _text(value: Any) -> str | None:
    if value is None:
        return None
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)
