"""Stored messages: raw sections in, re-encoded sections with broker annotations out."""

from __future__ import annotations

import datetime as _dt
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from azure.servicebus._pyamqp._encode import describe_performative
from azure.servicebus._pyamqp.message import Header

from ._codec import (
    BODY_SECTIONS,
    SECTION_APPLICATION_PROPERTIES,
    SECTION_FOOTER,
    SECTION_HEADER,
    SECTION_MESSAGE_ANNOTATIONS,
    SECTION_PROPERTIES,
    AMQPTypes,
    decode_typed,
    encode_map_raw,
    encode_one,
    encode_section,
    key_text,
    list_items,
    map_pairs,
    split_sections,
    typed,
)

__all__ = ["BrokerMessage", "StoredMessage", "ms_to_datetime", "now_ms"]

# Annotations the broker owns; a client-sent copy is replaced on the way out.
_BROKER_ANNOTATIONS = frozenset(
    {
        "x-opt-sequence-number",
        "x-opt-enqueued-time",
        "x-opt-locked-until",
        "x-opt-deadletter-source",
        "x-opt-message-state",
        "x-opt-enqueue-sequence-number",
    }
)
_PROPERTY_NAMES = (
    "message_id",
    "user_id",
    "to",
    "subject",
    "reply_to",
    "correlation_id",
    "content_type",
    "content_encoding",
    "absolute_expiry_time",
    "creation_time",
    "group_id",
    "group_sequence",
    "reply_to_group_id",
)
STATE_ACTIVE, STATE_DEFERRED, STATE_SCHEDULED = 0, 1, 2


def now_ms() -> int:
    """Wall-clock milliseconds since the Unix epoch."""
    return int(time.time() * 1000)


def ms_to_datetime(ms: int | None) -> _dt.datetime | None:
    """An aware UTC datetime from epoch milliseconds (None stays None)."""
    if ms is None:
        return None
    return _dt.datetime.fromtimestamp(ms / 1000, tz=_dt.UTC)


@dataclass(frozen=True)
class BrokerMessage:
    """A decoded snapshot of one stored message, for tests and the admin surface.

    String-typed AMQP values (properties, application property values) are ``str`` here,
    binary ones ``bytes``: this is the broker's view, not what the SDK hands a receiver.
    """

    body: bytes
    message_id: Any
    correlation_id: Any
    reply_to: str | None
    subject: str | None
    application_properties: dict[str, Any]
    delivery_count: int
    sequence_number: int
    enqueued_time: _dt.datetime | None
    scheduled_enqueue_time: _dt.datetime | None
    dead_letter_reason: str | None
    dead_letter_description: str | None
    content_type: str | None = None
    session_id: str | None = None
    time_to_live: _dt.timedelta | None = None
    expires_at: _dt.datetime | None = None
    dead_letter_source: str | None = None
    state: str = "active"  # active | locked | scheduled | deferred
    locked_until: _dt.datetime | None = None
    lock_token: uuid.UUID | None = None
    annotations: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """A JSON-friendly dict (bytes as UTF-8 text where possible, else hex)."""

        def conv(value: Any) -> Any:
            if isinstance(value, bytes):
                try:
                    return value.decode("utf-8")
                except UnicodeDecodeError:
                    return {"hex": value.hex()}
            if isinstance(value, (_dt.datetime,)):
                return value.isoformat()
            if isinstance(value, _dt.timedelta):
                return value.total_seconds()
            if isinstance(value, uuid.UUID):
                return str(value)
            if isinstance(value, dict):
                return {str(k): conv(v) for k, v in value.items()}
            if isinstance(value, (list, tuple)):
                return [conv(v) for v in value]
            return value

        return {name: conv(getattr(self, name)) for name in self.__dataclass_fields__}


class StoredMessage:
    """A message held by a queue: raw client sections plus broker state."""

    def __init__(self, payload: bytes, *, sequence_number: int, enqueued_ms: int) -> None:
        self.sequence_number = sequence_number
        self.enqueued_ms = enqueued_ms
        self.header_fields: list[Any] = [None, None, None, None, None]
        self.annotation_pairs: list[tuple[bytes, bytes]] = []
        self.annotations: dict[str, Any] = {}
        self.properties_raw: bytes | None = None
        self.properties: dict[str, Any] = {}
        self.app_pairs: list[tuple[bytes, bytes]] = []
        self.body_raw = b""
        self.footer_raw = b""
        self.body_bytes = b""
        self._parse(payload)
        self.delivery_count = 0  # prior delivery attempts, what header.delivery_count shows
        self.state = STATE_ACTIVE
        self.scheduled_ms: int | None = self._annotation_int("x-opt-scheduled-enqueue-time")
        self.lock_token: uuid.UUID | None = None
        self.locked_until_ms: int | None = None
        self.dead_letter_source: str | None = None
        self.size = len(payload)

    # -- parsing -------------------------------------------------------------------------
    def _parse(self, payload: bytes) -> None:
        body_parts: list[bytes] = []
        data_parts: list[bytes] = []
        for section in split_sections(payload):
            if section.code == SECTION_HEADER:
                items = [decode_typed(i) for i in list_items(section.value_raw)]
                self.header_fields = (items + [None] * 5)[:5]
            elif section.code == SECTION_MESSAGE_ANNOTATIONS:
                for key, value in map_pairs(section.value_raw):
                    name = key_text(key)
                    if name in _BROKER_ANNOTATIONS:
                        continue
                    self.annotation_pairs.append((key, value))
                    self.annotations[name] = decode_typed(value)
            elif section.code == SECTION_PROPERTIES:
                self.properties_raw = section.value_raw
                items = [decode_typed(i) for i in list_items(section.value_raw)]
                self.properties = dict(zip(_PROPERTY_NAMES, items))
            elif section.code == SECTION_APPLICATION_PROPERTIES:
                self.app_pairs = map_pairs(section.value_raw)
            elif section.code in BODY_SECTIONS:
                body_parts.append(section.raw)
                if section.code == 0x75:
                    data_parts.append(decode_typed(section.value_raw))
            elif section.code == SECTION_FOOTER:
                self.footer_raw = section.raw
            # delivery annotations are hop-by-hop: dropped.
        self.body_raw = b"".join(body_parts)
        self.body_bytes = b"".join(data_parts)

    def _annotation_int(self, name: str) -> int | None:
        value = self.annotations.get(name)
        return int(value) if isinstance(value, int) else None

    # -- derived values ------------------------------------------------------------------
    @property
    def ttl_ms(self) -> int | None:
        ttl = self.header_fields[2]
        return int(ttl) if ttl else None

    @property
    def expires_ms(self) -> int | None:
        ttl = self.ttl_ms
        return self.enqueued_ms + ttl if ttl else None

    def application_properties(self) -> dict[str, Any]:
        """Application properties with their AMQP types kept (strings as str)."""
        return {key_text(k): decode_typed(v) for k, v in self.app_pairs}

    def set_app_property(self, name: str, value: str) -> None:
        """Add or replace a string application property."""
        key = encode_one(typed(AMQPTypes.string, name))
        self.app_pairs = [(k, v) for k, v in self.app_pairs if key_text(k) != name]
        self.app_pairs.append((key, encode_one(typed(AMQPTypes.string, value))))

    # -- encoding ------------------------------------------------------------------------
    def encode(self, *, locked_until_ms: int | None = None, peek: bool = False) -> bytes:
        """The message as the broker sends it to a receiver (or in a peek response)."""
        durable, priority, ttl, _first, _count = self.header_fields
        header = Header(
            durable=durable,
            priority=priority,
            ttl=ttl,
            first_acquirer=None if peek else self.delivery_count == 0,
            delivery_count=self.delivery_count,
        )
        parts = [encode_one(describe_performative(header))]
        sym = lambda name: encode_one(typed(AMQPTypes.symbol, name))  # noqa: E731
        pairs = list(self.annotation_pairs)
        pairs.append(
            (sym("x-opt-sequence-number"), encode_one(typed(AMQPTypes.long, self.sequence_number)))
        )
        pairs.append(
            (sym("x-opt-enqueued-time"), encode_one(typed(AMQPTypes.timestamp, self.enqueued_ms)))
        )
        if locked_until_ms is not None:
            pairs.append(
                (sym("x-opt-locked-until"), encode_one(typed(AMQPTypes.timestamp, locked_until_ms)))
            )
        if self.dead_letter_source:
            pairs.append(
                (
                    sym("x-opt-deadletter-source"),
                    encode_one(typed(AMQPTypes.string, self.dead_letter_source)),
                )
            )
        if peek or self.state != STATE_ACTIVE:
            pairs.append((sym("x-opt-message-state"), encode_one(typed(AMQPTypes.int, self.state))))
        parts.append(encode_section(SECTION_MESSAGE_ANNOTATIONS, encode_map_raw(pairs)))
        if self.properties_raw is not None:
            parts.append(encode_section(SECTION_PROPERTIES, self.properties_raw))
        if self.app_pairs:
            parts.append(
                encode_section(SECTION_APPLICATION_PROPERTIES, encode_map_raw(self.app_pairs))
            )
        parts.append(self.body_raw)
        parts.append(self.footer_raw)
        return b"".join(parts)

    def copy_for_dead_letter(
        self, source: str, reason: str | None, description: str | None
    ) -> StoredMessage:
        """A copy headed for the dead-letter queue, with the reason properties set."""
        clone = object.__new__(StoredMessage)
        clone.__dict__.update(self.__dict__)
        clone.annotation_pairs = list(self.annotation_pairs)
        clone.app_pairs = list(self.app_pairs)
        clone.state = STATE_ACTIVE
        clone.lock_token = None
        clone.locked_until_ms = None
        clone.dead_letter_source = source
        if reason is not None:
            clone.set_app_property("DeadLetterReason", reason)
        if description is not None:
            clone.set_app_property("DeadLetterErrorDescription", description)
        return clone

    def snapshot(self) -> BrokerMessage:
        """A frozen, decoded view of this message."""
        props = self.properties
        app = self.application_properties()
        ttl = self.ttl_ms
        if self.state == STATE_SCHEDULED:
            state = "scheduled"
        elif self.state == STATE_DEFERRED:
            state = "deferred"
        elif self.lock_token is not None:
            state = "locked"
        else:
            state = "active"
        return BrokerMessage(
            body=self.body_bytes,
            message_id=props.get("message_id"),
            correlation_id=props.get("correlation_id"),
            reply_to=props.get("reply_to"),
            subject=props.get("subject"),
            application_properties=app,
            delivery_count=self.delivery_count,
            sequence_number=self.sequence_number,
            enqueued_time=ms_to_datetime(self.enqueued_ms),
            scheduled_enqueue_time=ms_to_datetime(self.scheduled_ms),
            dead_letter_reason=app.get("DeadLetterReason"),
            dead_letter_description=app.get("DeadLetterErrorDescription"),
            content_type=props.get("content_type"),
            session_id=props.get("group_id"),
            time_to_live=_dt.timedelta(milliseconds=ttl) if ttl else None,
            expires_at=ms_to_datetime(self.expires_ms),
            dead_letter_source=self.dead_letter_source,
            state=state,
            locked_until=ms_to_datetime(self.locked_until_ms),
            lock_token=self.lock_token,
            annotations=dict(self.annotations),
        )
