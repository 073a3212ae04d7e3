"""Thin server-side helpers over the SDK's private AMQP codec (azure.servicebus._pyamqp).

Messages are kept as raw encoded sections so that values go back to the client with the
exact AMQP types the sender used (a string stays a string, binary stays binary).
"""

from __future__ import annotations

import struct
import uuid
from collections.abc import Iterable
from typing import Any, NamedTuple

from azure.servicebus._pyamqp._decode import _DECODE_BY_CONSTRUCTOR, decode_frame, decode_payload
from azure.servicebus._pyamqp._encode import encode_frame, encode_value
from azure.servicebus._pyamqp.types import TYPE, VALUE, AMQPTypes

__all__ = [
    "AMQP_HEADER",
    "BODY_SECTIONS",
    "SASL_HEADER",
    "SECTION_APPLICATION_PROPERTIES",
    "SECTION_DELIVERY_ANNOTATIONS",
    "SECTION_FOOTER",
    "SECTION_HEADER",
    "SECTION_MESSAGE_ANNOTATIONS",
    "SECTION_PROPERTIES",
    "Section",
    "decode_frame",
    "decode_payload",
    "decode_typed",
    "encode_map_raw",
    "encode_one",
    "encode_section",
    "frame_bytes",
    "map_pairs",
    "split_sections",
    "typed",
    "value_length",
]

AMQP_HEADER = b"AMQP\x00\x01\x00\x00"
SASL_HEADER = b"AMQP\x03\x01\x00\x00"

SECTION_HEADER = 0x70
SECTION_DELIVERY_ANNOTATIONS = 0x71
SECTION_MESSAGE_ANNOTATIONS = 0x72
SECTION_PROPERTIES = 0x73
SECTION_APPLICATION_PROPERTIES = 0x74
SECTION_FOOTER = 0x78
BODY_SECTIONS = (0x75, 0x76, 0x77)

_STRING_CONSTRUCTORS = (0xA1, 0xB1)


def typed(amqp_type: str, value: Any) -> dict:
    """A value tagged with an explicit AMQP type for the SDK encoder."""
    return {TYPE: amqp_type, VALUE: value}


def encode_one(value: Any) -> bytes:
    """Encode one value (plain Python or ``typed(...)``) to its AMQP bytes."""
    out = bytearray()
    encode_value(out, value)
    return bytes(out)


def frame_bytes(channel: int, performative: NamedTuple, frame_type: bytes = b"\x00") -> bytes:
    """A complete wire frame (size, doff, type, channel, body) for a performative."""
    header, body = encode_frame(performative, frame_type=frame_type)
    return header + channel.to_bytes(2, "big") + (bytes(body) if body is not None else b"")


def value_length(buf: memoryview) -> int:
    """Byte length of the single encoded value at the start of ``buf``."""
    rest, _ = _DECODE_BY_CONSTRUCTOR[buf[0]](buf[1:])
    return len(buf) - len(rest)


class Section(NamedTuple):
    """One message section: its descriptor code, the raw encoded value, and the whole raw section."""

    code: int
    value_raw: bytes
    raw: bytes


def split_sections(payload: bytes) -> list[Section]:
    """Split an encoded message into its sections without re-encoding anything."""
    buf = memoryview(payload)
    sections: list[Section] = []
    pos = 0
    while pos < len(buf):
        if buf[pos] != 0x00:
            raise ValueError(f"expected a described section at offset {pos}")
        desc_len = value_length(buf[pos + 1 :])
        _, code = _DECODE_BY_CONSTRUCTOR[buf[pos + 1]](buf[pos + 2 :])
        value_start = pos + 1 + desc_len
        end = value_start + value_length(buf[value_start:])
        sections.append(Section(int(code), bytes(buf[value_start:end]), bytes(buf[pos:end])))
        pos = end
    return sections


def encode_section(code: int, value_raw: bytes) -> bytes:
    """A described section from a descriptor code and a raw encoded value."""
    return b"\x00\x53" + bytes([code]) + value_raw


def map_pairs(raw: bytes) -> list[tuple[bytes, bytes]]:
    """The raw (key, value) byte pairs of an encoded map (null gives no pairs)."""
    buf = memoryview(raw)
    ctor = buf[0]
    if ctor == 0x40:
        return []
    if ctor == 0xC1:
        count, pos = buf[2], 3
    elif ctor == 0xD1:
        count, pos = struct.unpack(">I", buf[5:9])[0], 9
    else:
        raise ValueError(f"not a map constructor: {ctor:#x}")
    pairs = []
    for _ in range(count // 2):
        klen = value_length(buf[pos:])
        key = bytes(buf[pos : pos + klen])
        pos += klen
        vlen = value_length(buf[pos:])
        pairs.append((key, bytes(buf[pos : pos + vlen])))
        pos += vlen
    return pairs


def encode_map_raw(pairs: Iterable[tuple[bytes, bytes]]) -> bytes:
    """An encoded map built from raw (key, value) byte pairs."""
    pairs = list(pairs)
    body = b"".join(k + v for k, v in pairs)
    count = len(pairs) * 2
    if count <= 255 and len(body) < 255:
        return bytes([0xC1, len(body) + 1, count]) + body
    return b"\xd1" + struct.pack(">II", len(body) + 4, count) + body


def decode_typed(raw: bytes) -> Any:
    """Decode one raw value; AMQP strings and symbols come back as ``str``, binary as ``bytes``."""
    buf = memoryview(raw)
    _, value = _DECODE_BY_CONSTRUCTOR[buf[0]](buf[1:])
    if buf[0] in _STRING_CONSTRUCTORS or buf[0] in (0xA3, 0xB3):
        return value.decode("utf-8")
    return value


def key_text(raw_key: bytes) -> str:
    """A map key (string or symbol) as text."""
    value = decode_typed(raw_key)
    return value if isinstance(value, str) else str(value)


def uuid_from_tag(tag: bytes) -> uuid.UUID | None:
    """The lock token carried by a delivery tag, as the SDK reads it."""
    try:
        return uuid.UUID(bytes_le=bytes(tag))
    except ValueError:
        return None


__all__ += ["AMQPTypes", "key_text", "uuid_from_tag"]


def list_items(raw: bytes) -> list[bytes]:
    """The raw items of an encoded list (list0 or null give no items)."""
    buf = memoryview(raw)
    ctor = buf[0]
    if ctor in (0x40, 0x45):
        return []
    if ctor == 0xC0:
        count, pos = buf[2], 3
    elif ctor == 0xD0:
        count, pos = struct.unpack(">I", buf[5:9])[0], 9
    else:
        raise ValueError(f"not a list constructor: {ctor:#x}")
    items = []
    for _ in range(count):
        n = value_length(buf[pos:])
        items.append(bytes(buf[pos : pos + n]))
        pos += n
    return items


__all__ += ["list_items"]
