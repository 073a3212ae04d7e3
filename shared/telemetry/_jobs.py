"""Trace context through Service Bus, and the backlog's spans and counters.

A message sent while a span is current carries ``traceparent`` (and ``tracestate``, and the
``Diagnostic-Id`` the Service Bus SDKs use) in its application properties; the worker that
receives it starts its span as a child of that context. So one trace runs from ``POST /v1/jobs``
through the queue to the worker, the gateway call and the reply.

These use the OpenTelemetry API's global providers (set by ``configure``): without an SDK they
are no-ops, and the API itself is already loaded by the HTTP extension, so they cost nothing
when telemetry is off.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Awaitable, Iterator, Mapping, MutableMapping
from typing import Any

from opentelemetry.propagators.textmap import Getter

from ._names import ATTR, METER_NAME, TRACER_NAME

__all__ = ["job_span", "send_span", "traced_job"]

_PROPAGATED = ("traceparent", "tracestate")


class _Getter(Getter[Mapping[Any, Any]]):
    """Reads a carrier whose keys or values may be bytes (AMQP application properties)."""

    @staticmethod
    def _text(value: Any) -> str | None:
        if isinstance(value, bytes | bytearray):
            return value.decode("utf-8", "replace")
        return None if value is None else str(value)

    def get(self, carrier: Mapping[Any, Any], key: str) -> list[str] | None:
        for k, v in carrier.items():
            if (self._text(k) or "").lower() == key:
                text = self._text(v)
                return [text] if text else None
        return None

    def keys(self, carrier: Mapping[Any, Any]) -> list[str]:
        return [self._text(k) or "" for k in carrier]


_GETTER = _Getter()


@functools.lru_cache(maxsize=4)
def _job_instruments(meter_provider: Any) -> tuple[Any, Any]:
    meter = meter_provider.get_meter(METER_NAME)
    jobs = meter.create_counter(
        "gateway.jobs",
        unit="{delivery}",
        description="Backlog deliveries by stage and outcome (succeeded, failed, parked, ...).",
    )
    dead = meter.create_counter(
        "gateway.jobs.dead_lettered",
        unit="{message}",
        description="Backlog messages handled from the dead-letter queue, by outcome.",
    )
    return jobs, dead


@contextlib.contextmanager
def send_span(queue: str, message_id: str, properties: MutableMapping[str, Any]) -> Iterator[None]:
    """A PRODUCER span around one Service Bus send; its context goes into ``properties``."""
    from opentelemetry import propagate, trace

    tracer = trace.get_tracer(TRACER_NAME)
    with tracer.start_as_current_span(
        f"send {queue}",
        kind=trace.SpanKind.PRODUCER,
        attributes={
            ATTR.MESSAGING_SYSTEM: "servicebus",
            ATTR.MESSAGING_DESTINATION: queue,
            ATTR.MESSAGING_MESSAGE_ID: message_id,
        },
    ) as span:
        if span.get_span_context().is_valid:
            carrier: dict[str, str] = {}
            propagate.inject(carrier)
            for key in _PROPAGATED:
                if key in carrier:
                    properties[key] = carrier[key]
            if "traceparent" in carrier:
                properties["Diagnostic-Id"] = carrier["traceparent"]
        yield


@contextlib.contextmanager
def job_span(stage: str, job_id: str | None, properties: Mapping[Any, Any] | None) -> Iterator[Any]:
    """A span for one backlog step (``submit``, ``process``, ``dead_letter``, ``parking_poison``).

    Its parent: the invocation's trace context when one is current (the Functions host's, made
    current by ``invocation_context`` or by the worker), with the trace found in ``properties``
    (a received message's application properties: the sender's) as a link, so the step shows
    under its invocation and still leads back to the request that queued it; else the sender's
    context from ``properties`` itself, so one trace runs from the submit to the reply."""
    from opentelemetry import propagate, trace

    sent = propagate.extract(properties, getter=_GETTER) if properties else None
    sent_span = trace.get_current_span(sent).get_span_context() if sent is not None else None
    parent, links = sent, []
    if trace.get_current_span().get_span_context().is_valid and sent_span is not None:
        parent = None  # the current context: the invocation's
        if sent_span.is_valid:
            links = [trace.Link(sent_span)]
    kind = trace.SpanKind.PRODUCER if stage == "submit" else trace.SpanKind.CONSUMER
    attributes: dict[str, Any] = {ATTR.MESSAGING_SYSTEM: "servicebus"}
    if job_id:
        attributes[ATTR.JOB_ID] = job_id
    tracer = trace.get_tracer(TRACER_NAME)
    with tracer.start_as_current_span(
        f"job {stage}", context=parent, kind=kind, attributes=attributes, links=links
    ) as span:
        yield span


async def traced_job(
    stage: str,
    job_id: str | None,
    properties: Mapping[Any, Any] | None,
    work: Awaitable[str],
) -> str:
    """Await ``work`` (one backlog step returning its outcome) inside ``job_span``; count the outcome."""
    from opentelemetry import metrics

    with job_span(stage, job_id, properties) as span:
        outcome = str(await work)
        span.set_attribute(ATTR.JOB_OUTCOME, outcome)
        jobs, dead = _job_instruments(metrics.get_meter_provider())
        jobs.add(1, {"gateway.job.stage": stage, ATTR.JOB_OUTCOME: outcome})
        if stage == "dead_letter":
            dead.add(1, {ATTR.JOB_OUTCOME: outcome})
        return outcome
