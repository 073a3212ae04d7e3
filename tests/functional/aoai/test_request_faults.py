"""A 5xx that follows one request from region to region is that request's fault.

Some upstreams answer one kind of valid request (chat content given as a list of parts) with a
500 in every region. The simulator's ``match`` fault does that; the circuits must stay closed
for everyone else, and the caller gets the upstream's text in a 502. A region failing every
request still opens its circuit after as many requests as before. Circuits run on a
``ManualClock``.
"""

from __future__ import annotations

import time

import pytest

from shared.aoai import (
    ChatRequest,
    EmbeddingsRequest,
    FailureKind,
    ManualClock,
    RegionsUnavailable,
    UpstreamRequestFailed,
)

from ._helpers import chat, ctx

PREFER_EAST = {"eastus2": 0, "swedencentral": 1}
REGIONS = ("eastus2", "swedencentral")


def _parts(text: str = "Describe the gateway.") -> ChatRequest:
    return ChatRequest.model_validate(
        {
            "model": "gpt-4o",
            "max_tokens": 20,
            "messages": [{"role": "user", "content": [{"type": "text", "text": text}]}],
        }
    )


def _circuits(gateway) -> dict[str, dict]:
    return {name: r["circuit"] for name, r in gateway.health_report()["regions"].items()}


def _gateway(sim, gateway_settings_factory, gateway_factory, clock):
    settings = gateway_settings_factory(
        sim, priorities=PREFER_EAST, circuit_failure_threshold=3, circuit_cooloff_s=30.0
    )
    return gateway_factory(settings, clock=clock)


@pytest.mark.parametrize("interleaved", [False, True])
async def test_requests_failing_everywhere_open_no_circuit(
    interleaved, sim_factory, gateway_settings_factory, gateway_factory
):
    sim = sim_factory()
    clock = ManualClock(time.time())
    gateway = _gateway(sim, gateway_settings_factory, gateway_factory, clock)
    assert (await gateway.chat(chat(), ctx())).region == "eastus2"  # the region serves others
    for name in REGIONS:
        sim.region(name).fault("error", status=500, match="content_parts")
    for _ in range(5):
        clock.advance(1.0)
        with pytest.raises(UpstreamRequestFailed) as caught:
            await gateway.chat(_parts(), ctx())
        error = caught.value
        assert error.http_status == 502 and error.code == "upstream_request_failed"
        assert error.upstream_status == 500
        assert "server" in error.message.lower()  # the upstream's own text is in the message
        assert [(a.region, a.outcome) for a in error.attempts] == [
            ("eastus2", FailureKind.SERVER_ERROR),
            ("swedencentral", FailureKind.SERVER_ERROR),
        ]
        if interleaved:
            assert (await gateway.chat(chat(), ctx())).region == "eastus2"
    circuits = _circuits(gateway)
    assert {name: c["state"] for name, c in circuits.items()} == dict.fromkeys(REGIONS, "closed")
    assert all(c["consecutive_failures"] == 0 for c in circuits.values())
    # Every other caller is served as before, by the preferred region.
    result = await gateway.chat(chat(), ctx())
    assert result.region == "eastus2" and len(result.attempts) == 1


async def test_a_region_failing_every_request_opens_as_fast_as_before(
    sim_factory, gateway_settings_factory, gateway_factory
):
    sim = sim_factory()
    clock = ManualClock(time.time())
    gateway = _gateway(sim, gateway_settings_factory, gateway_factory, clock)
    assert (await gateway.chat(chat(), ctx())).region == "eastus2"
    sim.region("eastus2").fault("error", status=500)
    for _ in range(3):  # each fails over to swedencentral; the third opens eastus2
        clock.advance(1.0)
        result = await gateway.chat(chat(), ctx())
        assert [(a.region, a.outcome) for a in result.attempts] == [
            ("eastus2", FailureKind.SERVER_ERROR),
            ("swedencentral", None),
        ]
    assert _circuits(gateway)["eastus2"]["state"] == "open"
    result = await gateway.chat(chat(), ctx())
    assert [(a.region, a.outcome) for a in result.attempts] == [("swedencentral", None)]


async def test_every_region_failing_every_request_still_opens_the_circuits(
    sim_factory, gateway_settings_factory, gateway_factory
):
    """Nothing tells such an outage from requests failing everywhere but its length: the
    circuits open after twice the threshold of requests answered by no region."""
    sim = sim_factory()
    clock = ManualClock(time.time())
    gateway = _gateway(sim, gateway_settings_factory, gateway_factory, clock)
    assert (await gateway.chat(chat(), ctx())).region == "eastus2"
    for name in REGIONS:
        sim.region(name).fault("error", status=500)
    outcomes = []
    for _ in range(8):
        clock.advance(1.0)
        try:
            await gateway.chat(chat(), ctx())
        except (UpstreamRequestFailed, RegionsUnavailable) as exc:
            outcomes.append(type(exc).__name__)
    assert outcomes[:6] == ["UpstreamRequestFailed"] * 6
    assert outcomes[6:] == ["RegionsUnavailable"] * 2
    circuits = _circuits(gateway)
    assert {name: c["state"] for name, c in circuits.items()} == dict.fromkeys(REGIONS, "open")


async def test_a_split_embeddings_request_failing_everywhere_opens_no_circuit(
    sim_factory, gateway_settings_factory, gateway_factory
):
    """The parts of one split request are one request: their 5xx answers at one region are not
    'other requests' failing there."""
    sim = sim_factory()
    clock = ManualClock(time.time())
    settings = gateway_settings_factory(
        sim,
        priorities=PREFER_EAST,
        circuit_failure_threshold=3,
        deployment_overrides={
            "embed-eastus2": {"max_inputs": 2},
            "embed-sweden": {"max_inputs": 2},
        },
    )
    gateway = gateway_factory(settings, clock=clock)
    texts = EmbeddingsRequest(model="text-embedding-3-small", input=["a", "b", "c"])
    assert len((await gateway.embeddings(texts, ctx())).response["data"]) == 3
    for name in REGIONS:
        sim.region(name).fault("error", status=500, match="token_inputs")
    tokens = EmbeddingsRequest(model="text-embedding-3-small", input=[[1, 2], [3], [4], [5, 6]])
    for _ in range(4):
        clock.advance(1.0)
        with pytest.raises(UpstreamRequestFailed):
            await gateway.embeddings(tokens, ctx())
    circuits = _circuits(gateway)
    assert {name: c["state"] for name, c in circuits.items()} == dict.fromkeys(REGIONS, "closed")
    assert len((await gateway.embeddings(texts, ctx())).response["data"]) == 3
