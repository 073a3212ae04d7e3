"""Spans and metrics of Responses API calls with the GenAI conventions (the OpenAI conventions'
mapping: operation ``chat`` with ``openai.api.type = responses``), checked with the SDK's
in-memory exporters against the simulator, for a plain create, a continuation, and a job's
create through the backlog's call (``create_response``)."""

from __future__ import annotations

import json
import uuid

from opentelemetry.trace import SpanKind, StatusCode

from shared.aoai import CallContext, ChatRequest
from shared.responses import InMemoryAffinityStore, ResponsesRequest, create_response
from shared.telemetry import ATTR, TelemetryObserver

from .conftest import point_sum

REGION = {
    "name": "eastus2",
    "api_keys": ["local-dev-key"],
    "deployments": [{"name": "o4-mini-prod", "model": "o4-mini", "kind": "chat", "tpm": 900000}],
}


async def test_a_responses_create_is_a_chat_span_with_response_usage_and_reasoning(
    otel, sim_factory, gateway_settings_factory, gateway_factory
):
    sim = sim_factory([REGION])
    observer = TelemetryObserver(
        tracer_provider=otel.tracer_provider,
        meter_provider=otel.meter_provider,
        servers={"eastus2": "eastus2.example"},
    )
    gateway = gateway_factory(gateway_settings_factory(sim), observers=[observer])
    caller = f"key:{uuid.uuid4().hex[:12]}"
    affinity = InMemoryAffinityStore()

    first = await create_response(
        gateway,
        affinity,
        ResponsesRequest(model="o4-mini", input="tell me about herons " * 400),
        CallContext(uuid.uuid4().hex, caller=caller),
        default_max_tokens=400,
    )
    second = await create_response(
        gateway,
        affinity,
        ResponsesRequest(
            model="o4-mini", input="and egrets?", previous_response_id=first.response["id"]
        ),
        CallContext(uuid.uuid4().hex, caller=caller),
        default_max_tokens=400,
    )

    spans = otel.named("chat o4-mini")
    assert len(spans) == 2
    by_id = {s.attributes[ATTR.RESPONSE_ID]: s for s in spans}
    for result in (first, second):
        span = by_id[result.response["id"]]
        a = span.attributes
        usage = result.response["usage"]
        assert span.kind is SpanKind.CLIENT and span.status.status_code is not StatusCode.ERROR
        assert a[ATTR.OPERATION] == "chat" and a[ATTR.OPENAI_API_TYPE] == "responses"
        assert a[ATTR.GATEWAY_OPERATION] == "responses"
        assert a[ATTR.REQUEST_MODEL] == "o4-mini"
        assert a[ATTR.RESPONSE_MODEL] == result.response["model"]
        assert a[ATTR.INPUT_TOKENS] == usage["input_tokens"]
        assert a[ATTR.OUTPUT_TOKENS] == usage["output_tokens"]
        assert a[ATTR.REASONING_TOKENS] == usage["output_tokens_details"]["reasoning_tokens"] > 0
        assert a[ATTR.CACHE_READ_TOKENS] == usage["input_tokens_details"]["cached_tokens"]
        assert a[ATTR.FINISH_REASONS] == (result.response["status"],)
        assert a[ATTR.SERVER_ADDRESS] == "eastus2.example" and a[ATTR.CALLER] == caller
    assert by_id[second.response["id"]].attributes[ATTR.CACHE_READ_TOKENS] > 0

    tokens = otel.metrics()["gen_ai.client.token.usage"]
    output = point_sum(tokens, **{ATTR.OPERATION: "chat", ATTR.TOKEN_TYPE: "output"})
    assert output >= first.usage.completion_tokens + second.usage.completion_tokens


async def test_a_chat_span_names_its_api_type(
    otel, sim_factory, gateway_settings_factory, gateway_factory
):
    sim = sim_factory([REGION])
    observer = TelemetryObserver(
        tracer_provider=otel.tracer_provider, meter_provider=otel.meter_provider
    )
    gateway = gateway_factory(gateway_settings_factory(sim), observers=[observer])
    await gateway.chat(
        ChatRequest(model="o4-mini", messages=[{"role": "user", "content": "hi"}], max_tokens=20),
        CallContext(uuid.uuid4().hex, caller="key:chat"),
    )
    (span,) = otel.named("chat o4-mini")
    assert span.attributes[ATTR.OPENAI_API_TYPE] == "chat_completions"
    assert ATTR.GATEWAY_OPERATION not in span.attributes


class _Services:
    def __init__(self, settings, gateway) -> None:
        self._settings, self._gateway = settings, gateway
        self._affinity = InMemoryAffinityStore()

    def settings(self):
        return self._settings

    def gateway(self):
        return self._gateway

    def response_affinity(self):
        return self._affinity


async def test_a_streamed_create_is_a_stream_span_with_its_final_usage(
    otel, sim_factory, gateway_settings_factory, gateway_factory
):
    """Through the HTTP handler: the span is written when the final event has been relayed, with
    that event's usage, response id and finish, and the stream's TTFT."""
    from shared.api import responses_create
    from tests.functional.api._asgi import make_request

    sim = sim_factory([REGION])
    observer = TelemetryObserver(
        tracer_provider=otel.tracer_provider, meter_provider=otel.meter_provider
    )
    settings = gateway_settings_factory(sim)
    gateway = gateway_factory(settings, observers=[observer])
    request = make_request(
        "POST",
        "/api/v1/responses",
        {"model": "o4-mini", "input": "Say hello.", "stream": True},
        {"x-functions-key": "k"},
    )
    answer = await responses_create(request, _Services(settings, gateway))
    chunks = [c async for c in answer.body_iterator]
    final = [
        json.loads(line[len(b"data: ") :])
        for chunk in chunks
        for line in chunk.splitlines()
        if line.startswith(b"data: ")
    ][-1]["response"]

    (span,) = otel.named("chat o4-mini")
    a = span.attributes
    assert a[ATTR.OPENAI_API_TYPE] == "responses" and a[ATTR.STREAM] is True
    assert a[ATTR.STREAM_END] == "completed" and a[ATTR.TTFT_MS] >= 0
    assert a[ATTR.RESPONSE_ID] == final["id"]
    assert a[ATTR.OUTPUT_TOKENS] == final["usage"]["output_tokens"]
    assert a[ATTR.REASONING_TOKENS] == final["usage"]["output_tokens_details"]["reasoning_tokens"]
    assert a[ATTR.FINISH_REASONS] == ("completed",)
    ttft = otel.metrics()["gateway.stream.time_to_first_token"]
    assert any(p.attributes.get(ATTR.REQUEST_MODEL) == "o4-mini" for p in ttft)
