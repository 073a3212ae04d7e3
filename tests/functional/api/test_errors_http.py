"""Every error class of issue 4, over real HTTP through the dev server: status, body code, headers."""

from __future__ import annotations

import json
import threading
import time

import httpx
import pytest

from tests.functional.api.conftest import FUNCTION_KEY

CHAT = {"model": "gpt-4o", "messages": [{"role": "user", "content": "hello"}], "max_tokens": 5}
HEADERS = {"x-functions-key": FUNCTION_KEY}


def post(devserver, path: str, body: object = CHAT, **kwargs) -> httpx.Response:
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    headers = {**HEADERS, "content-type": "application/json", **kwargs.pop("headers", {})}
    return httpx.post(
        f"{devserver.base_url}{path}", content=content, headers=headers, timeout=30, **kwargs
    )


def error_of(response: httpx.Response) -> dict:
    assert response.headers["content-type"].startswith("application/json")
    assert "Traceback" not in response.text
    error = response.json()["error"]
    assert {"message", "type", "param", "code"} <= set(error)
    assert (
        error["correlation_id"]
        == response.headers["x-correlation-id"]
        == response.headers["x-request-id"]
    )
    return error


def test_validation_error_names_the_field(sim, configure, devserver) -> None:
    configure(sim)
    response = post(
        devserver,
        "/v1/chat/completions",
        {"model": "gpt-4o", "messages": [{"role": "robot", "content": "x"}]},
        headers={"x-correlation-id": "corr-42"},
    )
    error = error_of(response)
    assert response.status_code == 400
    assert (error["code"], error["type"], error["param"]) == (
        "invalid_request",
        "invalid_request_error",
        "messages[0].role",
    )
    assert "messages[0].role" in error["message"]
    assert response.headers["x-correlation-id"] == "corr-42"


def test_embeddings_validation(sim, configure, devserver) -> None:
    configure(sim)
    response = post(devserver, "/v1/embeddings", {"model": "text-embedding-3-small", "input": []})
    assert response.status_code == 400 and error_of(response)["param"] == "input"


def test_unknown_model_is_404_listing_the_aliases(sim, configure, devserver) -> None:
    configure(sim)
    for path, body in (
        ("/v1/chat/completions", {**CHAT, "model": "gpt-5"}),
        ("/v1/embeddings", {"model": "nope", "input": "x"}),
    ):
        response = post(devserver, path, body)
        error = error_of(response)
        assert response.status_code == 404 and error["code"] == "model_not_found"
        assert error["known_models"] == ["gpt-4o", "text-embedding-3-small"]
        assert "gpt-4o" in error["message"]


def test_all_throttled_is_429_with_retry_after(sim, configure, devserver) -> None:
    configure(sim)
    for region in sim.regions.values():
        region.fault("throttle", retry_after_s=7, count=50)
    response = post(devserver, "/v1/chat/completions")
    error = error_of(response)
    assert response.status_code == 429
    assert (error["code"], error["type"]) == ("all_throttled", "rate_limit_error")
    assert response.headers["retry-after"] in (
        "6",
        "7",
    )  # ceil of the soonest cooldown, a moment later
    assert 5000 < int(response.headers["retry-after-ms"]) <= 7000
    assert int(response.headers["x-gateway-attempts"]) >= 2  # both regions were tried


def test_content_filter_is_400_with_the_categories(sim, configure, devserver) -> None:
    configure(sim)
    body = {**CHAT, "messages": [{"role": "user", "content": "please SIM_FILTER_PROMPT now"}]}
    response = post(devserver, "/v1/chat/completions", body)
    error = error_of(response)
    assert (
        response.status_code == 400
        and error["code"] == "content_filter"
        and error["param"] == "prompt"
    )
    assert error["filtered_categories"] == ["violence"]
    assert error["content_filter_result"]["violence"] == {"filtered": True, "severity": "high"}
    assert "please SIM_FILTER_PROMPT" not in response.text  # the prompt is not echoed


def test_upstream_auth_failure_is_502_with_the_diagnostic_never_the_key(
    sim, configure, devserver
) -> None:
    wrong = {"eastus2": "wrong-key-eastus2-0001", "swedencentral": "wrong-key-sweden-0002"}
    configure(sim, api_keys=wrong)
    response = post(devserver, "/v1/chat/completions")
    error = error_of(response)
    assert response.status_code == 502
    assert (error["code"], error["type"]) == ("upstream_auth_failed", "gateway_error")
    assert error["region"] in wrong and error["upstream_status"] == 401
    assert "rotated" in error["message"] and error["role_needed"] is None
    for key in (*wrong.values(), "local-dev-key"):
        assert key not in response.text


def test_oversized_body_is_413(sim, configure, devserver) -> None:
    settings = configure(sim, max_body_bytes=2000)
    assert settings.max_body_bytes == 2000
    big = {**CHAT, "messages": [{"role": "user", "content": "x" * 5000}]}
    response = post(devserver, "/v1/chat/completions", big)
    assert response.status_code == 413 and error_of(response)["code"] == "request_too_large"

    def chunked():  # no Content-Length: the limit holds while reading
        data = json.dumps(big).encode()
        for i in range(0, len(data), 500):
            yield data[i : i + 500]

    response = httpx.post(
        f"{devserver.base_url}/v1/embeddings", content=chunked(), headers=HEADERS, timeout=30
    )
    assert response.status_code == 413 and error_of(response)["code"] == "request_too_large"


@pytest.mark.parametrize(
    "raw",
    [
        b"{not json",
        b"",
        b"\xff\xfe\xfd",
        b'{"model": "gpt-4o", "messages": [',
        b'{"model": Infinity}',
    ],
)
def test_malformed_json_is_400(sim, configure, devserver, raw: bytes) -> None:
    configure(sim)
    response = post(devserver, "/v1/chat/completions", raw)
    assert response.status_code == 400 and error_of(response)["code"] == "invalid_json"


def test_regions_unavailable_is_503(sim, configure, devserver) -> None:
    configure(sim)
    for region in sim.regions.values():
        region.fault("error", status=500, count=50)
    response = post(devserver, "/v1/chat/completions")
    assert response.status_code == 503 and error_of(response)["code"] == "upstream_unavailable"
    assert int(response.headers["x-gateway-attempts"]) >= 2


def test_stream_cut_mid_way_ends_with_an_error_event(sim_factory, configure, devserver) -> None:
    sim = sim_factory(per_token_ms=100, regions=None)
    configure(sim)
    body = {**CHAT, "max_tokens": 40, "stream": True}
    events: list[bytes] = []
    with httpx.stream(
        "POST", f"{devserver.base_url}/v1/chat/completions", json=body, headers=HEADERS, timeout=30
    ) as response:
        assert response.status_code == 200
        lines = response.iter_lines()
        for line in lines:
            if line.startswith("data: "):
                events.append(line.encode())
                if len(events) == 3:
                    threading.Thread(
                        target=sim.stop
                    ).start()  # the upstream process dies mid-answer
                    break
        events.extend(line.encode() for line in lines if line.startswith("data: "))
    assert b"data: [DONE]" not in events
    last = json.loads(events[-1][len(b"data: ") :])
    assert last["error"]["code"] == "stream_interrupted"
    assert last["error"]["correlation_id"] == response.headers["x-correlation-id"]


def test_streaming_errors_before_the_first_byte_are_plain_http_errors(
    sim, configure, devserver
) -> None:
    configure(sim)
    response = post(devserver, "/v1/chat/completions", {**CHAT, "model": "gpt-5", "stream": True})
    assert response.status_code == 404 and error_of(response)["code"] == "model_not_found"


def test_misconfigured_gateway(app_env, devserver) -> None:
    app_env({"GATEWAY_REGIONS": "{broken"})
    health = httpx.get(f"{devserver.base_url}/health", timeout=10)
    assert health.status_code == 503
    assert health.json()["error"]["code"] == "gateway_misconfigured"
    assert "GATEWAY_REGIONS" not in health.text  # anonymous: no setting names, no paths
    details = httpx.get(f"{devserver.base_url}/health/details", headers=HEADERS, timeout=10)
    assert details.status_code == 503
    assert "GATEWAY_REGIONS" in details.json()["error"]["message"]
    response = post(devserver, "/v1/chat/completions")
    assert response.status_code == 500 and error_of(response)["code"] == "gateway_misconfigured"
    models = httpx.get(f"{devserver.base_url}/v1/models", headers=HEADERS, timeout=10)
    assert models.status_code == 500 and error_of(models)["code"] == "gateway_misconfigured"


def test_health_tells_anonymous_callers_only_the_status(sim, configure, devserver) -> None:
    """Anonymous callers get the status only; region and deployment names, quotas, live budgets
    and circuits need a function key (health/details)."""
    configure(sim)
    for region in sim.regions.values():
        region.fault("error", status=500, count=50)
    post(devserver, "/v1/chat/completions")
    health = httpx.get(f"{devserver.base_url}/health", timeout=10)  # no key
    assert health.status_code == 200 and health.headers["cache-control"] == "no-store"
    assert set(health.json()) == {"status", "alive", "time"}
    for name in ("eastus2", "swedencentral", "gpt-4o-prod", "tpm", "remaining", "circuit"):
        assert name not in health.text
    health = httpx.get(f"{devserver.base_url}/health/details", headers=HEADERS, timeout=10)
    assert health.status_code == 200 and health.headers["cache-control"] == "no-store"
    regions = health.json()["gateway"]["regions"]
    assert set(regions) == {"eastus2", "swedencentral"}
    assert all("circuit" in r for r in regions.values())
    assert time.time() - health.json()["time"] < 60


def test_health_is_degraded_while_a_region_is_down(sim, configure, devserver) -> None:
    configure(sim)
    sim.region("eastus2").fault("reset", duration_s=30)
    for _ in range(4):  # the outage opens eastus2's circuit; callers are served by swedencentral
        assert post(devserver, "/v1/chat/completions").status_code == 200
    assert httpx.get(f"{devserver.base_url}/health", timeout=10).json()["status"] == "degraded"
    health = httpx.get(f"{devserver.base_url}/health/details", headers=HEADERS, timeout=10).json()
    assert health["status"] == "degraded" and health["regions_down"] == ["eastus2"]
    assert health["gateway"]["regions"]["eastus2"]["circuit"]["state"] != "closed"
    sim.region("eastus2").reset()


def test_health_is_degraded_naming_an_exhausted_deployment(sim, configure, devserver) -> None:
    """Issue 10 finding 2: a deployment out after a huge retry-after is not "ok"."""
    configure(sim, priorities={"eastus2": 0, "swedencentral": 1})
    sim.region("eastus2").fault("throttle", retry_after_s=86400, count=1)
    assert post(devserver, "/v1/chat/completions").status_code == 200  # served by swedencentral
    assert httpx.get(f"{devserver.base_url}/health", timeout=10).json()["status"] == "degraded"
    details = httpx.get(f"{devserver.base_url}/health/details", headers=HEADERS, timeout=10).json()
    assert details["status"] == "degraded" and details["regions_down"] == []
    assert details["deployments_degraded"] == ["eastus2/gpt-4o-prod"]
