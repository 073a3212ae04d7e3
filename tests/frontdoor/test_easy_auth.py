"""Entra ID callers through App Service Authentication (Easy Auth): the caller identity comes from
``x-ms-client-principal``'s claims; with GATEWAY_HTTP_AUTH=easy_auth the model routes are indexed
anonymous (Easy Auth authenticates in front of them) and refuse a request without a principal."""

from __future__ import annotations

import base64
import json
import logging
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest
from starlette.requests import Request

from shared.api import easy_auth_principal, request_info
from tests.frontdoor.conftest import API_VERSION, CHAT, FrontDoor, start_frontdoor

APP_ID = "5e0f0a4b-1c2d-4e5f-8a9b-0c1d2e3f4a5b"
OBJECT_ID = "9a8b7c6d-5e4f-4a3b-9c2d-1e0f9a8b7c6d"
OID_URI = "http://schemas.microsoft.com/identity/claims/objectidentifier"


def principal_header(claims: list[dict[str, str]]) -> str:
    """What Easy Auth sends: base64 of ``{"auth_typ", "claims", "name_typ", "role_typ"}``."""
    doc = {
        "auth_typ": "aad",
        "claims": claims,
        "name_typ": "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/name",
        "role_typ": "http://schemas.microsoft.com/ws/2008/06/identity/claims/role",
    }
    return base64.b64encode(json.dumps(doc).encode()).decode()


MANAGED_IDENTITY = principal_header(
    [
        {"typ": "aud", "val": "api://gateway"},
        {"typ": "appid", "val": APP_ID},
        {"typ": OID_URI, "val": OBJECT_ID},
        {"typ": "name", "val": "orders-service"},
    ]
)


@pytest.mark.parametrize(
    ("claims", "expected"),
    [
        ([{"typ": "appid", "val": APP_ID}, {"typ": OID_URI, "val": OBJECT_ID}], APP_ID),
        ([{"typ": "azp", "val": APP_ID}, {"typ": "oid", "val": OBJECT_ID}], APP_ID),
        ([{"typ": OID_URI, "val": OBJECT_ID}], OBJECT_ID),
        ([{"typ": "name", "val": "someone"}], "someone"),
        ([{"typ": "aud", "val": "x"}], None),
    ],
)
def test_principal_claims(claims, expected) -> None:
    principal = easy_auth_principal(principal_header(claims))
    assert (principal.label if principal else None) == expected


@pytest.mark.parametrize("header", ["", "%%%not-base64", base64.b64encode(b"[1]").decode()])
def test_unreadable_principal_is_ignored(header: str) -> None:
    assert easy_auth_principal(header) is None


def _request(headers: dict[str, str]) -> Request:
    raw = [(k.lower().encode(), v.encode()) for k, v in headers.items()]
    return Request(
        {"type": "http", "method": "POST", "path": "/", "headers": raw, "query_string": b""}
    )


def test_caller_is_the_principal_only_while_platform_auth_is_on(monkeypatch) -> None:
    from shared.settings import load_gateway_settings

    regions = '[{"name": "r", "endpoint": "https://r.openai.azure.com", "models": {"m": {"deployment": "d", "tpm": 1000}}}]'

    class Services:
        def __init__(self, **env: str) -> None:
            self._s = load_gateway_settings({"GATEWAY_REGIONS": regions, **env})

        def settings(self):
            return self._s

    request = _request({"x-ms-client-principal": MANAGED_IDENTITY, "x-functions-key": "k"})
    on = Services(GATEWAY_HTTP_AUTH="easy_auth", WEBSITE_AUTH_ENABLED="True")
    assert request_info(request, on).caller == f"principal:{APP_ID}"
    for untrusted in (Services(), Services(GATEWAY_HTTP_AUTH="easy_auth")):
        assert request_info(request, untrusted).caller.startswith("key:")


def _bindings(env: dict[str, str]) -> dict[str, str]:
    code = (
        "import json, function_app\n"
        "out = {}\n"
        "for f in function_app.app.get_functions():\n"
        "    for b in f.get_raw_bindings():\n"
        "        b = json.loads(b)\n"
        "        if b['type'] == 'httpTrigger': out[f.get_function_name()] = b['authLevel'].lower()\n"
        "print(json.dumps(out))"
    )
    root = Path(__file__).resolve().parents[2]
    import os

    full = {k: v for k, v in os.environ.items() if k != "GATEWAY_HTTP_AUTH"} | env
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=root, env=full, check=True
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


MODEL_ROUTES = {
    "chat_completions",
    "embeddings",
    "list_models",
    "azure_chat_completions",
    "azure_embeddings",
    "azure_v1_chat_completions",
    "azure_v1_embeddings",
    "azure_v1_models",
}


def test_auth_levels_follow_the_setting() -> None:
    default = _bindings({})
    assert {default[name] for name in MODEL_ROUTES} == {"function"}
    easy = _bindings({"GATEWAY_HTTP_AUTH": "easy_auth"})
    assert {easy[name] for name in MODEL_ROUTES} == {"anonymous"}
    # jobs keep function keys; health and the OpenAPI document stay anonymous
    assert easy["submit_job"] == easy["job_status"] == "function"
    assert easy["health"] == easy["openapi"] == "anonymous"


@pytest.fixture(scope="module")
def easy_door(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FrontDoor]:
    with pytest.MonkeyPatch.context() as monkeypatch:
        monkeypatch.setenv("WEBSITE_AUTH_ENABLED", "True")  # App Service sets it when auth is on
        door = start_frontdoor(
            tmp_path_factory.mktemp("easyauth"), monkeypatch, http_auth="easy_auth"
        )
        try:
            yield door
        finally:
            door.server.stop()
            door.sim.stop()


def test_without_a_principal_the_model_routes_refuse(easy_door: FrontDoor) -> None:
    base = easy_door.server.base_url
    body = {"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]}
    plain = httpx.post(f"{base}/v1/chat/completions", json=body, timeout=20)
    assert plain.status_code == 401 and plain.json()["error"]["code"] == "unauthenticated"
    azure = httpx.post(
        f"{base}/openai/deployments/gpt-4o/chat/completions",
        params={"api-version": API_VERSION},
        json=body,
        timeout=20,
    )
    assert azure.status_code == 401
    assert azure.json()["error"]["code"] == "401"
    assert azure.json()["error"]["gateway_code"] == "unauthenticated"
    models = httpx.get(f"{base}/openai/v1/models", timeout=20)
    assert models.status_code == 401
    assert httpx.get(f"{base}/health", timeout=20).status_code == 200


def test_a_bare_principal_id_header_is_not_a_caller(easy_door: FrontDoor) -> None:
    base = easy_door.server.base_url
    body = {"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]}
    bare = httpx.post(
        f"{base}/v1/chat/completions",
        json=body,
        headers={"x-ms-client-principal-id": OBJECT_ID, "x-ms-client-principal-name": "x"},
        timeout=20,
    )
    assert bare.status_code == 401 and bare.json()["error"]["code"] == "unauthenticated"


def test_a_principal_is_served_and_accounted(
    easy_door: FrontDoor, caplog: pytest.LogCaptureFixture
) -> None:
    client = openai.AzureOpenAI(
        azure_endpoint=easy_door.server.base_url,
        api_version=API_VERSION,
        api_key="unused",  # Easy Auth validated the caller's token; the gateway reads its claims
        default_headers={"x-ms-client-principal": MANAGED_IDENTITY},
        max_retries=0,
    )
    with caplog.at_level(logging.INFO, logger="shared.aoai"):
        reply = client.chat.completions.create(
            model=CHAT, messages=[{"role": "user", "content": "hi"}], max_tokens=3
        )
    assert reply.choices[0].message.content
    calls = [r for r in caplog.records if getattr(r, "event", None) == "aoai_call"]
    assert calls and calls[-1].caller == f"principal:{APP_ID}"


def test_easy_auth_mode_refuses_to_serve_while_app_service_authentication_is_off(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    """On an app or slot where authentication is off, the model routes are anonymous to the host
    and anyone could send the principal headers: the gateway answers 503 naming the setting."""
    with pytest.MonkeyPatch.context() as monkeypatch:
        monkeypatch.delenv("WEBSITE_AUTH_ENABLED", raising=False)
        door = start_frontdoor(
            tmp_path_factory.mktemp("authoff"), monkeypatch, http_auth="easy_auth"
        )
        try:
            body = {"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]}
            refused = httpx.post(
                f"{door.server.base_url}/v1/chat/completions",
                json=body,
                headers={"x-ms-client-principal": MANAGED_IDENTITY},
                timeout=20,
            )
            assert refused.status_code == 503
            error = refused.json()["error"]
            assert (
                error["code"] == "easy_auth_not_enabled"
                and "WEBSITE_AUTH_ENABLED" in error["message"]
            )
            assert door.sim.region("eastus2").stats()["requests"] == 0
        finally:
            door.server.stop()
            door.sim.stop()
