"""The real openai SDK against the simulator: dated routes, v1 with a key, v1 and dated with Entra tokens."""

from __future__ import annotations

import math

import openai
import pytest
from azure.identity import (
    DefaultAzureCredential,
    ManagedIdentityCredential,
    get_bearer_token_provider,
)

from tests.fixtures.sim import SimHandle
from tests.sim.helpers import (
    MESSAGES,
    SCOPE,
    azure_client,
    chat_deployment,
    embed_deployment,
    v1_client,
)


def _check_chat(client: openai.OpenAI, model: str) -> None:
    reply = client.chat.completions.create(model=model, messages=MESSAGES, max_tokens=12)
    choice = reply.choices[0]
    assert choice.message.role == "assistant" and choice.message.content
    assert reply.usage.completion_tokens <= 12
    assert reply.usage.total_tokens == reply.usage.prompt_tokens + reply.usage.completion_tokens


def _check_stream(client: openai.OpenAI, model: str) -> None:
    stream = client.chat.completions.create(
        model=model,
        messages=MESSAGES,
        max_tokens=8,
        stream=True,
        stream_options={"include_usage": True},
    )
    text, finish, usage = "", None, None
    for chunk in stream:
        for choice in chunk.choices:
            text += choice.delta.content or ""
            finish = choice.finish_reason or finish
        usage = chunk.usage or usage
    assert text and finish == "length"
    assert usage is not None and usage.completion_tokens == 8


def _check_embeddings(client: openai.OpenAI, model: str) -> None:
    result = client.embeddings.create(model=model, input=["first", "second"])
    assert [d.index for d in result.data] == [0, 1]
    assert all(len(d.embedding) == 1536 for d in result.data)
    assert math.isclose(sum(v * v for v in result.data[0].embedding), 1.0, rel_tol=1e-4)


def test_azure_openai_dated_routes(fresh: SimHandle) -> None:
    region = fresh.region("eastus2")
    client = azure_client(region)
    _check_chat(client, "gpt-4o-prod")
    _check_stream(client, "gpt-4o-prod")
    _check_embeddings(client, "embed-eastus2")
    stats = region.stats()
    assert stats["requests"] == 3 and stats["served"] == 3 and stats["streamed"] == 1
    assert stats["deployments"]["gpt-4o-prod"]["served"] == 2
    assert stats["deployments"]["embed-eastus2"]["served"] == 1


@pytest.mark.parametrize("region_name", ["eastus2", "swedencentral"])
def test_openai_v1_with_api_key(fresh: SimHandle, region_name: str) -> None:
    region = fresh.region(region_name)
    client = v1_client(region)
    _check_chat(client, chat_deployment(region))
    _check_stream(client, chat_deployment(region))
    _check_embeddings(client, embed_deployment(region))
    assert {m.id for m in client.models.list()} == set(region.deployments)
    assert region.stats()["served"] == 4


def test_v1_with_managed_identity_token_provider(identity_env: SimHandle) -> None:
    region = identity_env.region("eastus2")
    provider = get_bearer_token_provider(ManagedIdentityCredential(), SCOPE)
    client = v1_client(region, api_key=provider)
    _check_chat(client, "gpt-4o-prod")
    _check_stream(client, "gpt-4o-prod")
    _check_embeddings(client, "embed-eastus2")
    assert identity_env.identity.stats()["tokens_issued"] >= 1
    assert region.stats()["failures"]["auth"] == 0


def test_dated_routes_with_default_azure_credential(identity_env: SimHandle) -> None:
    region = identity_env.region("swedencentral")
    provider = get_bearer_token_provider(DefaultAzureCredential(), SCOPE)
    client = openai.AzureOpenAI(
        azure_endpoint=region.endpoint,
        api_version="2024-10-21",
        azure_ad_token_provider=provider,
        max_retries=0,
        timeout=5,
    )
    _check_chat(client, "gpt4o-sweden")
    _check_stream(client, "gpt4o-sweden")
    _check_embeddings(client, "embed-sweden")


async def test_async_clients_with_aio_managed_identity(identity_env: SimHandle) -> None:
    from azure.identity.aio import ManagedIdentityCredential as AioManagedIdentityCredential
    from azure.identity.aio import get_bearer_token_provider as aio_provider

    region = identity_env.region("eastus2")
    async with AioManagedIdentityCredential() as credential:
        provider = aio_provider(credential, SCOPE)
        client = openai.AsyncOpenAI(
            base_url=region.v1_base_url, api_key=provider, max_retries=0, timeout=5
        )
        reply = await client.chat.completions.create(
            model="gpt-4o-prod", messages=MESSAGES, max_tokens=5
        )
        assert reply.usage.completion_tokens == 5
        stream = await client.chat.completions.create(
            model="gpt-4o-prod", messages=MESSAGES, max_tokens=3, stream=True
        )
        pieces = [
            c.choices[0].delta.content
            async for c in stream
            if c.choices and c.choices[0].delta.content
        ]
        assert len(pieces) == 3
        azure = openai.AsyncAzureOpenAI(
            azure_endpoint=region.endpoint,
            api_version="2024-10-21",
            azure_ad_token_provider=provider,
            max_retries=0,
            timeout=5,
        )
        emb = await azure.embeddings.create(model="embed-eastus2", input="hello")
        assert len(emb.data[0].embedding) == 1536
        await client.close()
        await azure.close()
    assert region.stats()["served"] == 3
