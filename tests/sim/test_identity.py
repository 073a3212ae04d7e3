"""The local managed-identity endpoint: protocol, refusal, roleless tokens and short-lived tokens."""

from __future__ import annotations

import time

import httpx
import openai
import pytest
from azure.core.exceptions import ClientAuthenticationError
from azure.identity import ManagedIdentityCredential, get_bearer_token_provider

from tests.fixtures.sim import SimHandle
from tests.sim.helpers import MESSAGES, SCOPE, v1_client


def test_protocol_shape(fresh: SimHandle) -> None:
    ident = fresh.identity
    params = {
        "api-version": "2019-08-01",
        "resource": "https://cognitiveservices.azure.com",
        "client_id": "abc",
    }
    r = httpx.get(ident.endpoint, params=params, headers={"X-IDENTITY-HEADER": ident.header})
    assert r.status_code == 200
    body = r.json()
    assert set(body) == {"access_token", "expires_on", "resource", "token_type", "client_id"}
    assert body["token_type"] == "Bearer" and body["client_id"] == "abc"
    assert isinstance(body["expires_on"], str) and int(body["expires_on"]) > time.time() + 3000
    assert httpx.get(ident.endpoint, params=params).status_code == 401
    assert (
        httpx.get(
            ident.endpoint, params={"resource": "x"}, headers={"X-IDENTITY-HEADER": ident.header}
        ).status_code
        == 400
    )
    stats = ident.stats()
    assert stats["tokens_issued"] == 1 and stats["bad_requests"] == 2 and stats["requests"] == 3


def test_refuse_mode(identity_env: SimHandle) -> None:
    identity_env.identity.set_mode(refuse=True)
    with pytest.raises(ClientAuthenticationError):
        ManagedIdentityCredential().get_token(SCOPE)
    assert identity_env.identity.stats()["refused"] >= 1
    identity_env.identity.set_mode()
    assert ManagedIdentityCredential().get_token(SCOPE).token


def test_refuse_mode_surfaces_through_the_token_provider(identity_env: SimHandle) -> None:
    identity_env.identity.set_mode(refuse=True)
    client = v1_client(
        identity_env.region("eastus2"),
        api_key=get_bearer_token_provider(ManagedIdentityCredential(), SCOPE),
    )
    with pytest.raises(ClientAuthenticationError):
        client.chat.completions.create(model="gpt-4o-prod", messages=MESSAGES)
    assert identity_env.region("eastus2").stats()["requests"] == 0


def test_short_lived_tokens_are_refreshed(identity_env: SimHandle) -> None:
    identity_env.identity.set_mode(
        ttl_s=30
    )  # under azure-identity's 300 s refresh margin: a fresh token each call
    client = v1_client(
        identity_env.region("eastus2"),
        api_key=get_bearer_token_provider(ManagedIdentityCredential(), SCOPE),
    )
    for _ in range(3):
        assert client.chat.completions.create(model="gpt-4o-prod", messages=MESSAGES, max_tokens=1)
    assert identity_env.identity.stats()["tokens_issued"] == 3
    assert identity_env.region("eastus2").stats()["served"] == 3


def test_long_lived_tokens_are_cached(identity_env: SimHandle) -> None:
    client = v1_client(
        identity_env.region("eastus2"),
        api_key=get_bearer_token_provider(ManagedIdentityCredential(), SCOPE),
    )
    for _ in range(3):
        assert client.chat.completions.create(model="gpt-4o-prod", messages=MESSAGES, max_tokens=1)
    assert identity_env.identity.stats()["tokens_issued"] == 1


def test_without_role_then_back(identity_env: SimHandle) -> None:
    region = identity_env.region("eastus2")
    identity_env.identity.set_mode(without_role=True, ttl_s=10)
    client = v1_client(
        region, api_key=get_bearer_token_provider(ManagedIdentityCredential(), SCOPE)
    )
    with pytest.raises(openai.PermissionDeniedError):
        client.chat.completions.create(model="gpt-4o-prod", messages=MESSAGES)
    identity_env.identity.set_mode(ttl_s=10)
    assert client.chat.completions.create(model="gpt-4o-prod", messages=MESSAGES, max_tokens=1)
