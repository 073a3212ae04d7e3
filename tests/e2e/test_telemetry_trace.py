"""One trace from the job's submit, through Service Bus (``traceparent`` in the application
properties), to the worker, the gateway call with its attempts, and the reply: the real broker,
Azurite and simulator, the SDK's in-memory span exporter. And, with the host's invocation
context current around the worker (as in Azure), the step under that invocation, linked back."""

from __future__ import annotations

from typing import Any

from shared.aoai import Gateway
from shared.telemetry import ATTR, TelemetryObserver, invocation_context
from tests.functional.telemetry.conftest import otel, point_sum  # noqa: F401 - fixture

from .conftest import REGIONS


async def test_trace_runs_from_submit_through_service_bus_to_worker_call_and_reply(
    otel,  # noqa: F811
    sb_broker,
    e2e_sim,
    harness_factory,
    gateway_settings_factory,
):
    settings = gateway_settings_factory(e2e_sim, regions=list(REGIONS))
    observer = TelemetryObserver(
        tracer_provider=otel.tracer_provider, meter_provider=otel.meter_provider
    )
    gateway = Gateway(settings, observers=[observer])
    harness = await harness_factory(sb_broker, gateway).start(timer=False)
    try:
        job = harness.job("trace me")
        caller = "principal:trace-test"
        job = job.model_copy(update={"caller": caller})
        [job_id] = await harness.submit(job)
        await harness.wait_terminal([job_id])
    finally:
        await gateway.aclose()

    (submit,) = [s for s in otel.named("job submit") if s.attributes[ATTR.JOB_ID] == job_id]
    trace_id = submit.context.trace_id
    in_trace = [s for s in otel.spans() if s.context.trace_id == trace_id]
    by_id = {s.context.span_id: s for s in in_trace}

    def parent_name(span) -> str | None:
        parent = by_id.get(span.parent.span_id) if span.parent else None
        return parent.name if parent else None

    send_backlog = next(s for s in in_trace if s.name == f"send {harness.env['BACKLOG_QUEUE']}")
    assert parent_name(send_backlog) == "job submit"
    (process,) = [s for s in in_trace if s.name == "job process"]
    # The worker's span continues the context that travelled in the message's properties.
    assert process.parent.span_id == send_backlog.context.span_id
    assert process.attributes[ATTR.JOB_ID] == job_id
    assert process.attributes[ATTR.JOB_OUTCOME] == "succeeded"
    (call,) = [s for s in in_trace if s.name == "chat gpt-4o"]
    assert parent_name(call) == "job process"
    assert call.attributes[ATTR.CALLER] == caller
    assert call.attributes[ATTR.CORRELATION_ID] == job_id
    attempts = [s for s in in_trace if s.parent and s.parent.span_id == call.context.span_id]
    assert attempts and all(a.name.startswith("attempt ") for a in attempts)
    reply_send = next(s for s in in_trace if s.name == f"send {harness.reply_queue}")
    assert parent_name(reply_send) == "job process"

    # The reply itself carries the trace on to whoever reads it.
    (reply,) = [m for m in sb_broker.messages(harness.reply_queue) if m.correlation_id == job_id]
    traceparent = reply.application_properties["traceparent"]
    assert traceparent.split("-")[1] == f"{trace_id:032x}"
    assert reply.application_properties["Diagnostic-Id"] == traceparent

    jobs = otel.metrics()["gateway.jobs"]
    assert point_sum(jobs, **{"gateway.job.stage": "process", ATTR.JOB_OUTCOME: "succeeded"}) >= 1


async def test_worker_step_under_the_invocation_context_links_back_to_the_submit(
    otel,  # noqa: F811
    sb_broker,
    e2e_sim,
    harness_factory,
    gateway_settings_factory,
):
    """In Azure the host invokes the worker with its own trace context (``context.trace_context``);
    made current around the handler, the job's step is that invocation's child, the model call
    and the reply sit under it, and a span link leads back to the submit's send."""
    settings = gateway_settings_factory(e2e_sim, regions=list(REGIONS))
    observer = TelemetryObserver(
        tracer_provider=otel.tracer_provider, meter_provider=otel.meter_provider
    )
    gateway = Gateway(settings, observers=[observer])
    invocation_trace, invocation_span = "5bf92f3577b34da6a3ce929d0e0e4736", "10f067aa0ba902b7"

    def with_invocation(name: str, handler: Any) -> Any:
        async def invoked(msg: Any) -> None:
            carrier = {"traceparent": f"00-{invocation_trace}-{invocation_span}-01"}
            with invocation_context(carrier if name == "backlog_worker" else None):
                await handler(msg)

        return invoked

    harness = await harness_factory(sb_broker, gateway).start(timer=False, wrap=with_invocation)
    try:
        [job_id] = await harness.submit(harness.job("trace me under the host"))
        await harness.wait_terminal([job_id])
    finally:
        await gateway.aclose()

    (submit,) = [s for s in otel.named("job submit") if s.attributes[ATTR.JOB_ID] == job_id]
    send_backlog = next(
        s
        for s in otel.spans()
        if s.name == f"send {harness.env['BACKLOG_QUEUE']}"
        and s.context.trace_id == submit.context.trace_id
    )
    (process,) = [s for s in otel.named("job process") if s.attributes[ATTR.JOB_ID] == job_id]
    assert process.context.trace_id == int(invocation_trace, 16)
    assert process.parent.span_id == int(invocation_span, 16)
    assert [link.context.span_id for link in process.links] == [send_backlog.context.span_id]
    in_trace = {
        s.context.span_id: s
        for s in otel.spans()
        if s.context.trace_id == int(invocation_trace, 16)
    }
    (call,) = [s for s in in_trace.values() if s.name == "chat gpt-4o"]
    assert in_trace[call.parent.span_id].name == "job process"
    reply_send = next(s for s in in_trace.values() if s.name == f"send {harness.reply_queue}")
    assert reply_send.parent.span_id == process.context.span_id
