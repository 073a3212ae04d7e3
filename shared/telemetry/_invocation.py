"""The Functions invocation's trace context, made current while the app handles the invocation,
so the spans the app writes (the call and its attempts, a job's submit and sends) are children
of the host's invocation and land in the same operation in Application Insights.

Where the context comes from, in order:

* a Functions ``Context`` (``context.trace_context.trace_parent`` / ``trace_state``): what the
  host sends with every invocation, for any trigger;
* an HTTP request's ``traceparent`` / ``tracestate`` headers (a Starlette/FastAPI ``Request``,
  or any mapping of headers): with HTTP streaming the host proxies the request to the worker's
  HTTP server and the request carries the trace context the host continues.

Nothing happens when a span is already current (the worker attached the invocation's context
itself, as it does with ``PYTHON_ENABLE_OPENTELEMETRY=true``, or an outer span of ours is open),
or when the source carries no valid ``traceparent``. This uses the OpenTelemetry API only
(already loaded by the HTTP extension): without an SDK it costs a header lookup.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from typing import Any

__all__ = ["invocation_context", "trace_carrier"]

_HEADERS = ("traceparent", "tracestate")


def trace_carrier(source: Any) -> dict[str, str]:
    """``traceparent`` (and ``tracestate``) from a Functions context, a request, or a mapping of
    headers; empty when there is none."""
    if source is None:
        return {}
    trace_context = getattr(source, "trace_context", None)
    if trace_context is not None:
        parent = getattr(trace_context, "trace_parent", None) or getattr(
            trace_context, "Traceparent", None
        )
        state = getattr(trace_context, "trace_state", None) or getattr(
            trace_context, "Tracestate", None
        )
        carrier = {"traceparent": str(parent)} if parent else {}
        if parent and state:
            carrier["tracestate"] = str(state)
        return carrier
    headers = getattr(source, "headers", source)
    if not isinstance(headers, Mapping) and not hasattr(headers, "get"):
        return {}
    out: dict[str, str] = {}
    for key in _HEADERS:
        value = headers.get(key)
        if value:
            out[key] = str(value)
    return out if "traceparent" in out else {}


@contextlib.contextmanager
def invocation_context(source: Any) -> Iterator[None]:
    """While the body runs, the current trace context is the invocation's (see the module doc)."""
    from opentelemetry import context, propagate, trace

    if trace.get_current_span().get_span_context().is_valid:
        yield
        return
    carrier = trace_carrier(source)
    extracted = propagate.extract(carrier) if carrier else None
    if extracted is None or not trace.get_current_span(extracted).get_span_context().is_valid:
        yield
        return
    token = context.attach(extracted)
    try:
        yield
    finally:
        context.detach(token)
