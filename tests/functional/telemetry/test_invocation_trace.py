"""The app's spans are children of the Functions invocation's trace context, so a request and its
model calls are one operation in Application Insights.

* Over HTTP, end to end: the dev server (standing in for the host, which proxies the request to
  the worker with the invocation's ``traceparent``) in its own process, exporting over OTLP/HTTP
  to a real receiver; streamed and plain chat calls.
* From a Functions ``Context`` (``trace_context.trace_parent`` / ``trace_state``, what the host
  sends with every invocation) and for backlog steps: in process, the SDK's in-memory exporter.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

import httpx
from opentelemetry import trace

from shared.aoai import CallContext, ChatRequest, Gateway
from shared.telemetry import ATTR, TelemetryObserver, invocation_context, job_span, trace_carrier
from testpeers.devserver import settings_env
from testpeers.gateway import settings_for_sim
from testpeers.processes import DevServerProcess

from .conftest import wait_for

_TRACE = "0af7651916cd43dd8448eb211c80319c"


def _traceparent(span_id: str, trace_id: str = _TRACE) -> str:
    return f"00-{trace_id}-{span_id}-01"


def test_http_calls_are_children_of_the_invocation_traceparent_over_otlp(sim, otlp_receiver):
    env = {**settings_env(settings_for_sim(sim)), "GATEWAY_USAGE": "off"}
    env.update(
        {
            "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{otlp_receiver.port}",
            "OTEL_BSP_SCHEDULE_DELAY": "200",
            "OTEL_METRIC_EXPORT_INTERVAL": "600000",
            "OTEL_SERVICE_NAME": "gateway-under-test",
        }
    )
    body = {"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 8}
    plain, streamed = "b7ad6b7169203331", "c7ad6b7169203332"
    with DevServerProcess(env) as dev, httpx.Client(timeout=60.0) as client:
        url = f"{dev.base_url}/chat/completions"
        headers = {"x-functions-key": "local", "tracestate": "az=1"}
        answer = client.post(
            url, json=body, headers={**headers, "traceparent": _traceparent(plain)}
        )
        assert answer.status_code == 200, answer.text
        with client.stream(
            "POST",
            url,
            json={**body, "stream": True},
            headers={**headers, "traceparent": _traceparent(streamed)},
        ) as stream:
            assert stream.status_code == 200
            assert any("[DONE]" in line for line in stream.iter_lines())
        orphan = client.post(url, json=body, headers={"x-functions-key": "local"})
        assert orphan.status_code == 200

        def calls():
            found = [s for _, s in otlp_receiver.spans() if s.name == "chat gpt-4o"]
            return found if len(found) >= 3 else None

        spans = wait_for(calls)
    assert spans, f"fewer than 3 call spans reached the receiver: {otlp_receiver.spans()}"
    by_parent = {s.parent_span_id.hex(): s for s in spans}
    for parent in (plain, streamed):
        call = by_parent[parent]  # the call's parent is the invocation's span ...
        assert call.trace_id.hex() == _TRACE  # ... in the invocation's trace
    stream_call = by_parent[streamed]
    attrs = {a.key: a.value for a in stream_call.attributes}
    assert attrs[ATTR.STREAM].bool_value is True
    # A request without a trace context starts its own trace, as before.
    (alone,) = [s for s in spans if s.trace_id.hex() != _TRACE]
    assert alone.parent_span_id == b""
    # The attempts hang under their call, in the same trace.
    attempts = [
        s
        for _, s in otlp_receiver.spans()
        if s.name.startswith("attempt ") and s.parent_span_id == by_parent[plain].span_id
    ]
    assert attempts and attempts[0].trace_id.hex() == _TRACE


@dataclass
class _TraceContext:  # the fields of azure.functions' TraceContext the host fills
    trace_parent: str
    trace_state: str


@dataclass
class _FunctionsContext:  # what the worker passes as ``context: func.Context``
    trace_context: _TraceContext
    invocation_id: str


def test_trace_carrier_reads_a_functions_context_a_request_or_headers():
    ctx = _FunctionsContext(_TraceContext(_traceparent("1" * 16), "az=1"), "inv-1")
    assert trace_carrier(ctx) == {"traceparent": _traceparent("1" * 16), "tracestate": "az=1"}
    assert trace_carrier({"traceparent": _traceparent("2" * 16)}) == {
        "traceparent": _traceparent("2" * 16)
    }
    assert trace_carrier({"tracestate": "az=1"}) == {}  # no parent, nothing to continue
    assert trace_carrier(_FunctionsContext(_TraceContext("", ""), "inv-2")) == {}
    assert trace_carrier(None) == {}


async def test_call_span_is_a_child_of_the_functions_invocation_context(
    otel, sim_factory, gateway_settings_factory
):
    sim = sim_factory()
    observer = TelemetryObserver(
        tracer_provider=otel.tracer_provider, meter_provider=otel.meter_provider
    )
    gateway = Gateway(gateway_settings_factory(sim), observers=[observer])
    invocation = "d7ad6b7169203333"
    ctx = _FunctionsContext(_TraceContext(_traceparent(invocation), ""), "inv-3")
    try:
        with invocation_context(ctx):
            await gateway.chat(
                ChatRequest(model="gpt-4o", messages=[{"role": "user", "content": "hi"}]),
                CallContext(correlation_id=uuid.uuid4().hex),
            )
        # Outside the invocation nothing is current any more.
        assert not trace.get_current_span().get_span_context().is_valid
    finally:
        await gateway.aclose()
    (call,) = otel.named("chat gpt-4o")
    assert call.context.trace_id == int(_TRACE, 16)
    assert call.parent is not None and call.parent.span_id == int(invocation, 16)


def test_invocation_context_leaves_an_open_span_alone(otel):
    tracer = otel.tracer_provider.get_tracer("test")
    with (
        tracer.start_as_current_span("outer") as outer,
        invocation_context({"traceparent": _traceparent("e" * 16)}),
    ):
        inner = tracer.start_span("inner")
        inner.end()
    assert inner.parent.span_id == outer.get_span_context().span_id


def test_job_step_under_an_invocation_links_to_the_sender_and_without_one_continues_it(otel):
    sender_span = "f7ad6b7169203334"
    sender_trace = uuid.uuid4().hex
    properties = {b"traceparent": _traceparent(sender_span, sender_trace).encode()}
    invocation = "a7ad6b7169203335"

    with (
        invocation_context({"traceparent": _traceparent(invocation)}),
        job_span("process", "job-1", properties),
    ):
        pass
    with job_span("process", "job-2", properties):
        pass

    by_job = {s.attributes[ATTR.JOB_ID]: s for s in otel.named("job process")}
    under = by_job["job-1"]  # under the host's invocation, the message's sender as a link
    assert under.context.trace_id == int(_TRACE, 16)
    assert under.parent.span_id == int(invocation, 16)
    assert [link.context.span_id for link in under.links] == [int(sender_span, 16)]
    assert under.links[0].context.trace_id == int(sender_trace, 16)
    alone = by_job["job-2"]  # no invocation context: the sender's trace continues, as before
    assert alone.context.trace_id == int(sender_trace, 16)
    assert alone.parent.span_id == int(sender_span, 16)
    assert list(alone.links) == []
