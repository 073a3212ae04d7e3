"""The Azure-shaped routes themselves: api-version handling as Azure answers it, the path's name as
an alias or a deployment name, and errors in Azure's shape (the content filter's innererror),
inspected by the same code against the gateway and the simulator."""

from __future__ import annotations

import httpx
import openai
import pytest

from tests.frontdoor.conftest import API_VERSION, CHAT, FUNCTION_KEY, FrontDoor, Target

HEADERS = {"x-functions-key": FUNCTION_KEY}
BODY = {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 3}


def _post(door: FrontDoor, path: str, **kwargs) -> httpx.Response:
    return httpx.post(f"{door.server.base_url}{path}", headers=HEADERS, timeout=20, **kwargs)


@pytest.mark.parametrize("version", [None, "2099-01-01", "latest"])
def test_deployment_route_without_a_known_api_version_is_azures_404(
    frontdoor: FrontDoor, version
) -> None:
    params = {} if version is None else {"api-version": version}
    for base in (frontdoor.server.base_url, frontdoor.sim.region("eastus2").endpoint):
        response = httpx.post(
            f"{base}/openai/deployments/{CHAT}/chat/completions",
            params=params,
            json=BODY,
            headers={**HEADERS, "api-key": frontdoor.sim.region("eastus2").api_key},
            timeout=20,
        )
        assert response.status_code == 404, base
        assert response.json()["error"] == {"code": "404", "message": "Resource not found"}


@pytest.mark.parametrize("version", ["2024-02-01", "2024-10-21", "2025-04-01-preview", "v1"])
def test_deployment_route_accepts_azures_versions(frontdoor: FrontDoor, version: str) -> None:
    response = _post(
        frontdoor,
        f"/openai/deployments/{CHAT}/chat/completions",
        params={"api-version": version},
        json=BODY,
    )
    assert response.status_code == 200, response.text
    assert response.json()["choices"][0]["message"]["content"]


def test_v1_route_refuses_a_dated_api_version(frontdoor: FrontDoor) -> None:
    response = _post(
        frontdoor, "/openai/v1/chat/completions", params={"api-version": API_VERSION}, json=BODY
    )
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "BadRequest"
    assert "api-version" in response.json()["error"]["message"]


@pytest.mark.parametrize(
    ("name", "deployment"),
    [(name, ("gpt-4o-prod", "gpt4o-sweden")) for name in ("gpt-4o", "gpt-4o-prod", "gpt4o-sweden")],
)
def test_the_path_names_an_alias_or_a_deployment(frontdoor: FrontDoor, name, deployment) -> None:
    """A deployment name (of any region) means the alias it serves; the gateway then routes."""
    response = _post(
        frontdoor,
        f"/openai/deployments/{name}/chat/completions",
        params={"api-version": API_VERSION},
        json={**BODY, "model": "ignored: the path names the deployment"},
    )
    assert response.status_code == 200, response.text
    # both regions serve gpt-4o at the same priority: either deployment may answer
    assert response.headers["x-gateway-deployment"] in deployment


def test_unknown_deployment_is_azures_deployment_not_found(frontdoor: FrontDoor) -> None:
    response = _post(
        frontdoor,
        "/openai/deployments/nope/embeddings",
        params={"api-version": API_VERSION},
        json={"input": "x"},
    )
    assert response.status_code == 404
    error = response.json()["error"]
    assert error["code"] == "DeploymentNotFound" and error["gateway_code"] == "model_not_found"
    assert "gpt-4o" in error["known_models"] and error["correlation_id"]


def test_malformed_body_is_a_bad_request_in_azures_shape(frontdoor: FrontDoor) -> None:
    response = _post(
        frontdoor,
        f"/openai/deployments/{CHAT}/chat/completions",
        params={"api-version": API_VERSION},
        content=b"{not json",
    )
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "BadRequest" and error["gateway_code"] == "invalid_json"


def _azure(t: Target) -> openai.AzureOpenAI:
    return openai.AzureOpenAI(
        azure_endpoint=t.azure_endpoint,
        api_version=API_VERSION,
        max_retries=0,
        timeout=20,
        **t.openai_kwargs(),
    )


def test_content_filter_innererror_reads_the_same_on_both(target: Target) -> None:
    """Code written against Azure's filter results keeps working through the gateway."""
    with pytest.raises(openai.BadRequestError) as err:
        _azure(target).chat.completions.create(
            model=CHAT, messages=[{"role": "user", "content": "SIM_FILTER_PROMPT please"}]
        )
    exc = err.value
    assert exc.code == "content_filter" and exc.param == "prompt"
    inner = exc.body["innererror"]
    assert inner["code"] == "ResponsibleAIPolicyViolation"
    result = inner["content_filter_result"]
    assert result["violence"] == {"filtered": True, "severity": "high"}
    assert result["hate"]["filtered"] is False


def test_filtered_completion_passes_through(target: Target) -> None:
    reply = _azure(target).chat.completions.create(
        model=CHAT, messages=[{"role": "user", "content": "SIM_FILTER_COMPLETION"}]
    )
    assert reply.choices[0].finish_reason == "content_filter"


def test_throttled_everywhere_is_azures_429(frontdoor: FrontDoor) -> None:
    for region in frontdoor.sim.regions.values():
        region.fault("throttle", retry_after_s=30, count=5)
    try:
        with pytest.raises(openai.RateLimitError) as err:
            _azure(frontdoor.gateway).chat.completions.create(
                model="gpt-4o", messages=[{"role": "user", "content": "hi"}]
            )
        assert err.value.code == "429" and err.value.body["gateway_code"] == "all_throttled"
        assert int(err.value.response.headers["retry-after"]) >= 1
    finally:
        for region in frontdoor.sim.regions.values():
            region.reset()
        frontdoor.server.run(_forget_cooldowns())


async def _forget_cooldowns() -> None:
    from shared import runtime

    await runtime.aclose()
    runtime.reset()


def test_v1_models_lists_the_aliases(frontdoor: FrontDoor) -> None:
    client = openai.OpenAI(
        base_url=frontdoor.gateway.azure_v1_base_url,
        max_retries=0,
        **frontdoor.gateway.openai_kwargs(),
    )
    assert {m.id for m in client.models.list()} == {"gpt-4o", "text-embedding-3-small"}


def test_openapi_describes_the_azure_routes(frontdoor: FrontDoor) -> None:
    doc = httpx.get(f"{frontdoor.server.base_url}/v1/openapi.json", timeout=20).json()
    paths = doc["paths"]
    dated = paths["/openai/deployments/{deployment}/chat/completions"]["post"]
    assert {p["name"] for p in dated["parameters"]} == {"deployment", "api-version"}
    assert "/openai/deployments/{deployment}/embeddings" in paths
    assert {"/openai/v1/chat/completions", "/openai/v1/embeddings", "/openai/v1/models"} <= set(
        paths
    )
    assert "AzureErrorResponse" in doc["components"]["schemas"]
