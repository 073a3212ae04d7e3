"""The gateway's OpenTelemetry observer: one span per call, a child span per upstream attempt,
and the GenAI client metrics, all from the access layer's observer seam (no SDK patching).

Spans are written when the call has finished, with the call's real start and end times: the
seam reports each attempt when it ends (its end time is taken then, its start is the end minus
its duration) and the call once it is over (for a stream: when the last event has been passed
on, the upstream broke off, or the client went away). The span's parent is the trace context
that was current when the call started (for a stream: when it was opened, not where its last
chunk was read), so a backlog job's call span sits under the job's span, whatever task ends it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from ._instruments import Instruments
from ._names import ATTR, GEN_AI_PROVIDER, TRACER_NAME

if TYPE_CHECKING:
    from shared.aoai import Attempt, AttemptEvent, CallOutcome, Usage

__all__ = ["TelemetryObserver"]

# The GenAI conventions' operation names: a Responses API create is ``chat`` (the OpenAI
# conventions tell it apart by ``openai.api.type = responses``).
_OPERATION = {
    "chat": "chat",
    "chat_stream": "chat",
    "embeddings": "embeddings",
    "responses": "chat",
}
_API_TYPE = {"chat": "chat_completions", "chat_stream": "chat_completions"}
_STREAMS = frozenset({"chat_stream", "responses"})  # a ttft is reported for streams only
_MAX_PENDING = 10_000


def stream_end(outcome: CallOutcome) -> str:
    """How a stream ended: completed, interrupted upstream, or the client went away."""
    if outcome.result is not None and not outcome.cancelled:
        return "completed"
    if outcome.error is None:
        return "client_gone"
    return (
        "interrupted_upstream"
        if getattr(outcome.error, "code", "") == "stream_interrupted"
        else "failed"
    )


def _api_type(operation: str) -> str | None:
    if operation.startswith("responses"):
        return "responses"
    return _API_TYPE.get(operation)


def _usage_detail(response: Mapping[str, Any], places: tuple[str, str], name: str) -> int | None:
    """A usage detail as Azure reports it (chat's or the Responses API's place), if present."""
    usage = response.get("usage")
    if not isinstance(usage, Mapping):
        return None
    for place in places:
        details = usage.get(place)
        if isinstance(details, Mapping):
            value = details.get(name)
            if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
                return value
    return None


def _finish(result: Any, response: Mapping[str, Any]) -> str | None:
    """The call's finish reason; for a Responses object, its incomplete reason or status."""
    if result.finish_reason:
        return str(result.finish_reason)
    if response.get("object") != "response":
        return None
    details = response.get("incomplete_details")
    if isinstance(details, Mapping) and isinstance(details.get("reason"), str):
        return str(details["reason"])
    status = response.get("status")
    return status if isinstance(status, str) else None


def _skipped(attempt: Attempt) -> bool:
    return attempt.outcome is not None and attempt.outcome.value == "skipped"


class _Pending:
    __slots__ = ("attempts", "parent")

    def __init__(self, parent: Any) -> None:
        self.parent = parent
        self.attempts: list[tuple[Attempt, int]] = []  # (Attempt, end time ns)


class TelemetryObserver:
    """``CallObserver`` writing spans and metrics. ``servers`` maps region name -> endpoint host
    (``server.address``); ``health`` returns ``Gateway.health_report()`` for the state gauges."""

    def __init__(
        self,
        *,
        tracer_provider: Any,
        meter_provider: Any,
        servers: Mapping[str, str] | None = None,
        capture_content: bool = False,
        health: Callable[[], Mapping[str, Any]] | None = None,
    ) -> None:
        from opentelemetry import context as otel_context
        from opentelemetry import trace

        self._context = otel_context
        self._trace = trace
        self._tracer = tracer_provider.get_tracer(TRACER_NAME)
        self.instruments = Instruments(meter_provider, health=health)
        self._servers = dict(servers or {})
        self._capture = capture_content
        self._pending: dict[int, _Pending] = {}

    # ------------------------------------------------------------------ the seam

    def attempt_finished(self, event: AttemptEvent) -> None:
        attempt = event.attempt
        key = id(event.ctx)
        pending = self._pending.get(key)
        if pending is None:
            if len(self._pending) >= _MAX_PENDING:
                self._pending.clear()  # a call that never finished must not grow this forever
            pending = self._pending[key] = _Pending(self._context.get_current())
        pending.attempts.append((attempt, time.time_ns()))
        kind = attempt.outcome.value if attempt.outcome is not None else None
        if getattr(attempt, "hedge", False):
            self.instruments.hedges.add(
                1,
                {
                    ATTR.REGION: attempt.region,
                    ATTR.DEPLOYMENT: attempt.deployment,
                    ATTR.OUTCOME: kind or "ok",
                },
            )
        if kind == "throttled":
            self.instruments.throttled.add(
                1,
                {
                    ATTR.REGION: attempt.region,
                    ATTR.DEPLOYMENT: attempt.deployment,
                    ATTR.COOLDOWN_SOURCE: str(
                        getattr(attempt, "cooldown_source", None) or "unknown"
                    ),
                },
            )

    def call_finished(self, outcome: CallOutcome) -> None:
        end_ns = time.time_ns()
        pending = self._pending.pop(id(outcome.ctx), None)
        parent = pending.parent if pending is not None else self._context.get_current()
        recorded = {id(a): end for a, end in pending.attempts} if pending is not None else {}
        start_ns = end_ns - int(outcome.latency_ms * 1_000_000)
        result = outcome.result
        operation = _OPERATION.get(outcome.operation, outcome.operation)
        region = result.region if result is not None else outcome.region
        deployment = result.deployment if result is not None else outcome.deployment
        attrs: dict[str, Any] = {
            ATTR.OPERATION: operation,
            ATTR.SYSTEM: "az.ai.openai",
            ATTR.PROVIDER: GEN_AI_PROVIDER,
            ATTR.REQUEST_MODEL: outcome.alias,
            ATTR.CALLER: outcome.ctx.caller or "anonymous",
            ATTR.CORRELATION_ID: outcome.ctx.correlation_id,
            ATTR.OUTCOME: outcome.outcome,
            ATTR.ATTEMPTS: sum(1 for a in outcome.attempts if not _skipped(a)),
        }
        api_type = _api_type(outcome.operation)
        if api_type is not None:
            attrs[ATTR.OPENAI_API_TYPE] = api_type
        if operation != outcome.operation:
            attrs[ATTR.GATEWAY_OPERATION] = outcome.operation
        if region:
            attrs[ATTR.REGION] = region
            if region in self._servers:
                attrs[ATTR.SERVER_ADDRESS] = self._servers[region]
        if deployment:
            attrs[ATTR.DEPLOYMENT] = deployment
        response = (result.response or {}) if result is not None else {}
        if response.get("model"):
            attrs[ATTR.RESPONSE_MODEL] = str(response["model"])
        elif deployment and result is not None:
            attrs[ATTR.RESPONSE_MODEL] = deployment
        if response.get("id"):
            attrs[ATTR.RESPONSE_ID] = str(response["id"])
        usage = result.usage if result is not None else None
        if usage is not None:
            attrs[ATTR.INPUT_TOKENS] = usage.prompt_tokens
            attrs[ATTR.OUTPUT_TOKENS] = usage.completion_tokens
            cached = _usage_detail(
                response, ("prompt_tokens_details", "input_tokens_details"), "cached_tokens"
            )
            if cached is not None:
                attrs[ATTR.CACHE_READ_TOKENS] = cached
            reasoning = _usage_detail(
                response, ("completion_tokens_details", "output_tokens_details"), "reasoning_tokens"
            )
            if reasoning is not None:
                attrs[ATTR.REASONING_TOKENS] = reasoning
        finish = _finish(result, response) if result is not None else None
        if finish:
            attrs[ATTR.FINISH_REASONS] = (finish,)
        error_type = None
        if outcome.error is not None:
            error_type = str(getattr(outcome.error, "code", None) or type(outcome.error).__name__)
            attrs[ATTR.ERROR_TYPE] = error_type
        if outcome.operation == "chat_stream" or (
            outcome.operation in _STREAMS and outcome.ttft_ms is not None
        ):
            attrs[ATTR.STREAM] = True
            if outcome.ttft_ms is not None:
                attrs[ATTR.TTFT_MS] = round(outcome.ttft_ms, 3)
                attrs[ATTR.STREAM_END] = stream_end(outcome)

        trace = self._trace
        span = self._tracer.start_span(
            f"{operation} {outcome.alias}",
            context=parent,
            kind=trace.SpanKind.CLIENT,
            attributes=attrs,
            start_time=start_ns,
        )
        if error_type is not None:
            span.set_status(trace.Status(trace.StatusCode.ERROR, error_type))
        if self._capture and result is not None:
            self._content_events(span, response)
        child = trace.set_span_in_context(span, parent)
        number = 0
        for attempt in outcome.attempts:
            if _skipped(attempt):
                span.add_event(
                    "gateway.skipped",
                    {
                        ATTR.REGION: attempt.region,
                        ATTR.DEPLOYMENT: attempt.deployment,
                        "detail": attempt.detail[:200],
                    },
                    timestamp=end_ns,
                )
                continue
            number += 1
            self._attempt_span(child, attempt, number, recorded.get(id(attempt), end_ns))
        span.end(end_time=end_ns)
        self._metrics(outcome, operation, attrs, error_type, usage)

    # ------------------------------------------------------------------ pieces

    def _attempt_span(self, parent: Any, attempt: Attempt, number: int, end_ns: int) -> None:
        trace = self._trace
        attrs: dict[str, Any] = {
            ATTR.REGION: attempt.region,
            ATTR.DEPLOYMENT: attempt.deployment,
            ATTR.ATTEMPT: number,
        }
        if attempt.region in self._servers:
            attrs[ATTR.SERVER_ADDRESS] = self._servers[attempt.region]
        if attempt.status is not None:
            attrs[ATTR.HTTP_STATUS] = attempt.status
        # An attempt cancelled because the other of its hedge race answered first is no error.
        kind = attempt.outcome.value if attempt.outcome is not None else None
        failed = kind is not None and kind != "hedge_lost"
        if kind is not None:
            attrs[ATTR.FAILURE_KIND] = kind
        if failed:
            attrs[ATTR.ERROR_TYPE] = str(attempt.status or kind)
            if kind == "throttled":
                attrs[ATTR.COOLDOWN_SOURCE] = str(
                    getattr(attempt, "cooldown_source", None) or "unknown"
                )
        span = self._tracer.start_span(
            f"attempt {attempt.region}/{attempt.deployment}",
            context=parent,
            kind=trace.SpanKind.CLIENT,
            attributes=attrs,
            start_time=end_ns - int(attempt.elapsed_ms * 1_000_000),
        )
        if failed:
            span.set_status(trace.Status(trace.StatusCode.ERROR, kind))
        span.end(end_time=end_ns)

    def _content_events(self, span: Any, response: Mapping[str, Any]) -> None:
        """Completion text, only when content capture is on (GATEWAY_TELEMETRY_CAPTURE_CONTENT)."""
        import json

        for choice in response.get("choices") or ():
            message = choice.get("message") or {}
            span.add_event(
                "gen_ai.choice",
                {
                    "index": int(choice.get("index", 0) or 0),
                    "finish_reason": str(choice.get("finish_reason") or ""),
                    "message": json.dumps(message, ensure_ascii=False)[:32_000],
                },
            )

    def _metrics(
        self,
        outcome: CallOutcome,
        operation: str,
        attrs: Mapping[str, Any],
        error_type: str | None,
        usage: Usage | None,
    ) -> None:
        inst = self.instruments
        base = {
            ATTR.OPERATION: operation,
            ATTR.PROVIDER: GEN_AI_PROVIDER,
            ATTR.REQUEST_MODEL: outcome.alias,
            ATTR.CALLER: attrs[ATTR.CALLER],
        }
        for key in (ATTR.RESPONSE_MODEL, ATTR.SERVER_ADDRESS, ATTR.REGION, ATTR.DEPLOYMENT):
            if key in attrs:
                base[key] = attrs[key]
        duration = dict(base)
        if error_type is not None:
            duration[ATTR.ERROR_TYPE] = error_type
        inst.duration.record(outcome.latency_ms / 1000.0, duration)
        if usage is not None:
            inst.tokens.record(usage.prompt_tokens, {**base, ATTR.TOKEN_TYPE: "input"})
            inst.tokens.record(usage.completion_tokens, {**base, ATTR.TOKEN_TYPE: "output"})
        # A hedge is counted by gateway.hedges, not as a failover.
        tried = [a for a in outcome.attempts if not _skipped(a) and not getattr(a, "hedge", False)]
        if len(tried) > 1:
            inst.failovers.add(
                len(tried) - 1, {ATTR.REQUEST_MODEL: outcome.alias, ATTR.OPERATION: operation}
            )
        if outcome.operation in _STREAMS and outcome.ttft_ms is not None:
            inst.ttft.record(outcome.ttft_ms / 1000.0, base)
            inst.streams.add(1, {**base, ATTR.STREAM_END: attrs.get(ATTR.STREAM_END, "failed")})
