"""Run-time fault injection: resets, hangs, 5xx bursts, 429 storms and slow responses.

A ``reset`` or ``hang`` with ``after_chunks`` is a mid-stream fault: ``take()`` ignores it, and the
chat handler claims it with ``take_mid_stream()`` once a streaming response is about to start, then
cuts the stream after that many SSE data events.

Two faults shape an answer instead of failing it, as some upstreams and proxies do:

* ``omit_usage``: the chat answer (admitted and charged as usual) carries no usage (no usage
  chunk even when ``stream_options.include_usage`` asks for one, no ``usage`` in a body) and no
  model name (``model: ""``). Claimed by the chat handler with ``take_answer_fault()``.
* ``bad_answer``: a 200 whose body is ``body`` (any JSON value: an array, a string, a chat
  chunk with absurd usage...) instead of the answer; a streaming request gets it as one SSE data
  event followed by ``[DONE]``. ``pad_bytes`` appends that much whitespace to the body (an
  oversized answer). Nothing is charged.

``match`` restricts a fault to requests whose body has a given shape, as upstreams that fail one
kind of valid request on every region do: ``content_parts`` (a chat message whose ``content`` is
a list of parts) or ``token_inputs`` (embeddings ``input`` given as token arrays). Other requests
pass untouched and do not use up the fault's ``count``.
"""

from __future__ import annotations

import asyncio
import itertools
import math
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = ["FAULT_KINDS", "MATCHES", "Fault", "FaultError", "FaultRegistry", "body_matches"]

FAULT_KINDS = ("reset", "hang", "error", "throttle", "slow", "omit_usage", "bad_answer")
_PARAMS = {
    "kind",
    "count",
    "duration_s",
    "status",
    "retry_after_s",
    "retry_after_ms",
    "delay_ms",
    "deployment",
    "after_chunks",
    "op",
    "body",
    "pad_bytes",
    "match",
}
MATCHES = ("content_parts", "token_inputs")
_ANSWER_KINDS = ("omit_usage",)
_MID_STREAM_KINDS = ("reset", "hang")


class FaultError(ValueError):
    """The fault spec is invalid."""


@dataclass
class Fault:
    """One injected fault; ``remaining`` counts down, ``expires_at`` is monotonic time."""

    id: str
    kind: str
    deployment: str | None
    remaining: int | None
    expires_at: float | None
    status: int
    retry_after_s: float
    retry_after_ms: float
    delay_ms: float
    after_chunks: int | None = None  # reset/hang only: cut a stream after this many SSE data events
    op: str | None = None  # only requests of this operation (e.g. "models": GET /models alone)
    body: Any = None  # bad_answer only: the 200's body
    pad_bytes: int = 0  # bad_answer only: whitespace appended to the body
    match: str | None = None  # only requests whose body has this shape (see ``MATCHES``)
    released: asyncio.Event = field(default_factory=asyncio.Event)
    hits: int = 0

    def describe(self) -> dict[str, Any]:
        """JSON view for the control API."""
        left = None if self.expires_at is None else max(0.0, self.expires_at - time.monotonic())
        return {
            "id": self.id,
            "kind": self.kind,
            "deployment": self.deployment,
            "remaining_count": self.remaining,
            "remaining_s": left,
            "status": self.status,
            "retry_after_s": self.retry_after_s,
            "retry_after_ms": self.retry_after_ms,
            "delay_ms": self.delay_ms,
            "after_chunks": self.after_chunks,
            "op": self.op,
            "match": self.match,
            "pad_bytes": self.pad_bytes,
            "hits": self.hits,
        }


def _number(
    spec: Mapping[str, Any], key: str, default: float | None, minimum: float
) -> float | None:
    value = spec.get(key, default)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < minimum:
        raise FaultError(f"{key} must be a number >= {minimum}")
    return float(value)


class FaultRegistry:
    """The active faults of one region, in creation order."""

    def __init__(self, minute_seconds: float) -> None:
        self._default_retry_s = float(max(1, math.ceil(minute_seconds / 6)))
        self._faults: list[Fault] = []
        self._ids = itertools.count(1)

    def add(self, spec: Mapping[str, Any]) -> Fault:
        """Validate ``spec`` and activate the fault."""
        if not isinstance(spec, Mapping):
            raise FaultError("fault spec must be a JSON object")
        unknown = set(spec) - _PARAMS
        if unknown:
            raise FaultError(f"unknown fault parameters: {sorted(unknown)}")
        kind = spec.get("kind")
        if kind not in FAULT_KINDS:
            raise FaultError(f"kind must be one of {FAULT_KINDS}")
        count = _number(spec, "count", None, 1)
        duration = _number(spec, "duration_s", None, 0.001)
        status = int(_number(spec, "status", 500 if kind == "error" else 429, 400) or 0)
        if kind == "error" and not 400 <= status <= 599:
            raise FaultError("status must be 4xx or 5xx")
        retry_s = _number(spec, "retry_after_s", None, 0)
        retry_ms = _number(spec, "retry_after_ms", None, 0)
        if retry_s is None:
            retry_s = retry_ms / 1000 if retry_ms is not None else self._default_retry_s
        if retry_ms is None:
            retry_ms = retry_s * 1000
        after_chunks = spec.get("after_chunks")
        if after_chunks is not None:
            if kind not in _MID_STREAM_KINDS:
                raise FaultError("after_chunks applies only to the reset and hang kinds")
            if (
                isinstance(after_chunks, bool)
                or not isinstance(after_chunks, int)
                or after_chunks < 0
            ):
                raise FaultError("after_chunks must be an integer >= 0")
        if kind != "bad_answer" and ("body" in spec or "pad_bytes" in spec):
            raise FaultError("body and pad_bytes apply only to the bad_answer kind")
        if kind == "bad_answer" and "body" not in spec:
            raise FaultError("bad_answer needs a body (any JSON value)")
        pad = spec.get("pad_bytes", 0)
        if isinstance(pad, bool) or not isinstance(pad, int) or not 0 <= pad <= 256 * 1024 * 1024:
            raise FaultError("pad_bytes must be an integer between 0 and 268435456")
        deployment = spec.get("deployment")
        op = spec.get("op")
        if op is not None and not isinstance(op, str):
            raise FaultError("op must be an operation name such as 'models' or 'chat'")
        match = spec.get("match")
        if match is not None and match not in MATCHES:
            raise FaultError(f"match must be one of {MATCHES}")
        fault = Fault(
            id=f"f{next(self._ids)}",
            kind=kind,
            deployment=str(deployment) if deployment else None,
            remaining=int(count) if count is not None else None,
            expires_at=time.monotonic() + duration if duration is not None else None,
            status=status,
            retry_after_s=retry_s,
            retry_after_ms=retry_ms,
            delay_ms=_number(spec, "delay_ms", 1000, 0) or 0.0,
            after_chunks=after_chunks,
            op=op or None,
            body=spec.get("body"),
            pad_bytes=pad,
            match=match,
        )
        self._faults.append(fault)
        if duration is not None:
            asyncio.get_running_loop().call_later(duration, self._expire, fault)
        return fault

    def _expire(self, fault: Fault) -> None:
        fault.released.set()
        if fault in self._faults:
            self._faults.remove(fault)

    def remove(self, fault_id: str) -> bool:
        """End one fault (releasing its hung requests)."""
        for fault in self._faults:
            if fault.id == fault_id:
                self._expire(fault)
                return True
        return False

    def clear(self) -> None:
        """End every fault."""
        for fault in list(self._faults):
            self._expire(fault)

    def describe(self) -> list[dict[str, Any]]:
        """JSON view of the active faults."""
        return [f.describe() for f in self._faults]

    def take(
        self, deployment: str | None, op: str | None = None, body: Any = None
    ) -> tuple[float, Fault | None]:
        """Consume the faults matching this request: total slow delay (ms), and the blocking fault.

        Mid-stream faults (``after_chunks`` set) are left alone: see ``take_mid_stream``.
        """
        if not self._faults:
            return 0.0, None
        now = time.monotonic()
        delay = 0.0
        blocking: Fault | None = None
        for fault in list(self._faults):
            if fault.expires_at is not None and fault.expires_at <= now:
                self._expire(fault)
                continue
            if fault.deployment is not None and fault.deployment != deployment:
                continue
            if fault.op is not None and fault.op != op:
                continue
            if fault.match is not None and not body_matches(fault.match, body):
                continue
            if fault.after_chunks is not None or fault.kind in _ANSWER_KINDS:
                continue
            if fault.kind == "slow":
                delay += fault.delay_ms
            elif blocking is None:
                blocking = fault
            else:
                continue
            self._hit(fault)
        return delay, blocking

    def take_mid_stream(self, deployment: str) -> Fault | None:
        """Consume the first active mid-stream fault matching a streaming response that is starting."""
        now = time.monotonic()
        for fault in list(self._faults):
            if fault.expires_at is not None and fault.expires_at <= now:
                self._expire(fault)
                continue
            if fault.after_chunks is None or (
                fault.deployment is not None and fault.deployment != deployment
            ):
                continue
            self._hit(fault)
            return fault
        return None

    def take_answer_fault(self, kind: str, deployment: str) -> Fault | None:
        """Consume the first active answer-shaping fault of ``kind`` (``omit_usage``) matching a
        chat answer about to be sent."""
        now = time.monotonic()
        for fault in list(self._faults):
            if fault.expires_at is not None and fault.expires_at <= now:
                self._expire(fault)
                continue
            if fault.kind != kind or (
                fault.deployment is not None and fault.deployment != deployment
            ):
                continue
            self._hit(fault)
            return fault
        return None

    def _hit(self, fault: Fault) -> None:
        """Count one use of ``fault``; a fault limited to ``count`` uses ends with its last."""
        fault.hits += 1
        if fault.remaining is not None:
            fault.remaining -= 1
            if fault.remaining <= 0:
                self._faults.remove(fault)


def body_matches(match: str, body: Any) -> bool:
    """Does a request body have the shape a fault's ``match`` names (see ``MATCHES``)?"""
    if not isinstance(body, Mapping):
        return False
    if match == "content_parts":
        messages = body.get("messages")
        return isinstance(messages, list) and any(
            isinstance(m, Mapping) and isinstance(m.get("content"), list) for m in messages
        )
    if match == "token_inputs":
        value = body.get("input")
        if not isinstance(value, list) or not value:
            return False
        first = value[0]
        return (isinstance(first, int) and not isinstance(first, bool)) or isinstance(first, list)
    return False
