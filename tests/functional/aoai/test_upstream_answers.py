"""Upstream answers are not trusted too far, and a non-streamed answer never loses its usage:
a malformed or oversized 200 is the region's fault (fails over, counts toward its circuit),
absurd usage numbers are ignored, and an answer without usage or model gets the gateway's
estimate and the deployment's name (real openai SDK, simulated regions)."""

from __future__ import annotations

import pytest

from shared.aoai import EmbeddingsRequest, FailureKind

from ._helpers import TWO_SMALL_REGIONS, chat, ctx

PREFER_EAST = {"eastus2": 0, "swedencentral": 1}


def _gateway(sim, gateway_settings_factory, gateway_factory, **overrides):
    return gateway_factory(gateway_settings_factory(sim, priorities=PREFER_EAST, **overrides))


@pytest.mark.parametrize("stream_upstream", [True, False])
async def test_an_answer_without_usage_or_model_is_estimated_and_named(
    stream_upstream, sim_factory, gateway_settings_factory, gateway_factory
):
    sim = sim_factory(TWO_SMALL_REGIONS)
    gateway = _gateway(
        sim, gateway_settings_factory, gateway_factory, stream_upstream=stream_upstream
    )
    sim.region("eastus2").fault("omit_usage", count=1)
    request = chat("Tell me about gateways.", max_tokens=30)
    result = await gateway.chat(request, ctx())
    assert sim.region("eastus2").stats()["deployments"]["gpt-4o-prod"]["usage_omitted"] == 1
    body = result.response
    assert body is not None
    assert body["model"] == "gpt-4o-prod"  # the deployment, when upstream names none
    usage = body["usage"]
    assert usage is not None and usage["estimated"] is True
    assert usage["prompt_tokens"] == request.prompt_tokens()
    text = body["choices"][0]["message"]["content"]
    assert usage["completion_tokens"] == -(-len(text) // 4) > 0
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]
    assert result.usage is not None and result.usage.estimated
    assert result.usage.total_tokens == usage["total_tokens"]
    # The next answer carries upstream's usage: not estimated.
    result = await gateway.chat(request, ctx())
    assert result.response is not None and "estimated" not in result.response["usage"]
    assert result.usage is not None and not result.usage.estimated
    assert result.response["model"] and result.response["model"] != "gpt-4o-prod"


@pytest.mark.parametrize("stream_upstream", [True, False])
@pytest.mark.parametrize("body", [[], "oops", {"choices": "none"}, 42])
async def test_a_malformed_200_fails_over_and_counts_against_the_region(
    body, stream_upstream, sim_factory, gateway_settings_factory, gateway_factory
):
    sim = sim_factory(TWO_SMALL_REGIONS)
    gateway = _gateway(
        sim, gateway_settings_factory, gateway_factory, stream_upstream=stream_upstream
    )
    sim.region("eastus2").fault("bad_answer", body=body, count=1)
    result = await gateway.chat(chat(), ctx())
    assert result.region == "swedencentral"
    first = result.attempts[0]
    assert (first.region, first.outcome) == ("eastus2", FailureKind.SERVER_ERROR)
    assert "malformed answer" in first.detail
    circuit = gateway.health_report()["regions"]["eastus2"]["circuit"]
    assert circuit["consecutive_failures"] == 1


async def test_a_malformed_embeddings_answer_fails_over(
    sim_factory, gateway_settings_factory, gateway_factory
):
    sim = sim_factory()
    gateway = _gateway(sim, gateway_settings_factory, gateway_factory)
    sim.region("eastus2").fault("bad_answer", body={"data": "x"}, count=1)
    request = EmbeddingsRequest(model="text-embedding-3-small", input=["a", "b"])
    result = await gateway.embeddings(request, ctx())
    assert result.region == "swedencentral"
    assert result.attempts[0].outcome is FailureKind.SERVER_ERROR


@pytest.mark.parametrize("stream_upstream", [True, False])
async def test_an_oversized_answer_is_cut_at_the_cap_and_fails_over(
    stream_upstream, sim_factory, gateway_settings_factory, gateway_factory
):
    sim = sim_factory(TWO_SMALL_REGIONS)
    gateway = _gateway(
        sim,
        gateway_settings_factory,
        gateway_factory,
        stream_upstream=stream_upstream,
        max_response_bytes=64 * 1024,
    )
    sim.region("eastus2").fault("bad_answer", body={}, pad_bytes=200_000, count=1)
    result = await gateway.chat(chat(), ctx())
    assert result.region == "swedencentral"
    first = result.attempts[0]
    assert first.outcome is FailureKind.SERVER_ERROR and "max_response_bytes" in first.detail


def _chunk(usage: dict) -> dict:
    return {
        "id": "chatcmpl-x",
        "object": "chat.completion.chunk",
        "created": 1,
        "model": "gpt-4o",
        "choices": [
            {
                "index": 0,
                "delta": {"role": "assistant", "content": "Hello there."},
                "finish_reason": "stop",
            }
        ],
        "usage": usage,
    }


@pytest.mark.parametrize(
    "usage",
    [
        {"prompt_tokens": 10**20, "completion_tokens": 3, "total_tokens": 10**20 + 3},
        {"prompt_tokens": -5, "completion_tokens": 3, "total_tokens": -2},
        {"prompt_tokens": "12", "completion_tokens": 3, "total_tokens": 15},
        {"prompt_tokens": 1.5, "completion_tokens": 3, "total_tokens": 4.5},
    ],
)
async def test_usage_out_of_range_is_replaced_by_the_estimate(
    usage, sim_factory, gateway_settings_factory, gateway_factory
):
    sim = sim_factory(TWO_SMALL_REGIONS)
    gateway = _gateway(sim, gateway_settings_factory, gateway_factory)
    sim.region("eastus2").fault("bad_answer", body=_chunk(usage), count=1)
    request = chat()
    result = await gateway.chat(request, ctx())
    assert result.region == "eastus2"
    assert result.usage is not None and result.usage.estimated
    assert result.usage.prompt_tokens == request.prompt_tokens()
    assert result.usage.completion_tokens == 3  # "Hello there." is 12 characters
    assert result.response is not None and result.response["usage"]["estimated"] is True


async def test_a_callers_stream_without_a_usage_chunk_is_recorded_with_an_estimate(
    sim_factory, gateway_settings_factory, gateway_factory
):
    sim = sim_factory(TWO_SMALL_REGIONS)
    gateway = _gateway(sim, gateway_settings_factory, gateway_factory)
    sim.region("eastus2").fault("omit_usage", count=1)
    request = chat("Tell me about gateways.", max_tokens=30, stream=True)
    stream = await gateway.open_chat_stream(request, ctx())
    text = []
    async with stream:
        async for chunk in stream:
            assert "usage" not in chunk or chunk["usage"] is None  # passed through unchanged
            text.extend(c["delta"].get("content") or "" for c in chunk["choices"])
    usage = stream.result.usage
    assert usage is not None and usage.estimated
    assert usage.prompt_tokens == request.prompt_tokens()
    assert usage.completion_tokens == -(-len("".join(text)) // 4) > 0
    # With the upstream's usage chunk, its figures are kept.
    stream = await gateway.open_chat_stream(request, ctx())
    async with stream:
        async for _ in stream:
            pass
    assert stream.result.usage is not None and not stream.result.usage.estimated
