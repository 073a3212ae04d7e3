"""Done-when of issue 4: the real openai SDK, pointed at the dev server's /api/v1 with the function
key in a default header, against the simulator behind the gateway."""

from __future__ import annotations

import time

import openai
import pytest

from tests.functional.api.conftest import FUNCTION_KEY

PROMPT = [{"role": "user", "content": "Tell me about gateways"}]


def sdk(devserver, **kwargs) -> openai.OpenAI:
    return openai.OpenAI(
        base_url=f"{devserver.base_url}/v1",
        api_key="unused",
        default_headers={"x-functions-key": FUNCTION_KEY},
        max_retries=0,
        **kwargs,
    )


def test_chat(sim, configure, devserver) -> None:
    configure(sim)
    raw = sdk(devserver).chat.completions.with_raw_response.create(
        model="gpt-4o", messages=PROMPT, max_tokens=10
    )
    completion = raw.parse()
    assert completion.choices[0].message.content
    assert completion.usage is not None and completion.usage.completion_tokens <= 10
    assert (
        raw.headers["x-gateway-region"] == "eastus2"
    )  # both priority 1; eastus2 first in the table
    assert raw.headers["x-gateway-deployment"] == "gpt-4o-prod"
    assert raw.headers["x-gateway-attempts"] == "1"
    assert raw.headers["x-request-id"]


def test_streaming_chunks_arrive_before_upstream_finishes(
    sim_factory, configure, devserver
) -> None:
    sim = sim_factory(per_token_ms=50)
    configure(sim)
    started = time.monotonic()
    stream = sdk(devserver).chat.completions.create(
        model="gpt-4o", messages=PROMPT, max_tokens=20, stream=True
    )
    arrivals: list[float] = []
    text: list[str] = []
    first_content: float | None = None
    for chunk in stream:
        arrivals.append(time.monotonic() - started)
        piece = "".join(c.delta.content or "" for c in chunk.choices)
        if piece and first_content is None:
            first_content = arrivals[-1]
        text.append(piece)
    assert first_content is not None and len(arrivals) >= 10
    # 20 tokens at 50 ms each take about a second upstream; a buffered answer would arrive all at
    # once. (A lower bound only: a busy machine spreads the chunks further, never less.)
    assert arrivals[-1] - first_content > 0.6, arrivals


def test_streaming_ends_with_the_finish_reason(sim, configure, devserver) -> None:
    configure(sim)
    chunks = list(
        sdk(devserver).chat.completions.create(
            model="gpt-4o", messages=PROMPT, max_tokens=5, stream=True
        )
    )
    assert [
        c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason
    ] == ["length"]


def test_embeddings_single_and_batched_in_order(sim, configure, devserver) -> None:
    # max_inputs 3 makes the gateway split 8 inputs into 3 upstream calls.
    configure(
        sim,
        deployment_overrides={
            "embed-eastus2": {"max_inputs": 3},
            "embed-sweden": {"max_inputs": 3},
        },
    )
    client = sdk(devserver)
    words = [f"word number {i}" for i in range(8)]
    single = client.embeddings.create(model="text-embedding-3-small", input=words[5])
    assert len(single.data) == 1 and len(single.data[0].embedding) == 1536
    batch = client.embeddings.create(model="text-embedding-3-small", input=words)
    assert [d.index for d in batch.data] == list(range(8))
    assert batch.data[5].embedding == pytest.approx(single.data[0].embedding)
    assert batch.usage.prompt_tokens > single.usage.prompt_tokens


def test_models_lists_the_aliases(sim, configure, devserver) -> None:
    configure(sim)
    assert [m.id for m in sdk(devserver).models.list()] == ["gpt-4o", "text-embedding-3-small"]


def test_sdk_raises_typed_errors(sim, configure, devserver) -> None:
    configure(sim)
    with pytest.raises(openai.NotFoundError) as info:
        sdk(devserver).chat.completions.create(model="gpt-5", messages=PROMPT)
    assert info.value.code == "model_not_found"
    with pytest.raises(openai.BadRequestError) as bad:
        sdk(devserver).chat.completions.create(
            model="gpt-4o", messages=[{"role": "user", "content": "SIM_FILTER_PROMPT"}]
        )
    assert bad.value.code == "content_filter"
