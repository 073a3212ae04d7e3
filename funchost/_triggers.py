"""Trigger data as the Functions host sends it to a worker: the trigger's input (TypedData) and
its trigger metadata. The host sends strings as ``string`` and everything else (counts, sequence
numbers, dates, property bags) as ``json``."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from types import ModuleType
from typing import Any

__all__ = ["queue_message", "service_bus_message", "timer_payload"]


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _metadata(protos: ModuleType, method: str, values: dict[str, Any]) -> dict[str, Any]:
    out = {}
    for key, value in values.items():
        if value is None:
            continue
        if isinstance(value, str):
            out[key] = protos.TypedData(string=value)
        else:
            out[key] = protos.TypedData(json=json.dumps(value))
    now = datetime.now(UTC)
    out["sys"] = protos.TypedData(
        json=json.dumps({"MethodName": method, "UtcNow": _iso(now), "RandGuid": str(uuid.uuid4())})
    )
    return out


def service_bus_message(
    protos: ModuleType, method: str, spec: dict[str, Any]
) -> tuple[Any, dict[str, Any]]:
    """One Service Bus message (cardinality one, the binding's default), from a description with
    the body (text) and the broker's fields: message_id, delivery_count, sequence_number, application_properties,
    correlation_id, reply_to, content_type, dead_letter_reason/_error_description/_source."""
    now = datetime.now(UTC)
    # Without a dataType on the binding the host hands a non-.NET worker the body as text.
    data = protos.TypedData(string=spec.get("body", ""))
    props = spec.get("application_properties") or {}
    metadata = _metadata(
        protos,
        method,
        {
            "MessageId": spec.get("message_id") or uuid.uuid4().hex,
            "DeliveryCount": int(spec.get("delivery_count", 1)),
            "SequenceNumber": int(spec.get("sequence_number", 1)),
            "EnqueuedTimeUtc": _iso(now),
            "ExpiresAtUtc": _iso(now + timedelta(days=14)),
            "LockedUntil": _iso(now + timedelta(seconds=30)),
            "LockToken": str(uuid.uuid4()),
            "ContentType": spec.get("content_type"),
            "CorrelationId": spec.get("correlation_id"),
            "ReplyTo": spec.get("reply_to"),
            "Subject": spec.get("subject"),
            "DeadLetterSource": spec.get("dead_letter_source"),
            "DeadLetterReason": spec.get("dead_letter_reason"),
            "DeadLetterErrorDescription": spec.get("dead_letter_error_description"),
            "ApplicationProperties": props,
            "UserProperties": props,
        },
    )
    return data, metadata


def queue_message(
    protos: ModuleType, method: str, spec: dict[str, Any]
) -> tuple[Any, dict[str, Any]]:
    """One Storage queue message, already base64-decoded by the host (text, ``id``,
    ``dequeue_count``)."""
    now = datetime.now(UTC)
    data = protos.TypedData(string=spec.get("body", ""))
    metadata = _metadata(
        protos,
        method,
        {
            "Id": spec.get("id") or str(uuid.uuid4()),
            "DequeueCount": int(spec.get("dequeue_count", 1)),
            "InsertionTime": _iso(now - timedelta(minutes=5)),
            "ExpirationTime": _iso(now + timedelta(days=7)),
            "NextVisibleTime": _iso(now + timedelta(minutes=10)),
            "PopReceipt": uuid.uuid4().hex,
        },
    )
    return data, metadata


def timer_payload(
    protos: ModuleType, method: str, spec: dict[str, Any]
) -> tuple[Any, dict[str, Any]]:
    """The host's TimerInfo, serialised as it sends it: Schedule, ScheduleStatus, IsPastDue."""
    now = datetime.now(UTC)
    info = {
        "Schedule": {"AdjustForDST": True},
        "ScheduleStatus": {
            "Last": _iso(now - timedelta(seconds=30)),
            "Next": _iso(now + timedelta(seconds=30)),
            "LastUpdated": _iso(now - timedelta(seconds=30)),
        },
        "IsPastDue": bool(spec.get("past_due", False)),
    }
    return protos.TypedData(json=json.dumps(info)), _metadata(protos, method, {})
