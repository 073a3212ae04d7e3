"""SSE framing (including the error event on a mid-stream failure) and the OpenAPI document."""

from __future__ import annotations

import asyncio
import json

from shared.aoai import ChatRequest, EmbeddingsRequest, StreamInterrupted
from shared.api import openapi_document
from shared.api._sse import DONE, sse_events


class FakeStream:
    def __init__(self, chunks: list[dict], error: Exception | None = None) -> None:
        self.chunks, self.error, self.closed = list(chunks), error, False

    def __aiter__(self) -> FakeStream:
        return self

    async def __anext__(self) -> dict:
        if self.chunks:
            return self.chunks.pop(0)
        if self.error is not None:
            raise self.error
        raise StopAsyncIteration

    async def aclose(self) -> None:
        self.closed = True


async def collect(stream: FakeStream) -> list[bytes]:
    return [event async for event in sse_events(stream, "cid")]


def test_chunks_then_done() -> None:
    stream = FakeStream([{"id": "1", "choices": [{"delta": {"content": "hé"}}]}, {"id": "2"}])
    events = asyncio.run(collect(stream))
    assert events[-1] == DONE == b"data: [DONE]\n\n"
    assert [json.loads(e[6:]) for e in events[:-1]] == [
        {"id": "1", "choices": [{"delta": {"content": "hé"}}]},
        {"id": "2"},
    ]
    assert all(e.startswith(b"data: ") and e.endswith(b"\n\n") for e in events)
    assert stream.closed


def test_interruption_ends_with_an_error_event_and_no_done() -> None:
    stream = FakeStream([{"id": "1"}], StreamInterrupted("upstream went away after 1 chunk"))
    events = asyncio.run(collect(stream))
    assert DONE not in events
    error = json.loads(events[-1][6:])["error"]
    assert error["code"] == "stream_interrupted" and error["correlation_id"] == "cid"
    assert stream.closed


def test_unexpected_failure_mid_stream_is_an_internal_error_event() -> None:
    stream = FakeStream([{"id": "1"}], RuntimeError("private detail"))
    events = asyncio.run(collect(stream))
    assert json.loads(events[-1][6:])["error"]["code"] == "internal_error"
    assert b"private detail" not in b"".join(events)


def test_client_going_away_closes_the_upstream_stream() -> None:
    async def run() -> FakeStream:
        stream = FakeStream([{"id": str(i)} for i in range(10)])
        events = sse_events(stream, "cid")
        await events.__anext__()
        await events.aclose()
        return stream

    assert asyncio.run(run()).closed


def _refs(node: object) -> list[str]:
    if isinstance(node, dict):
        return [v for k, v in node.items() if k == "$ref"] + [
            r for v in node.values() for r in _refs(v)
        ]
    if isinstance(node, list):
        return [r for v in node for r in _refs(v)]
    return []


def test_openapi_document_is_generated_from_the_request_models() -> None:
    doc = openapi_document()
    json.dumps(doc)
    schemas = doc["components"]["schemas"]
    for ref in _refs(doc):
        assert ref.startswith("#/components/schemas/") and ref.rsplit("/", 1)[1] in schemas, ref
    assert set(ChatRequest.model_json_schema()["properties"]) == set(
        schemas["ChatRequest"]["properties"]
    )
    assert set(EmbeddingsRequest.model_json_schema()["properties"]) == set(
        schemas["EmbeddingsRequest"]["properties"]
    )
    # Issue 10 finding 12: every HTTP function of the app is documented, with its methods.
    import function_app
    from devserver.http import http_functions

    # The ops surface (admin level, master key) is for operators, not in the public document.
    routes = {
        f"/{fn.route}": fn.methods
        for fn in http_functions(function_app.app)
        if fn.auth_level != "admin"
    }
    assert set(doc["paths"]) == set(routes)
    for path, methods in routes.items():
        assert {m.lower() for m in methods} == set(doc["paths"][path]), path
    health = schemas["HealthResponse"]["properties"]["status"]
    assert "degraded" in json.dumps(health)
    assert doc["paths"]["/health"]["get"]["security"] == []
    assert "429" in doc["paths"]["/v1/chat/completions"]["post"]["responses"]
