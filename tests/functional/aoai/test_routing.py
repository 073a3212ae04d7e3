"""Pacing, 429 headers, outages and AllThrottled against simulated regions (real openai SDK).

Cooldowns, circuits and deadlines run on a ``ManualClock`` the test moves: what a test checks
about time holds however slow the machine is.
"""

from __future__ import annotations

import asyncio
import time

import pytest

from shared.aoai import AllThrottled, FailureKind, ManualClock

from ._helpers import TWO_SMALL_REGIONS, chat, chat_requests, ctx

SMALL = TWO_SMALL_REGIONS
PREFER_EAST = {"eastus2": 0, "swedencentral": 1}


async def test_burst_above_one_quota_spreads_without_a_single_429(
    sim_factory, gateway_settings_factory, gateway_factory
):
    sim = sim_factory(SMALL, minute_seconds=5)
    gateway = gateway_factory(gateway_settings_factory(sim))
    # Each request is charged 1 + 100 tokens: 19 fit one deployment's minute, 30 need both.
    results = await asyncio.gather(
        *(gateway.chat(chat("hi", max_tokens=100), ctx()) for _ in range(30))
    )
    east, sweden = sim.region("eastus2").stats(), sim.region("swedencentral").stats()
    assert east["throttled"] == 0 and sweden["throttled"] == 0
    assert east["failures"]["rate_limit"] == 0 and sweden["failures"]["rate_limit"] == 0
    assert east["served"] + sweden["served"] == 30
    assert east["served"] > 0 and sweden["served"] > 0
    assert all(len(r.attempts) == 1 for r in results)


async def test_retry_after_ms_is_honoured_and_the_next_region_is_tried_in_the_same_call(
    sim_factory, gateway_settings_factory, gateway_factory
):
    sim = sim_factory()
    clock = ManualClock(time.time())
    gateway = gateway_factory(gateway_settings_factory(sim, priorities=PREFER_EAST), clock=clock)
    east = sim.region("eastus2")
    east.fault("throttle", count=1, retry_after_ms=1500, deployment="gpt-4o-prod")
    result = await gateway.chat(chat(), ctx())
    assert [(a.region, a.outcome) for a in result.attempts] == [
        ("eastus2", FailureKind.THROTTLED),
        ("swedencentral", None),
    ]
    assert result.region == "swedencentral"
    assert [a.cooldown_source for a in result.attempts] == ["retry-after-ms", None]
    seen = chat_requests(east.stats(), "gpt-4o-prod")
    for _ in range(14):  # 1.4 s of the 1.5 s cooldown
        clock.advance(0.1)
        assert (await gateway.chat(chat(), ctx())).region == "swedencentral"
    assert chat_requests(east.stats(), "gpt-4o-prod") == seen  # nothing reached it while cooling
    clock.advance(0.15)
    assert (
        await gateway.chat(chat(), ctx())
    ).region == "eastus2"  # fail-back once the 1.5 s are over


async def test_outage_reset_then_hang_no_caller_errors_and_fail_back(
    sim_factory, gateway_settings_factory, gateway_factory
):
    sim = sim_factory()
    settings = gateway_settings_factory(
        sim, priorities=PREFER_EAST, read_timeout_s=0.5, circuit_cooloff_s=1.0
    )
    clock = ManualClock(time.time())
    gateway = gateway_factory(settings, clock=clock)
    east = sim.region("eastus2")
    reset_id = east.fault("reset", count=1000)
    for _ in range(5):
        assert (await gateway.chat(chat(), ctx())).region == "swedencentral"
    resets = east.stats()["failures"]["reset"]
    assert resets == settings.circuit_failure_threshold  # then the circuit opened
    east.clear_fault(reset_id)
    east.fault("hang", count=1000)
    for _ in range(26):  # 2.6 s on the gateway's clock
        clock.advance(0.1)
        assert (await gateway.chat(chat(), ctx())).region == "swedencentral"
    hangs = east.stats()["failures"]["hang"]
    # One probe per 1 s cool-off (each probe hangs 0.5 s before the circuit reopens): the
    # circuit opened at 0, is probed at 1.0 (reopens until 2.0) and at 2.0 (until 3.0).
    assert hangs == 2, hangs
    east.reset()
    clock.advance(settings.circuit_cooloff_s + 0.1)
    assert (await gateway.chat(chat(), ctx())).region == "eastus2"
    assert gateway.health_report()["regions"]["eastus2"]["circuit"]["state"] == "closed"


async def test_all_throttled_reports_the_soonest_time(
    sim_factory, gateway_settings_factory, gateway_factory
):
    sim = sim_factory()
    clock = ManualClock(time.time())
    gateway = gateway_factory(gateway_settings_factory(sim), clock=clock)
    sim.region("eastus2").fault("throttle", count=1, retry_after_ms=3000, deployment="gpt-4o-prod")
    sim.region("swedencentral").fault(
        "throttle", count=1, retry_after_ms=800, deployment="gpt4o-sweden"
    )
    with pytest.raises(AllThrottled) as caught:
        await gateway.chat(chat(), ctx())
    assert caught.value.retry_at == pytest.approx(clock.now() + 0.8)
    assert caught.value.retry_after_s == pytest.approx(0.8)
    assert caught.value.http_status == 429
    # Before the soonest time nothing is sent; AllThrottled comes straight from local state.
    requests = sim.region("swedencentral").stats()["requests"]
    with pytest.raises(AllThrottled):
        await gateway.chat(chat(), ctx())
    assert sim.region("swedencentral").stats()["requests"] == requests
    clock.advance(0.85)
    assert (await gateway.chat(chat(), ctx())).region == "swedencentral"


async def test_absurd_retry_after_parks_the_deployment_without_sleeping(
    sim_factory, gateway_settings_factory, gateway_factory
):
    sim = sim_factory()
    clock = ManualClock(time.time())
    gateway = gateway_factory(gateway_settings_factory(sim), clock=clock)
    for name, dep in (("eastus2", "gpt-4o-prod"), ("swedencentral", "gpt4o-sweden")):
        sim.region(name).fault("throttle", count=1, retry_after_s=86400, deployment=dep)
    with pytest.raises(AllThrottled) as caught:
        async with asyncio.timeout(60):  # a gateway sleeping through the day would trip this
            await gateway.chat(chat(), ctx())
    # Issue 10 finding 2: the lie is capped at absurd_retry_after_s (300 s by default).
    assert [a.outcome for a in caught.value.attempts] == [FailureKind.THROTTLED] * 2
    assert caught.value.retry_at == pytest.approx(clock.now() + 300)
    report = gateway.health_report()["regions"]
    assert report["eastus2"]["deployments"]["gpt-4o-prod"]["state"] == "exhausted"
    assert gateway.capacity("gpt-4o").deployments == 0
    assert gateway.capacity("gpt-4o").retry_at == pytest.approx(clock.now() + 300)


async def test_streams_fail_over_before_the_first_chunk(
    sim_factory, gateway_settings_factory, gateway_factory
):
    sim = sim_factory()
    gateway = gateway_factory(gateway_settings_factory(sim, priorities=PREFER_EAST))
    sim.region("eastus2").fault("error", count=1, status=503)
    stream = await gateway.open_chat_stream(
        chat(stream=True, stream_options={"include_usage": True}), ctx()
    )
    assert stream.region == "swedencentral"
    assert [a.outcome for a in stream.attempts] == [FailureKind.SERVER_ERROR, None]
    chunks = [chunk async for chunk in stream]
    await stream.aclose()
    assert chunks and stream.result.usage is not None and stream.result.ttft_ms is not None
    assert stream.result.finish_reason in ("stop", "length")


async def test_embeddings_batches_are_split_and_reassembled_in_order(
    sim_factory, gateway_settings_factory, gateway_factory
):
    from shared.aoai import EmbeddingsRequest

    sim = sim_factory()
    settings = gateway_settings_factory(
        sim,
        deployment_overrides={
            "embed-eastus2": {"max_inputs": 3},
            "embed-sweden": {"max_inputs": 4},
        },
    )
    gateway = gateway_factory(settings)
    texts = [f"text number {i}" for i in range(8)]
    result = await gateway.embeddings(
        EmbeddingsRequest(model="text-embedding-3-small", input=texts), ctx()
    )
    data = result.response["data"]
    assert [d["index"] for d in data] == list(range(8))
    assert result.extra["batches"] == 3
    assert result.usage.prompt_tokens == sum(len(t) // 4 + (len(t) % 4 > 0) for t in texts)
