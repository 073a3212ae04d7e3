"""Outputs: deterministic text honouring max_tokens, embeddings, SSE framing and latency."""

from __future__ import annotations

import base64
import concurrent.futures
import itertools
import json
import math
import struct
import time

import httpx

from tests.fixtures.sim import SimHandle
from tests.sim.helpers import API_VERSION, azure_client, v1_client

MESSAGES = [{"role": "user", "content": "Describe a gateway."}]


def test_chat_is_deterministic_and_honours_max_tokens(fresh: SimHandle) -> None:
    client = azure_client(fresh.region("eastus2"))
    a = client.chat.completions.create(model="gpt-4o-prod", messages=MESSAGES)
    b = client.chat.completions.create(model="gpt-4o-prod", messages=MESSAGES)
    assert a.choices[0].message.content == b.choices[0].message.content
    assert a.choices[0].finish_reason == "stop"
    natural = a.usage.completion_tokens
    assert 16 <= natural < 128
    short = client.chat.completions.create(
        model="gpt-4o-prod", messages=MESSAGES, max_tokens=natural // 2
    )
    assert (
        short.usage.completion_tokens == natural // 2 and short.choices[0].finish_reason == "length"
    )
    assert a.choices[0].message.content.startswith(short.choices[0].message.content)
    assert short.usage.total_tokens == short.usage.prompt_tokens + short.usage.completion_tokens
    several = client.chat.completions.create(
        model="gpt-4o-prod", messages=MESSAGES, n=3, max_tokens=5
    )
    assert [c.index for c in several.choices] == [0, 1, 2] and several.usage.completion_tokens == 15


def test_stream_text_matches_non_stream(fresh: SimHandle) -> None:
    client = v1_client(fresh.region("eastus2"))
    full = client.chat.completions.create(model="gpt-4o-prod", messages=MESSAGES, max_tokens=20)
    text = "".join(
        c.choices[0].delta.content or ""
        for c in client.chat.completions.create(
            model="gpt-4o-prod", messages=MESSAGES, max_tokens=20, stream=True
        )
        if c.choices
    )
    assert text == full.choices[0].message.content


def test_embeddings_deterministic_normalized_dimensions_and_base64(fresh: SimHandle) -> None:
    client = azure_client(fresh.region("eastus2"))
    one = (
        client.embeddings.create(model="embed-eastus2", input="alpha", encoding_format="float")
        .data[0]
        .embedding
    )
    batch = client.embeddings.create(
        model="embed-eastus2", input=["beta", "alpha"], encoding_format="float"
    ).data
    assert batch[1].embedding == one and batch[0].embedding != one
    assert len(one) == 1536 and math.isclose(math.fsum(v * v for v in one), 1.0, rel_tol=1e-6)
    short = client.embeddings.create(
        model="embed-eastus2", input="alpha", dimensions=256, encoding_format="float"
    )
    vec = short.data[0].embedding
    assert len(vec) == 256 and math.isclose(math.fsum(v * v for v in vec), 1.0, rel_tol=1e-6)
    # the SDK asks for base64 by default and decodes it; it must match the float form
    decoded = client.embeddings.create(model="embed-eastus2", input="alpha").data[0].embedding
    assert all(math.isclose(x, y, rel_tol=1e-6, abs_tol=1e-7) for x, y in zip(decoded, one))
    region = fresh.region("eastus2")
    raw = httpx.post(
        f"{region.endpoint}/openai/deployments/embed-eastus2/embeddings?api-version={API_VERSION}",
        headers={"api-key": region.api_key},
        json={"input": "alpha", "encoding_format": "base64"},
    ).json()
    floats = struct.unpack("<1536f", base64.b64decode(raw["data"][0]["embedding"]))
    assert math.isclose(floats[0], one[0], rel_tol=1e-6)
    assert raw["usage"] == {"prompt_tokens": 2, "total_tokens": 2}


def test_sse_framing(fresh: SimHandle) -> None:
    region = fresh.region("eastus2")
    url = f"{region.endpoint}/openai/deployments/gpt-4o-prod/chat/completions?api-version={API_VERSION}"
    body = {
        "messages": MESSAGES,
        "max_tokens": 3,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    with httpx.stream("POST", url, headers={"api-key": region.api_key}, json=body) as r:
        assert r.headers["content-type"].startswith("text/event-stream")
        assert "x-ratelimit-remaining-tokens" in r.headers
        raw = r.read().decode()
    events = raw.split("\n\n")
    assert events[-1] == "" and events[-2] == "data: [DONE]"
    payloads = [json.loads(e[len("data: ") :]) for e in events[:-2]]
    assert all(e.startswith("data: ") for e in events[:-1])
    assert payloads[0]["choices"] == [] and "prompt_filter_results" in payloads[0]
    assert payloads[1]["choices"][0]["delta"]["role"] == "assistant"
    contents = [p["choices"][0]["delta"]["content"] for p in payloads[2:5]]
    assert len(contents) == 3 and all(contents)
    assert (
        payloads[5]["choices"][0]["finish_reason"] == "length"
        and payloads[5]["choices"][0]["delta"] == {}
    )
    assert payloads[6]["choices"] == [] and payloads[6]["usage"]["completion_tokens"] == 3
    assert len(payloads) == 7


def test_latency_time_to_first_token_and_per_token(sim_factory) -> None:
    sim = sim_factory(ttft_ms=300, per_token_ms=50, identity=False)
    client = v1_client(sim.region("eastus2"))
    started = time.monotonic()
    stamps = []
    for chunk in client.chat.completions.create(
        model="gpt-4o-prod", messages=MESSAGES, max_tokens=4, stream=True
    ):
        if chunk.choices and chunk.choices[0].delta.content:
            stamps.append(time.monotonic() - started)
    assert len(stamps) == 4
    assert stamps[0] >= 0.3
    assert all(b - a >= 0.04 for a, b in itertools.pairwise(stamps))
    started = time.monotonic()
    client.chat.completions.create(model="gpt-4o-prod", messages=MESSAGES, max_tokens=4)
    assert time.monotonic() - started >= 0.3 + 3 * 0.05


def test_keep_alive_and_concurrency(fresh: SimHandle) -> None:
    region = fresh.region("eastus2")
    url = f"{region.endpoint}/openai/deployments/gpt-4o-prod/chat/completions?api-version={API_VERSION}"
    limits = httpx.Limits(max_connections=16, max_keepalive_connections=16)
    with httpx.Client(headers={"api-key": region.api_key}, limits=limits) as client:
        for _ in range(20):
            assert client.post(url, json={"messages": MESSAGES, "max_tokens": 2}).status_code == 200

        def call(i: int) -> int:
            body = {"messages": [{"role": "user", "content": str(i)}], "max_tokens": 2}
            return client.post(url, json=body).status_code

        with concurrent.futures.ThreadPoolExecutor(16) as pool:
            assert set(pool.map(call, range(64))) == {200}
    assert region.stats()["served"] == 84
