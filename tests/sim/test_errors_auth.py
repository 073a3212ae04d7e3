"""Error shapes: 404s, api-version handling, 400s, and the 401/403 paths with keys and tokens."""

from __future__ import annotations

import time

import httpx
import openai
import pytest
from azure.identity import ManagedIdentityCredential, get_bearer_token_provider

from tests.fixtures.sim import SimHandle
from tests.sim.helpers import MESSAGES, SCOPE, azure_client, v1_client


def test_unknown_deployment_is_deployment_not_found(fresh: SimHandle) -> None:
    region = fresh.region("eastus2")
    with pytest.raises(openai.NotFoundError) as err:
        azure_client(region).chat.completions.create(model="nope", messages=MESSAGES)
    assert err.value.body["code"] == "DeploymentNotFound"
    assert err.value.body["message"].startswith(
        "The API deployment for this resource does not exist."
    )
    with pytest.raises(openai.NotFoundError) as err:
        v1_client(region).embeddings.create(model="nope", input="x")
    assert err.value.body["code"] == "DeploymentNotFound"
    stats = region.stats()
    assert stats["failures"]["not_found"] == 2 and stats["requests"] == 2 and stats["served"] == 0


@pytest.mark.parametrize("query", ["", "?api-version=2019-01-01", "?api-version=banana"])
def test_missing_or_unsupported_api_version_is_resource_not_found(
    fresh: SimHandle, query: str
) -> None:
    region = fresh.region("eastus2")
    r = httpx.post(
        f"{region.endpoint}/openai/deployments/gpt-4o-prod/chat/completions{query}",
        headers={"api-key": region.api_key},
        json={"messages": MESSAGES},
    )
    assert r.status_code == 404
    assert r.json() == {"error": {"code": "404", "message": "Resource not found"}}
    assert region.stats()["failures"]["not_found"] == 1


def test_dated_api_version_on_v1_path_is_bad_request(fresh: SimHandle) -> None:
    region = fresh.region("eastus2")
    r = httpx.post(
        f"{region.v1_base_url}chat/completions?api-version=2024-10-21",
        headers={"api-key": region.api_key},
        json={"model": "gpt-4o-prod", "messages": MESSAGES},
    )
    assert r.status_code == 400
    assert r.json()["error"]["code"] == "BadRequest"
    ok = httpx.post(
        f"{region.v1_base_url}chat/completions?api-version=preview",
        headers={"api-key": region.api_key},
        json={"model": "gpt-4o-prod", "messages": MESSAGES},
    )
    assert ok.status_code == 200


def test_bad_requests(fresh: SimHandle) -> None:
    region = fresh.region("eastus2")
    client = azure_client(region)
    with pytest.raises(openai.BadRequestError) as err:
        client.chat.completions.create(model="gpt-4o-prod", messages=[])
    assert err.value.body["code"] == "BadRequest" and err.value.body["param"] == "messages"
    with pytest.raises(openai.BadRequestError) as err:
        client.embeddings.create(model="gpt-4o-prod", input="x")
    assert err.value.body["code"] == "OperationNotSupported"
    with pytest.raises(openai.BadRequestError) as err:
        client.embeddings.create(model="embed-eastus2", input="x", dimensions=4000)
    assert err.value.body["param"] == "dimensions"
    r = httpx.post(
        f"{region.endpoint}/openai/deployments/gpt-4o-prod/chat/completions?api-version=2024-10-21",
        headers={"api-key": region.api_key, "content-type": "application/json"},
        content=b"{not json",
    )
    assert r.status_code == 400
    assert region.stats()["failures"]["bad_request"] == 4


def test_wrong_or_missing_key_is_401(fresh: SimHandle) -> None:
    region = fresh.region("eastus2")
    with pytest.raises(openai.AuthenticationError) as err:
        azure_client(region, api_key="wrong").chat.completions.create(
            model="gpt-4o-prod", messages=MESSAGES
        )
    assert err.value.body["code"] == "401"
    assert err.value.body["message"].startswith("Access denied due to invalid subscription key")
    with pytest.raises(openai.AuthenticationError):
        v1_client(region, api_key="wrong").chat.completions.create(
            model="gpt-4o-prod", messages=MESSAGES
        )
    r = httpx.post(
        f"{region.endpoint}/openai/deployments/gpt-4o-prod/chat/completions?api-version=2024-10-21",
        json={"messages": MESSAGES},
    )
    assert r.status_code == 401 and r.json()["error"]["code"] == "401"
    assert "x-ratelimit-remaining-requests" in r.headers
    stats = region.stats()
    assert (
        stats["failures"]["auth"] == 3
        and stats["deployments"]["gpt-4o-prod"]["failures"]["auth"] == 3
    )


def test_api_key_as_bearer_only_on_v1(fresh: SimHandle) -> None:
    region = fresh.region("eastus2")
    with pytest.raises(openai.AuthenticationError) as err:
        azure_client(region, api_key=None, azure_ad_token=region.api_key).chat.completions.create(
            model="gpt-4o-prod", messages=MESSAGES
        )
    assert err.value.body["message"].startswith(
        "Unauthorized. Access token is missing, invalid, audience is incorrect"
    )
    assert v1_client(region).chat.completions.create(
        model="gpt-4o-prod", messages=MESSAGES, max_tokens=2
    )


def test_forged_and_wrong_audience_tokens_are_401(identity_env: SimHandle) -> None:
    region = identity_env.region("eastus2")
    good = ManagedIdentityCredential().get_token(SCOPE).token
    head, payload, sig = good.split(".")
    forged = f"{head}.{payload}.{sig[:-2]}AA"
    with pytest.raises(openai.AuthenticationError):
        v1_client(region, api_key=forged).chat.completions.create(
            model="gpt-4o-prod", messages=MESSAGES
        )
    other = ManagedIdentityCredential().get_token("https://management.azure.com/.default").token
    with pytest.raises(openai.AuthenticationError) as err:
        v1_client(region, api_key=other).chat.completions.create(
            model="gpt-4o-prod", messages=MESSAGES
        )
    assert err.value.body["code"] == "401"
    assert region.stats()["failures"]["auth"] == 2


def test_expired_token_is_401(identity_env: SimHandle) -> None:
    region = identity_env.region("eastus2")
    # 3 s tokens: the first call must land inside the token's life, even on a busy machine.
    identity_env.identity.set_mode(ttl_s=3)
    token = ManagedIdentityCredential().get_token(SCOPE).token
    issued = time.monotonic()
    assert v1_client(region, api_key=token).chat.completions.create(
        model="gpt-4o-prod", messages=MESSAGES, max_tokens=1
    )
    time.sleep(max(0.0, 3.1 - (time.monotonic() - issued)))
    with pytest.raises(openai.AuthenticationError):
        v1_client(region, api_key=token).chat.completions.create(
            model="gpt-4o-prod", messages=MESSAGES
        )


def test_token_without_role_is_403_permission_denied(identity_env: SimHandle) -> None:
    region = identity_env.region("swedencentral")
    identity_env.identity.set_mode(without_role=True)
    provider = get_bearer_token_provider(ManagedIdentityCredential(), SCOPE)
    client = openai.AzureOpenAI(
        azure_endpoint=region.endpoint,
        api_version="2024-10-21",
        azure_ad_token_provider=provider,
        max_retries=0,
        timeout=5,
    )
    with pytest.raises(openai.PermissionDeniedError) as err:
        client.chat.completions.create(model="gpt4o-sweden", messages=MESSAGES)
    assert err.value.status_code == 403
    assert err.value.body["code"] == "PermissionDenied"
    message = err.value.body["message"]
    assert (
        "lacks the required data action `Microsoft.CognitiveServices/accounts/OpenAI/deployments/chat/completions/action`"
        in message
    )
    assert "`POST /openai/deployments/{deployment-id}/chat/completions`" in message
    with pytest.raises(openai.PermissionDeniedError) as err:
        client.embeddings.create(model="embed-sweden", input="x")
    assert "deployments/embeddings/action" in err.value.body["message"]
    assert region.stats()["failures"]["auth"] == 2
    assert identity_env.identity.stats()["tokens_without_role"] >= 1


def test_region_authorized_client_ids(sim_factory, monkeypatch: pytest.MonkeyPatch) -> None:
    regions = [
        {
            "name": "locked",
            "authorized_client_ids": ["someone-else"],
            "deployments": [{"name": "chat", "model": "gpt-4o"}],
        }
    ]
    sim = sim_factory(regions)
    for name, value in sim.identity.env().items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AZURE_CLIENT_ID", raising=False)
    client = v1_client(
        sim.region("locked"), api_key=get_bearer_token_provider(ManagedIdentityCredential(), SCOPE)
    )
    with pytest.raises(openai.PermissionDeniedError) as err:
        client.chat.completions.create(model="chat", messages=MESSAGES)
    assert "POST /openai/v1/chat/completions" in err.value.body["message"]
    allowed = v1_client(
        sim.region("locked"),
        api_key=get_bearer_token_provider(
            ManagedIdentityCredential(client_id="someone-else"), SCOPE
        ),
    )
    assert allowed.chat.completions.create(model="chat", messages=MESSAGES, max_tokens=1)
