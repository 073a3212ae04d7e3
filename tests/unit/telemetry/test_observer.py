"""The telemetry observer's spans and metrics, fed call outcomes directly (no gateway, no
exporter process): OpenTelemetry's in-memory span exporter and metric reader, on providers of
this test's own (not the process's global ones). Attribute names and values as documented
(GenAI conventions plus ``gateway.*``)."""

from __future__ import annotations

from typing import Any

import pytest

from shared.aoai import (
    AllThrottled,
    Attempt,
    AttemptEvent,
    CallContext,
    CallOutcome,
    CallResult,
    FailureKind,
    Usage,
)
from shared.telemetry import ATTR, TelemetryObserver

pytest.importorskip("opentelemetry.sdk")


class Otel:
    def __init__(self, *, health: Any = None, capture: bool = False) -> None:
        from opentelemetry.sdk.metrics import MeterProvider
        from opentelemetry.sdk.metrics.export import InMemoryMetricReader
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import SimpleSpanProcessor
        from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

        self.exporter = InMemorySpanExporter()
        tracer_provider = TracerProvider()
        tracer_provider.add_span_processor(SimpleSpanProcessor(self.exporter))
        self.reader = InMemoryMetricReader()
        meter_provider = MeterProvider(metric_readers=[self.reader])
        self.observer = TelemetryObserver(
            tracer_provider=tracer_provider,
            meter_provider=meter_provider,
            servers={"eastus2": "east.example.com", "swedencentral": "swe.example.com"},
            capture_content=capture,
            health=health,
        )

    def spans(self) -> dict[str, Any]:
        return {s.name: s for s in self.exporter.get_finished_spans()}

    def points(self) -> dict[str, list[Any]]:
        data = self.reader.get_metrics_data()
        out: dict[str, list[Any]] = {}
        for rm in data.resource_metrics if data else ():
            for sm in rm.scope_metrics:
                for metric in sm.metrics:
                    out.setdefault(metric.name, []).extend(metric.data.data_points)
        return out


CTX = CallContext("corr-1", caller="key:a")
THROTTLED = Attempt(
    "eastus2", "gpt-4o-prod", FailureKind.THROTTLED, 429, 40.0, cooldown_source="retry-after-ms"
)
SKIPPED = Attempt("westus", "gpt-4o-w", FailureKind.SKIPPED, None, 0.0, detail="circuit open")
OK = Attempt("swedencentral", "gpt-4o-swe", None, 200, 120.0)


def result(**changes: Any) -> CallResult:
    fields: dict[str, Any] = {
        "alias": "gpt-4o",
        "region": "swedencentral",
        "deployment": "gpt-4o-swe",
        "attempts": (THROTTLED, SKIPPED, OK),
        "latency_ms": 250.0,
        "response": {
            "id": "chatcmpl-9",
            "model": "gpt-4o-2024-11-20",
            "choices": [{"index": 0, "finish_reason": "stop", "message": {"content": "hi"}}],
        },
        "usage": Usage(11, 7, 18),
        "finish_reason": "stop",
    }
    fields.update(changes)
    return CallResult(**fields)


def finished(otel: Otel, **fields: Any) -> None:
    for attempt in fields.get("attempts", ()):
        if attempt.outcome is not FailureKind.SKIPPED:
            otel.observer.attempt_finished(AttemptEvent("chat", CTX, "gpt-4o", attempt))
    otel.observer.call_finished(CallOutcome(ctx=CTX, alias="gpt-4o", **fields))


def test_a_failed_over_call_is_one_span_with_a_child_per_attempt_sent():
    otel = Otel()
    call = result()
    finished(otel, operation="chat", attempts=call.attempts, latency_ms=250.0, result=call)
    spans = otel.spans()
    assert set(spans) == {
        "chat gpt-4o",
        "attempt eastus2/gpt-4o-prod",
        "attempt swedencentral/gpt-4o-swe",
    }
    top = spans["chat gpt-4o"]
    assert dict(top.attributes) == {
        ATTR.OPERATION: "chat",
        ATTR.SYSTEM: "az.ai.openai",
        ATTR.PROVIDER: "azure.ai.openai",
        ATTR.REQUEST_MODEL: "gpt-4o",
        ATTR.CALLER: "key:a",
        ATTR.CORRELATION_ID: "corr-1",
        ATTR.OUTCOME: "ok",
        ATTR.ATTEMPTS: 2,  # the skipped deployment was never sent to
        ATTR.REGION: "swedencentral",
        ATTR.SERVER_ADDRESS: "swe.example.com",
        ATTR.DEPLOYMENT: "gpt-4o-swe",
        ATTR.RESPONSE_MODEL: "gpt-4o-2024-11-20",
        ATTR.RESPONSE_ID: "chatcmpl-9",
        ATTR.INPUT_TOKENS: 11,
        ATTR.OUTPUT_TOKENS: 7,
        ATTR.FINISH_REASONS: ("stop",),
        ATTR.OPENAI_API_TYPE: "chat_completions",
    }
    assert [e.name for e in top.events] == ["gateway.skipped"]
    assert top.end_time - top.start_time == 250_000_000
    throttled = spans["attempt eastus2/gpt-4o-prod"]
    assert throttled.parent.span_id == top.context.span_id
    assert throttled.attributes[ATTR.ERROR_TYPE] == "429"
    assert throttled.attributes[ATTR.FAILURE_KIND] == "throttled"
    assert throttled.attributes[ATTR.COOLDOWN_SOURCE] == "retry-after-ms"
    assert throttled.attributes[ATTR.ATTEMPT] == 1
    assert spans["attempt swedencentral/gpt-4o-swe"].attributes[ATTR.ATTEMPT] == 2
    assert ATTR.ERROR_TYPE not in spans["attempt swedencentral/gpt-4o-swe"].attributes

    points = otel.points()
    tokens = {p.attributes[ATTR.TOKEN_TYPE]: p.sum for p in points["gen_ai.client.token.usage"]}
    assert tokens == {"input": 11, "output": 7}
    (duration,) = points["gen_ai.client.operation.duration"]
    assert duration.sum == pytest.approx(0.25) and ATTR.ERROR_TYPE not in duration.attributes
    assert [p.value for p in points["gateway.failovers"]] == [1]
    (throttles,) = points["gateway.upstream.throttled"]
    assert throttles.value == 1
    assert dict(throttles.attributes) == {
        ATTR.REGION: "eastus2",
        ATTR.DEPLOYMENT: "gpt-4o-prod",
        ATTR.COOLDOWN_SOURCE: "retry-after-ms",
    }


def test_a_failed_call_carries_its_error_code():
    otel = Otel()
    error = AllThrottled("gpt-4o", retry_at=10.0, now=0.0)
    finished(otel, operation="chat", attempts=(THROTTLED,), latency_ms=40.0, error=error)
    top = otel.spans()["chat gpt-4o"]
    assert top.attributes[ATTR.ERROR_TYPE] == "all_throttled"
    assert top.attributes[ATTR.OUTCOME] == "all_throttled"
    assert top.status.status_code.name == "ERROR"
    (duration,) = otel.points()["gen_ai.client.operation.duration"]
    assert duration.attributes[ATTR.ERROR_TYPE] == "all_throttled"
    assert "gen_ai.client.token.usage" not in otel.points()


@pytest.mark.parametrize(
    ("outcome", "end"),
    [
        ({"result": result(attempts=(OK,))}, "completed"),
        ({}, "client_gone"),
        ({"error": AllThrottled("gpt-4o", retry_at=1.0, now=0.0)}, "failed"),
    ],
)
def test_a_stream_reports_its_first_token_and_how_it_ended(outcome, end):
    otel = Otel()
    finished(
        otel,
        operation="chat_stream",
        attempts=(OK,),
        latency_ms=900.0,
        ttft_ms=150.0,
        region="swedencentral",
        deployment="gpt-4o-swe",
        **outcome,
    )
    top = otel.spans()["chat gpt-4o"]
    assert top.attributes[ATTR.STREAM] is True and top.attributes[ATTR.TTFT_MS] == 150.0
    assert top.attributes[ATTR.STREAM_END] == end
    points = otel.points()
    (ttft,) = points["gateway.stream.time_to_first_token"]
    assert ttft.sum == pytest.approx(0.15)
    assert [p.attributes[ATTR.STREAM_END] for p in points["gateway.streams"]] == [end]


def test_completion_text_is_recorded_only_when_capture_is_on():
    for capture, events in ((False, []), (True, ["gen_ai.choice"])):
        otel = Otel(capture=capture)
        finished(otel, operation="chat", attempts=(OK,), latency_ms=1.0, result=result())
        assert [e.name for e in otel.spans()["chat gpt-4o"].events] == events


def test_the_health_gauges_follow_the_gateway_report():
    report = {
        "regions": {
            "eastus2": {
                "circuit": {"state": "open"},
                "deployments": {"a": {"state": "cooling"}, "b": {"state": "ok"}},
            },
            "swedencentral": {"circuit": {"state": "closed"}, "deployments": {}},
        }
    }
    otel = Otel(health=lambda: report)
    points = otel.points()
    circuits = {p.attributes[ATTR.REGION]: p.value for p in points["gateway.circuit.open"]}
    assert circuits == {"eastus2": 1, "swedencentral": 0}
    states = {p.attributes[ATTR.STATE]: p.value for p in points["gateway.deployments"]}
    assert states["cooling"] == 1
    report["regions"]["eastus2"]["circuit"]["state"] = "closed"
    changes = otel.points()["gateway.circuit.state_changes"]
    assert [(p.attributes[ATTR.REGION], p.attributes[ATTR.STATE], p.value) for p in changes] == [
        ("eastus2", "closed", 1)
    ]
