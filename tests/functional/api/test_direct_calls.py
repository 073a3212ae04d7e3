"""The decorated functions called directly, as the Functions docs show for HTTP streaming."""

from __future__ import annotations

import json

import function_app
from tests.functional.api._asgi import body_of, make_request

CHAT = {
    "model": "gpt-4o",
    "messages": [{"role": "user", "content": "Say something"}],
    "max_tokens": 8,
}


async def test_chat(sim, configure) -> None:
    configure(sim)
    response = await function_app.chat_completions(
        make_request("POST", "/api/v1/chat/completions", CHAT, {"x-correlation-id": "direct-1"})
    )
    assert response.status_code == 200
    body = json.loads(await body_of(response))
    assert body["object"] == "chat.completion" and body["choices"][0]["message"]["content"]
    assert response.headers["x-gateway-region"] in sim.regions
    assert response.headers["x-gateway-deployment"] in ("gpt-4o-prod", "gpt4o-sweden")
    assert response.headers["x-gateway-attempts"] == "1"
    assert response.headers["x-correlation-id"] == response.headers["x-request-id"] == "direct-1"


async def test_streaming_chat_iterates_sse_events(sim, configure) -> None:
    configure(sim)
    response = await function_app.chat_completions(
        make_request("POST", "/api/v1/chat/completions", {**CHAT, "stream": True})
    )
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    assert response.headers["x-gateway-region"] in sim.regions
    events = [e async for e in response.body_iterator]
    assert events[-1] == b"data: [DONE]\n\n"
    chunks = [json.loads(e[len(b"data: ") :]) for e in events[:-1]]
    assert any(
        c["object"] == "chat.completion.chunk" for c in chunks
    )  # Azure's first chunk may be prompt_filter_results only
    assert any(choice.get("finish_reason") for c in chunks for choice in c.get("choices", ()))


async def test_embeddings_models_health_openapi(sim, configure) -> None:
    configure(sim)
    emb = await function_app.embeddings(
        make_request(
            "POST", "/api/v1/embeddings", {"model": "text-embedding-3-small", "input": "hello"}
        )
    )
    assert emb.status_code == 200 and len(json.loads(await body_of(emb))["data"]) == 1
    models = await function_app.list_models(make_request("GET", "/api/v1/models"))
    assert [m["id"] for m in json.loads(await body_of(models))["data"]] == [
        "gpt-4o",
        "text-embedding-3-small",
    ]
    health = await function_app.health(make_request("GET", "/api/health"))
    report = json.loads(await body_of(health))
    assert health.status_code == 200 and report["status"] == "ok" and "gateway" not in report
    details = await function_app.health_details(make_request("GET", "/api/health/details"))
    report = json.loads(await body_of(details))
    assert (
        details.status_code == 200
        and report["status"] == "ok"
        and set(report["gateway"]["regions"]) == set(sim.regions)
    )
    doc = await function_app.openapi(make_request("GET", "/api/v1/openapi.json"))
    assert json.loads(await body_of(doc))["openapi"].startswith("3.1")


async def test_health_answers_when_settings_are_invalid(app_env) -> None:
    app_env({"GATEWAY_REGIONS": '[{"name": "eastus2"}]'})
    health = await function_app.health(make_request("GET", "/api/health"))
    body = json.loads(await body_of(health))
    assert health.status_code == 503
    assert body["alive"] is True and body["error"]["code"] == "gateway_misconfigured"
    assert "GATEWAY_REGIONS" not in body["error"]["message"]  # anonymous: status only
    details = await function_app.health_details(make_request("GET", "/api/health/details"))
    assert details.status_code == 503
    assert "GATEWAY_REGIONS[0].endpoint" in json.loads(await body_of(details))["error"]["message"]
    chat = await function_app.chat_completions(
        make_request("POST", "/api/v1/chat/completions", CHAT)
    )
    assert (
        chat.status_code == 500
        and json.loads(await body_of(chat))["error"]["code"] == "gateway_misconfigured"
    )
