"""Spans and metrics of gateway calls, from the observer seam, checked with the SDK's in-memory
exporters against the simulator (real HTTP, real openai SDK underneath)."""

from __future__ import annotations

import uuid

from opentelemetry.trace import SpanKind, StatusCode

from shared.aoai import CallContext, ChatRequest, EmbeddingsRequest, StreamInterrupted
from shared.telemetry import ATTR, TelemetryObserver

from .conftest import point_count, point_sum

PREFER_EAST = {"eastus2": 0, "swedencentral": 1}


def _ctx(caller: str) -> CallContext:
    return CallContext(correlation_id=uuid.uuid4().hex, caller=caller)


def _chat(stream: bool = False, **extra) -> ChatRequest:
    return ChatRequest(
        model="gpt-4o",
        messages=[{"role": "user", "content": "Say hello to the gateway."}],
        max_tokens=20,
        stream=stream,
        **extra,
    )


def _gateway(otel, sim, gateway_settings_factory, gateway_factory, *, capture=False):
    settings = gateway_settings_factory(sim, priorities=PREFER_EAST)
    holder = {}
    observer = TelemetryObserver(
        tracer_provider=otel.tracer_provider,
        meter_provider=otel.meter_provider,
        servers={"eastus2": "eastus2.example", "swedencentral": "sweden.example"},
        capture_content=capture,
        health=lambda: holder["gw"].health_report(),
    )
    gateway = gateway_factory(settings, observers=[observer])
    holder["gw"] = gateway
    return gateway


async def test_call_span_has_a_child_per_attempt_with_genai_attributes(
    otel, sim_factory, gateway_settings_factory, gateway_factory
):
    sim = sim_factory()
    gateway = _gateway(otel, sim, gateway_settings_factory, gateway_factory)
    sim.region("eastus2").fault("throttle", retry_after_s=30, count=1)
    caller = f"key:{uuid.uuid4().hex[:12]}"

    result = await gateway.chat(_chat(), _ctx(caller))

    assert result.region == "swedencentral" and len(result.attempts) == 2
    (call,) = otel.named("chat gpt-4o")
    a = call.attributes
    assert call.kind is SpanKind.CLIENT and call.status.status_code is not StatusCode.ERROR
    assert a[ATTR.OPERATION] == "chat" and a[ATTR.REQUEST_MODEL] == "gpt-4o"
    assert a[ATTR.RESPONSE_MODEL] == result.response["model"]
    assert a[ATTR.INPUT_TOKENS] == result.usage.prompt_tokens > 0
    assert a[ATTR.OUTPUT_TOKENS] == result.usage.completion_tokens > 0
    assert a[ATTR.SERVER_ADDRESS] == "sweden.example" and a[ATTR.REGION] == "swedencentral"
    assert a[ATTR.DEPLOYMENT] == result.deployment and a[ATTR.CALLER] == caller
    assert a[ATTR.ATTEMPTS] == 2 and ATTR.ERROR_TYPE not in a
    children = sorted(
        (
            s
            for s in otel.spans()
            if s.parent is not None and s.parent.span_id == call.context.span_id
        ),
        key=lambda s: s.attributes[ATTR.ATTEMPT],
    )
    assert [c.attributes[ATTR.ATTEMPT] for c in children] == [1, 2]
    first, second = children
    assert first.context.trace_id == call.context.trace_id
    assert (
        first.attributes[ATTR.REGION] == "eastus2"
        and first.attributes[ATTR.SERVER_ADDRESS] == "eastus2.example"
    )
    assert first.attributes[ATTR.FAILURE_KIND] == "throttled"
    assert first.attributes[ATTR.HTTP_STATUS] == 429 and first.attributes[ATTR.ERROR_TYPE] == "429"
    assert first.attributes[ATTR.COOLDOWN_SOURCE] == "retry-after-ms"  # the header it came from
    assert first.status.status_code is StatusCode.ERROR
    assert (
        second.attributes[ATTR.REGION] == "swedencentral"
        and ATTR.FAILURE_KIND not in second.attributes
    )
    assert call.start_time <= first.start_time and second.end_time <= call.end_time
    assert not any(e.name == "gen_ai.choice" for e in call.events)  # no content unless asked

    m = otel.metrics()
    tokens = m["gen_ai.client.token.usage"]
    assert (
        point_sum(tokens, **{ATTR.CALLER: caller, ATTR.TOKEN_TYPE: "input"})
        == result.usage.prompt_tokens
    )
    assert (
        point_sum(tokens, **{ATTR.CALLER: caller, ATTR.TOKEN_TYPE: "output"})
        == result.usage.completion_tokens
    )
    assert point_count(m["gen_ai.client.operation.duration"], **{ATTR.CALLER: caller}) == 1
    throttled = m["gateway.upstream.throttled"]
    assert (
        point_sum(throttled, **{ATTR.REGION: "eastus2", ATTR.COOLDOWN_SOURCE: "retry-after-ms"})
        >= 1
    )
    assert point_sum(m["gateway.failovers"], **{ATTR.REQUEST_MODEL: "gpt-4o"}) >= 1
    cooling = point_sum(m["gateway.deployments"], **{ATTR.STATE: "cooling"})
    assert cooling >= 1  # east's deployment is cooling after the 429 (as this instance sees it)


async def test_failed_call_records_error_type_on_span_and_duration(
    otel, sim_factory, gateway_settings_factory, gateway_factory
):
    sim = sim_factory()
    gateway = _gateway(otel, sim, gateway_settings_factory, gateway_factory)
    for region in ("eastus2", "swedencentral"):
        sim.region(region).fault("throttle", retry_after_s=30, count=5)
    caller = f"key:{uuid.uuid4().hex[:12]}"
    try:
        await gateway.chat(_chat(), _ctx(caller))
    except Exception as exc:  # noqa: BLE001
        code = exc.code
    else:
        raise AssertionError("expected all_throttled")
    (call,) = otel.named("chat gpt-4o")
    assert call.attributes[ATTR.ERROR_TYPE] == code == "all_throttled"
    assert call.status.status_code is StatusCode.ERROR
    durations = otel.metrics()["gen_ai.client.operation.duration"]
    assert point_count(durations, **{ATTR.CALLER: caller, ATTR.ERROR_TYPE: "all_throttled"}) == 1


async def _drain(stream, stop_after=None):
    got = 0
    try:
        async for _ in stream:
            got += 1
            if stop_after is not None and got >= stop_after:
                break
    except StreamInterrupted:
        pass
    finally:
        await stream.aclose()
    return got


async def test_stream_span_covers_the_whole_stream_and_says_how_it_ended(
    otel, sim_factory, gateway_settings_factory, gateway_factory
):
    sim = sim_factory(per_token_ms=20)
    gateway = _gateway(otel, sim, gateway_settings_factory, gateway_factory)
    caller = f"key:{uuid.uuid4().hex[:12]}"

    completed = await gateway.open_chat_stream(_chat(stream=True), _ctx(caller))
    await _drain(completed)
    gone = await gateway.open_chat_stream(_chat(stream=True), _ctx(caller))
    await _drain(gone, stop_after=2)  # the client goes away after two chunks
    sim.region("eastus2").fault("reset", after_chunks=3)
    broken = await gateway.open_chat_stream(_chat(stream=True), _ctx(caller))
    await _drain(broken)

    spans = {s.attributes[ATTR.STREAM_END]: s for s in otel.named("chat gpt-4o")}
    assert set(spans) == {"completed", "client_gone", "interrupted_upstream"}
    done = spans["completed"]
    assert done.attributes[ATTR.STREAM] is True
    ttft_ns = done.attributes[ATTR.TTFT_MS] * 1e6
    # The span runs from the call's start to the last event, well past the first token.
    assert done.end_time - done.start_time > ttft_ns
    assert done.attributes[ATTR.INPUT_TOKENS] == completed.result.usage.prompt_tokens
    assert done.attributes[ATTR.OUTPUT_TOKENS] == completed.result.usage.completion_tokens > 0
    assert spans["interrupted_upstream"].attributes[ATTR.ERROR_TYPE] == "stream_interrupted"
    assert ATTR.ERROR_TYPE not in spans["client_gone"].attributes

    m = otel.metrics()
    assert point_count(m["gateway.stream.time_to_first_token"], **{ATTR.CALLER: caller}) == 3
    for end in ("completed", "client_gone", "interrupted_upstream"):
        assert point_sum(m["gateway.streams"], **{ATTR.CALLER: caller, ATTR.STREAM_END: end}) == 1


async def test_content_is_recorded_only_when_capture_is_on(
    otel, sim_factory, gateway_settings_factory, gateway_factory
):
    sim = sim_factory()
    gateway = _gateway(otel, sim, gateway_settings_factory, gateway_factory, capture=True)
    result = await gateway.chat(_chat(), _ctx("key:capture"))
    (call,) = otel.named("chat gpt-4o")
    events = [e for e in call.events if e.name == "gen_ai.choice"]
    text = result.response["choices"][0]["message"]["content"]
    assert events and text in events[0].attributes["message"]
    emb = await gateway.embeddings(
        EmbeddingsRequest(model="text-embedding-3-small", input=["a", "b"]), _ctx("key:capture")
    )
    (span,) = otel.named("embeddings text-embedding-3-small")
    assert span.attributes[ATTR.OPERATION] == "embeddings"
    assert span.attributes[ATTR.INPUT_TOKENS] == emb.usage.prompt_tokens
