"""Embeddings are base64 end to end; floats only for a caller who asks for them (issue 10, finding 4).

The gateway always asks upstream for base64 and keeps each vector as one string while the parts
are merged; the answer is in the caller's ``encoding_format`` (float when omitted, OpenAI's
default). Both encodings carry the same float32 values exactly, in input order, over a batch
split into several upstream calls, through the gateway and through the dev server over HTTP.
"""

from __future__ import annotations

import base64
from array import array

import httpx
import openai

from shared.aoai import EmbeddingsRequest
from testpeers.gateway import settings_for_sim

from ._helpers import ctx

ALIAS = "text-embedding-3-small"
SPLIT = {"embed-eastus2": {"max_inputs": 16}, "embed-sweden": {"max_inputs": 16}}


def _f32(values) -> bytes:
    """A vector's float32 bytes (little-endian on the machines this runs on)."""
    return array("f", values).tobytes()


def _direct_base64(sim, texts: list[str]) -> list[bytes]:
    """What the simulator itself answers, as float32 bytes per input."""
    region = sim.region("eastus2")
    answer = httpx.post(
        f"{region.endpoint}/openai/v1/embeddings",
        headers={"api-key": region.api_key},
        json={"model": "embed-eastus2", "input": texts, "encoding_format": "base64"},
        timeout=60,
    ).json()
    return [base64.b64decode(d["embedding"]) for d in answer["data"]]


async def test_the_gateway_answers_in_the_callers_encoding_with_the_same_values(
    sim_factory, gateway_settings_factory, gateway_factory
):
    sim = sim_factory()
    gateway = gateway_factory(gateway_settings_factory(sim, deployment_overrides=SPLIT))
    texts = [f"sentence number {i}" for i in range(40)]  # 3 upstream parts of at most 16

    answers = {
        encoding: (
            await gateway.embeddings(
                EmbeddingsRequest(model=ALIAS, input=texts, encoding_format=encoding), ctx()
            )
        ).response
        for encoding in ("float", "base64", None)
    }

    for body in answers.values():
        assert [d["index"] for d in body["data"]] == list(range(40))
        assert body["usage"]["prompt_tokens"] > 0
    b64 = [d["embedding"] for d in answers["base64"]["data"]]
    floats = [d["embedding"] for d in answers["float"]["data"]]
    assert all(isinstance(v, str) for v in b64)
    assert all(isinstance(v, list) and len(v) == 1536 for v in floats)
    assert [d["embedding"] for d in answers[None]["data"]] == floats  # omitted: float
    # Every upstream part was asked for base64, also for the float and the omitted answers.
    served = {
        name: sim.region(name).stats()["deployments"][dep]
        for name, dep in (("eastus2", "embed-eastus2"), ("swedencentral", "embed-sweden"))
    }
    assert sum(s["served"] for s in served.values()) == 9  # 3 answers x 3 parts
    assert sum(s["embeddings_base64"] for s in served.values()) == 9
    expected = _direct_base64(sim, texts)
    assert [base64.b64decode(v) for v in b64] == expected  # the upstream's bytes, untouched
    assert [_f32(v) for v in floats] == expected  # the same float32 values, exactly


def test_the_http_api_writes_floats_and_base64_that_round_trip_exactly(
    sim_factory, app_env, devserver
):
    sim = sim_factory()
    app_env(settings_for_sim(sim, deployment_overrides=SPLIT))
    texts = [f"line {i} of the corpus" for i in range(150)]  # > one slice: a streamed answer
    url = f"{devserver.base_url}/v1/embeddings"

    def post(**extra) -> dict:
        response = httpx.post(url, json={"model": ALIAS, "input": texts, **extra}, timeout=120)
        assert response.status_code == 200, response.text
        assert response.headers["content-type"].startswith("application/json")
        assert response.headers["x-correlation-id"] and response.headers["x-gateway-region"]
        return response.json()

    as_float, as_base64, omitted = (
        post(encoding_format="float"),
        post(encoding_format="base64"),
        post(),
    )
    expected = _direct_base64(sim, texts)
    for body in (as_float, as_base64, omitted):
        assert body["object"] == "list" and body["model"]
        assert [d["index"] for d in body["data"]] == list(range(150))
        assert all(d["object"] == "embedding" for d in body["data"])
        assert body["usage"]["prompt_tokens"] == body["usage"]["total_tokens"] > 0
    assert [base64.b64decode(d["embedding"]) for d in as_base64["data"]] == expected
    assert [_f32(d["embedding"]) for d in as_float["data"]] == expected
    assert omitted["data"] == as_float["data"]  # OpenAI's default is float

    # The openai SDK asks for base64 on its own and decodes it: the same values again.
    client = openai.OpenAI(base_url=f"{devserver.base_url}/v1", api_key="unused", max_retries=0)
    decoded = client.embeddings.create(model=ALIAS, input=texts[:3])
    assert [_f32(d.embedding) for d in decoded.data] == expected[:3]
    one = httpx.post(url, json={"model": ALIAS, "input": texts[7]}, timeout=60)
    assert one.status_code == 200 and "content-length" in one.headers  # one slice: plain body
    assert _f32(one.json()["data"][0]["embedding"]) == expected[7]
