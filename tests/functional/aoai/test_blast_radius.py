"""Issue 10: no single caller, request or upstream signal degrades the gateway for everyone.
Against the real simulator with the real openai SDK."""

from __future__ import annotations

import pytest

from shared.aoai import (
    BadRequest,
    ChatRequest,
    EmbeddingsRequest,
    FailureKind,
)
from shared.aoai._exceptions import RequestTooLarge, TooManyInputs

from ._helpers import chat, ctx

PREFER_EAST = {"eastus2": 0, "swedencentral": 1}


def _circuits(gateway) -> dict[str, str]:
    return {
        name: region["circuit"]["state"]
        for name, region in gateway.health_report()["regions"].items()
    }


async def test_lone_surrogate_is_a_400_and_never_counts_against_a_region(
    sim_factory, gateway_settings_factory, gateway_factory
):
    """Finding 1: a body the SDK cannot encode (lone surrogate) reached the gateway directly
    (a queue job, a library caller) is the request's fault: 400, no circuit, nothing sent."""
    sim = sim_factory()
    gateway = gateway_factory(gateway_settings_factory(sim, priorities=PREFER_EAST))
    embed = EmbeddingsRequest(model="text-embedding-3-small", input=["fine", "cut \ud83d"])
    for _ in range(5):
        with pytest.raises(BadRequest) as caught:
            await gateway.chat(chat("cut inside an emoji \ud83d"), ctx())
        assert caught.value.http_status == 400 and "surrogate" in caught.value.message
        assert [a.outcome for a in caught.value.attempts] == [FailureKind.LOCAL]
        with pytest.raises(BadRequest):
            await gateway.embeddings(embed, ctx())
    assert _circuits(gateway) == {"eastus2": "closed", "swedencentral": "closed"}
    assert all(
        r["circuit"]["consecutive_failures"] == 0
        for r in gateway.health_report()["regions"].values()
    )
    assert sim.region("eastus2").stats()["requests"] == 0
    assert sim.region("swedencentral").stats()["requests"] == 0
    # Normal traffic is unaffected.
    result = await gateway.chat(chat(), ctx())
    assert result.region == "eastus2"


async def test_stream_with_finish_reason_in_the_delta_ends_normally(
    sim_factory, gateway_settings_factory, gateway_factory
):
    """Finding 13: a peer that puts finish_reason inside the final delta ends the choice."""
    from tests.fixtures.sim import DEFAULT_REGIONS

    regions = [dict(r, finish_in_delta=True) for r in DEFAULT_REGIONS]
    sim = sim_factory(regions)
    gateway = gateway_factory(gateway_settings_factory(sim, priorities=PREFER_EAST))
    async with await gateway.open_chat_stream(chat(stream=True), ctx()) as stream:
        chunks = [chunk async for chunk in stream]
    finishes = [c["finish_reason"] for chunk in chunks for c in chunk.get("choices") or ()]
    assert finishes[-1] in ("stop", "length")
    assert stream.result.finish_reason in ("stop", "length")
    assert _circuits(gateway) == {"eastus2": "closed", "swedencentral": "closed"}


def _remaining(gateway, region: str, deployment: str) -> tuple[int, int]:
    dep = gateway.health_report()["regions"][region]["deployments"][deployment]
    return dep["remaining_tokens"], dep["remaining_requests"]


@pytest.mark.parametrize("fault", [{"kind": "reset"}, {"kind": "error", "status": 503}])
async def test_failures_azure_did_not_count_release_their_charge(
    sim_factory, gateway_settings_factory, gateway_factory, fault
):
    """Finding 6: a connection error or a 5xx gives the deployment its tokens back; the
    failover's success keeps its own charge."""
    sim = sim_factory()
    gateway = gateway_factory(
        gateway_settings_factory(sim, priorities=PREFER_EAST, circuit_failure_threshold=5)
    )
    before = _remaining(gateway, "eastus2", "gpt-4o-prod")
    sim.region("eastus2").fault(fault.pop("kind"), count=1, **fault)
    result = await gateway.chat(chat(max_tokens=2000), ctx())
    assert result.region == "swedencentral"
    assert result.attempts[0].outcome in (
        FailureKind.CONNECTION,
        FailureKind.SERVER_ERROR,
    )
    assert _remaining(gateway, "eastus2", "gpt-4o-prod") == before
    assert _remaining(gateway, "swedencentral", "gpt4o-sweden")[0] < before[0]


@pytest.mark.parametrize(
    ("request_", "param"),
    [
        (chat(max_tokens=1_000_000_000), "max_tokens"),
        (
            ChatRequest(model="gpt-4o", messages=[{"role": "user", "content": "hi"}], n=128),
            "max_tokens",
        ),
        (chat("x" * 3_900_000, max_tokens=10), "messages"),
    ],
)
async def test_a_request_that_can_never_fit_is_a_400_not_an_endless_429(
    sim_factory, gateway_settings_factory, gateway_factory, request_, param
):
    """Finding 5: cost above every deployment's whole quota -> request_too_large."""
    sim = sim_factory()
    gateway = gateway_factory(gateway_settings_factory(sim))
    with pytest.raises(RequestTooLarge) as caught:
        await gateway.chat(request_, ctx())
    error = caught.value
    assert error.http_status == 400 and error.code == "request_too_large"
    assert error.limit == 450000 and error.estimate > error.limit
    assert error.details()["param"] == param and str(error.limit) in error.message
    assert sim.region("eastus2").stats()["requests"] == 0


async def test_embeddings_over_the_inputs_cap_is_a_400_naming_the_limit(
    sim_factory, gateway_settings_factory, gateway_factory
):
    """Finding 4: more inputs than max_embedding_inputs (default 2,048) -> 400."""
    sim = sim_factory()
    gateway = gateway_factory(gateway_settings_factory(sim))
    request = EmbeddingsRequest(model="text-embedding-3-small", input=["a"] * 2049)
    with pytest.raises(TooManyInputs) as caught:
        await gateway.embeddings(request, ctx())
    assert caught.value.http_status == 400 and "2048" in caught.value.message
    assert caught.value.details() == {"param": "input", "limit": 2048, "count": 2049}
    assert sim.region("eastus2").stats()["requests"] == 0


async def test_a_lying_retry_after_is_capped_and_verified_by_a_real_probe(
    sim_factory, gateway_settings_factory, gateway_factory
):
    """Finding 2: retry-after 86400 does not take the primary out for a day."""
    import asyncio
    import time

    sim = sim_factory()
    settings = gateway_settings_factory(
        sim, priorities=PREFER_EAST, exhaustion_probe_interval_s=0.5
    )
    gateway = gateway_factory(settings)
    east = sim.region("eastus2")
    # Two absurd answers: the call's own and the first probe's; the second probe succeeds.
    east.fault("throttle", retry_after_s=86400, count=2, deployment="gpt-4o-prod")
    assert (await gateway.chat(chat(), ctx())).region == "swedencentral"
    dep = gateway.health_report()["regions"]["eastus2"]["deployments"]["gpt-4o-prod"]
    assert dep["state"] == "exhausted"
    assert dep["exhausted_until"] <= gateway.health_report()["now"] + settings.absurd_retry_after_s
    verdicts: list[bool] = []
    deadline = time.monotonic() + 30
    while True not in verdicts and time.monotonic() < deadline:
        verdicts.extend((await gateway.probe_exhausted()).values())
        await asyncio.sleep(0.1)
    assert verdicts[0] is False and verdicts[-1] is True  # repeated absurd answer, then back
    dep = gateway.health_report()["regions"]["eastus2"]["deployments"]["gpt-4o-prod"]
    assert dep["state"] == "ok"
    assert (await gateway.chat(chat(), ctx())).region == "eastus2"


async def test_region_probe_on_models_never_opens_a_circuit_on_an_http_answer(
    sim_factory, gateway_settings_factory, gateway_factory
):
    """Finding 3: a proxy that answers /models with 5xx does not open circuits; a connection
    failure counts toward the normal threshold; ``probe: deployment`` counts a real 5xx."""
    sim = sim_factory()
    settings = gateway_settings_factory(
        sim,
        circuit_failure_threshold=2,
        circuit_cooloff_s=60,
        region_overrides={"swedencentral": {"probe": "deployment"}},
    )
    gateway = gateway_factory(settings)
    for region in sim.regions.values():
        region.fault("error", status=502, count=100)
    for _ in range(4):
        results = await gateway.probe_regions()
        assert results["eastus2"] is False
        assert _circuits(gateway)["eastus2"] == "closed"  # /models' 5xx: no verdict
    assert _circuits(gateway)["swedencentral"] != "closed"  # a real call's 5xx, counted
    for region in sim.regions.values():
        region.reset()
    sim.region("eastus2").fault("reset", count=100)
    await gateway.probe_regions()
    assert _circuits(gateway)["eastus2"] == "closed"  # one connection failure: below threshold
    await gateway.probe_regions()
    assert _circuits(gateway)["eastus2"] != "closed"


async def test_an_inconclusive_models_probe_falls_back_to_a_deployment_call(
    sim_factory, gateway_settings_factory, gateway_factory
):
    """A proxy that answers /models with 500 gives no verdict; with no traffic routed to a
    region whose circuit opened, the probe's minimal deployment call closes it, and the report
    says what the region's state rests on."""
    sim = sim_factory()
    settings = gateway_settings_factory(sim, circuit_failure_threshold=1, circuit_cooloff_s=0.01)
    gateway = gateway_factory(settings)
    east = sim.region("eastus2")
    east.fault("reset", count=1)  # one connection failure opens eastus2's circuit
    east.fault("error", status=500, count=1000, op="models")  # then /models alone, for good
    await gateway.probe_regions()
    assert _circuits(gateway)["eastus2"] != "closed"
    report = gateway.health_report()["regions"]["eastus2"]["probe"]
    assert report["verdict"] == "failed" and report["at"] is not None
    for _ in range(3):  # before the fallback: inconclusive for good, half-open for good
        results = await gateway.probe_regions()
        if _circuits(gateway)["eastus2"] == "closed":
            break
    assert results["eastus2"] is True and _circuits(gateway)["eastus2"] == "closed"
    assert gateway.health_report()["regions"]["eastus2"]["probe"]["verdict"] == "answered"
    # With the circuit closed, an inconclusive /models costs no deployment call.
    calls = east.stats()["requests"]
    assert (await gateway.probe_regions())["eastus2"] is False
    assert east.stats()["requests"] == calls + 1
    assert gateway.health_report()["regions"]["eastus2"]["probe"]["verdict"] == "inconclusive"


async def test_a_non_streaming_chat_sent_as_a_stream_gets_the_same_body(
    sim_factory, gateway_settings_factory, gateway_factory
):
    """Finding 14: the assembled body is the one Azure sends without streaming."""
    sim = sim_factory()
    streamed = gateway_factory(gateway_settings_factory(sim, regions=["eastus2"]))
    plain = gateway_factory(
        gateway_settings_factory(sim, regions=["eastus2"], stream_upstream=False)
    )
    for text in ("Say hello to the gateway.", "SIM_FILTER_COMPLETION please"):
        a = (await streamed.chat(chat(text, max_tokens=30, n=2), ctx())).response
        b = (await plain.chat(chat(text, max_tokens=30, n=2), ctx())).response
        assert a["object"] == b["object"] == "chat.completion"
        assert [c["message"]["content"] for c in a["choices"]] == [
            c["message"]["content"] for c in b["choices"]
        ]
        assert [c["finish_reason"] for c in a["choices"]] == [
            c["finish_reason"] for c in b["choices"]
        ]
        assert [c["content_filter_results"] for c in a["choices"]] == [
            c["content_filter_results"] for c in b["choices"]
        ]
        assert a["prompt_filter_results"] == b["prompt_filter_results"]
        for key in ("prompt_tokens", "completion_tokens", "total_tokens"):
            assert a["usage"][key] == b["usage"][key]


async def test_a_hung_region_is_left_after_the_first_byte_deadline(
    sim_factory, gateway_settings_factory, gateway_factory
):
    """Finding 14: with a 60 s read timeout, a silent primary costs the first-byte deadline
    once (then its circuit is open), not the read timeout per caller."""
    import time

    sim = sim_factory()
    gateway = gateway_factory(
        gateway_settings_factory(
            sim,
            priorities=PREFER_EAST,
            read_timeout_s=60.0,
            call_deadline_s=120.0,
            circuit_cooloff_s=60.0,
            first_byte_timeout_s=1.0,
        )
    )
    sim.region("eastus2").fault("hang", duration_s=60)
    started = time.monotonic()
    result = await gateway.chat(chat(), ctx())
    assert time.monotonic() - started < 15  # generous; the point is far below 60 s
    assert [a.outcome for a in result.attempts] == [FailureKind.TIMEOUT, None]
    assert result.region == "swedencentral"
    assert _circuits(gateway)["eastus2"] == "open"
    again = await gateway.chat(chat(), ctx())
    assert [a.region for a in again.attempts] == ["swedencentral"]
    sim.region("eastus2").reset()


async def test_a_long_generation_is_not_cut_off_by_the_deadlines(
    sim_factory, gateway_settings_factory, gateway_factory
):
    """Finding 14: chunks keep arriving, so a generation far longer than the first-byte and
    idle deadlines completes (a 60 s one in bench/failover.py; here about 20x the idle one)."""
    sim = sim_factory(per_token_ms=100)
    gateway = gateway_factory(
        gateway_settings_factory(
            sim,
            regions=["eastus2"],
            read_timeout_s=60.0,
            call_deadline_s=120.0,
            first_byte_timeout_s=1.0,
            idle_timeout_s=1.0,
        )
    )
    result = await gateway.chat(chat("Tell me a long story.", max_tokens=200), ctx())
    assert result.finish_reason in ("stop", "length")
    assert result.usage is not None and result.usage.completion_tokens > 20
    assert [a.outcome for a in result.attempts] == [None]
