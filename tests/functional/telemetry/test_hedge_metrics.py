"""The hedge counter: a hedged call counts one hedge (by the region it went to and how it
ended) and no failover; the cancelled attempt's span is not an error. Real simulator and SDK;
the hedge threshold is pinned at 1 s."""

from __future__ import annotations

import uuid

from opentelemetry.trace import StatusCode

from shared.aoai import CallContext, ChatRequest, FailureKind
from shared.telemetry import ATTR, TelemetryObserver

from .conftest import point_sum


async def test_a_hedged_call_counts_one_hedge_and_no_failover(
    otel, sim_factory, gateway_settings_factory, gateway_factory
):
    sim = sim_factory()
    settings = gateway_settings_factory(
        sim,
        priorities={"eastus2": 0, "swedencentral": 1},
        read_timeout_s=30.0,
        hedge_floor_s=1.0,
        hedge_ceiling_s=1.0,
    )
    observer = TelemetryObserver(
        tracer_provider=otel.tracer_provider, meter_provider=otel.meter_provider
    )
    gateway = gateway_factory(settings, observers=[observer])
    sim.region("eastus2").fault("hang", count=1, deployment="gpt-4o-prod")
    result = await gateway.chat(
        ChatRequest(model="gpt-4o", messages=[{"role": "user", "content": "hi"}], max_tokens=5),
        CallContext(correlation_id=uuid.uuid4().hex, caller="tests"),
    )
    assert {(a.region, a.outcome) for a in result.attempts} == {
        ("eastus2", FailureKind.HEDGE_LOST),
        ("swedencentral", None),
    }
    (lost,) = [
        span for span in otel.spans() if span.attributes.get(ATTR.FAILURE_KIND) == "hedge_lost"
    ]
    assert lost.attributes[ATTR.REGION] == "eastus2" and ATTR.ERROR_TYPE not in lost.attributes
    assert lost.status.status_code is not StatusCode.ERROR  # cancelled, not failed
    m = otel.metrics()
    hedges = m["gateway.hedges"]
    assert point_sum(hedges, **{ATTR.REGION: "swedencentral", ATTR.OUTCOME: "ok"}) == 1
    assert point_sum(m.get("gateway.failovers", []), **{ATTR.REQUEST_MODEL: "gpt-4o"}) == 0
