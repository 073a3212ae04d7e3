"""HTTP invocations through the runtime and its own HTTP server, proxied as the host does: health,
chat, streamed chat (SSE, token by token), embeddings and an Azure route, against the simulator
and Azurite; what the host sees back for each (jobs: test_triggers.py)."""

from __future__ import annotations

import openai
import pytest

from .conftest import Host, sse_events

pytestmark = pytest.mark.timeout(240)  # the double's start-up counts; a busy machine is slow

KEY = {"x-functions-key": "host-double-key"}  # sent as callers do; the double checks no keys


def _last(host: Host, path: str) -> dict:
    return [i for i in host.invocations() if i.get("http", {}).get("path") == path][-1]


def test_health_through_the_runtime(host: Host) -> None:
    with host.client() as c:
        answer = c.get("/api/health")
    assert answer.status_code == 200, answer.text
    assert answer.json()["status"] == "ok"
    record = _last(host, "/api/health")
    assert record["function"] == "health" and record["status"] == "Success"
    # The response went through the worker's HTTP server, not the gRPC return value.
    assert record["return_value"] is None and record["exception"] is None


def test_chat_and_embeddings_with_the_openai_sdk(host: Host) -> None:
    client = openai.OpenAI(
        base_url=f"{host.base_url}/v1", api_key="unused", default_headers=KEY, max_retries=0
    )
    chat = client.chat.completions.create(
        model="gpt-4o", messages=[{"role": "user", "content": "hello"}], max_tokens=8
    )
    assert chat.choices[0].message.content and chat.usage and chat.usage.total_tokens > 0
    assert _last(host, "/api/v1/chat/completions")["status"] == "Success"
    vectors = client.embeddings.create(model="text-embedding-3-small", input=["a", "b"])
    assert [len(v.embedding) for v in vectors.data] == [1536, 1536]
    assert _last(host, "/api/v1/embeddings")["function"] == "embeddings"


def test_a_stream_arrives_token_by_token(host: Host) -> None:
    body = {
        "model": "gpt-4o",
        "messages": [{"role": "user", "content": "count to twenty"}],
        "max_tokens": 40,
        "stream": True,
    }
    with (
        host.client() as c,
        c.stream("POST", "/api/v1/chat/completions", json=body, headers=KEY) as r,
    ):
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/event-stream")
        events = sse_events(r.iter_lines())
    assert events[-1] == "[DONE]"
    deltas = [
        e["choices"][0]["delta"].get("content")
        for e in events[:-1]
        if isinstance(e, dict) and e.get("choices")
    ]
    tokens = [d for d in deltas if d]
    assert len(tokens) >= 5, events
    record = _last(host, "/api/v1/chat/completions")
    assert record["status"] == "Success"
    # The simulator spaces the tokens 20 ms apart: a worker that buffered the body would hand
    # the proxy one read; a streaming one hands it about one per event (43 for 44 events
    # here on a quiet machine), and several even when a busy one merges some.
    assert record["http"]["chunks"] >= 5, record


def test_the_azure_route_carries_its_route_parameter(host: Host) -> None:
    client = openai.AzureOpenAI(
        azure_endpoint=host.base_url,
        api_key="unused",
        api_version="2024-10-21",
        default_headers=KEY,
        max_retries=0,
    )
    chat = client.chat.completions.create(
        model="gpt-4o", messages=[{"role": "user", "content": "hi"}], max_tokens=4
    )
    assert chat.choices[0].message.content
    record = _last(host, "/api/openai/deployments/gpt-4o/chat/completions")
    assert record["function"] == "azure_chat_completions" and record["status"] == "Success"


def test_bad_input_is_a_4xx_the_function_returned(host: Host) -> None:
    with host.client() as c:
        bad = c.post("/api/v1/chat/completions", json={"model": "gpt-4o"}, headers=KEY)
        unknown = c.get("/api/nothing/here")
    assert bad.status_code == 400, bad.text
    assert bad.json()["error"]["code"]
    # A handled refusal is a successful invocation to the host.
    assert _last(host, "/api/v1/chat/completions")["status"] == "Success"
    assert unknown.status_code == 404
