"""The openai SDK as callers use it: OpenAI, AsyncOpenAI, AzureOpenAI on dated routes and on
api_version="v1", and OpenAI on the Azure v1 API, each built the same way against the gateway and
against the simulator (only the endpoint and key header change)."""

from __future__ import annotations

import json

import openai
import pytest

from tests.frontdoor.conftest import API_VERSION, CHAT, EMBED, Target

PROMPT = [{"role": "user", "content": "Tell me about gateways"}]
TOOL = {
    "type": "function",
    "function": {
        "name": "lookup",
        "parameters": {
            "type": "object",
            "properties": {"query": {"type": "string"}},
            "required": ["query"],
            "additionalProperties": False,
        },
        "strict": True,
    },
}


def _clients(t: Target) -> dict[str, openai.OpenAI]:
    common = {"max_retries": 0, "timeout": 20, **t.openai_kwargs()}
    return {
        "openai": openai.OpenAI(base_url=t.openai_base_url, **common),
        "azure_v1_api": openai.OpenAI(base_url=t.azure_v1_base_url, **common),
        "azure_dated": openai.AzureOpenAI(
            azure_endpoint=t.azure_endpoint, api_version=API_VERSION, **common
        ),
        "azure_api_version_v1": openai.AzureOpenAI(
            azure_endpoint=t.azure_endpoint, api_version="v1", **common
        ),
    }


@pytest.mark.parametrize("kind", ["openai", "azure_v1_api", "azure_dated", "azure_api_version_v1"])
def test_chat_stream_tools_embeddings(target: Target, kind: str) -> None:
    client = _clients(target)[kind]
    reply = client.chat.completions.create(model=CHAT, messages=PROMPT, max_tokens=8)
    assert reply.choices[0].message.content
    assert reply.usage.completion_tokens <= 8

    chunks = list(
        client.chat.completions.create(
            model=CHAT,
            messages=PROMPT,
            max_tokens=6,
            n=2,
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    assert {c.choices[0].index for c in chunks if c.choices} == {0, 1}
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == 12

    called = client.chat.completions.create(
        model=CHAT, messages=PROMPT, tools=[TOOL], tool_choice="required"
    )
    call = called.choices[0].message.tool_calls[0]
    assert call.function.name == "lookup" and "query" in json.loads(call.function.arguments)

    emb = client.embeddings.create(model=EMBED, input=["one", "two", "three"])
    assert [d.index for d in emb.data] == [0, 1, 2] and len(emb.data[0].embedding) == 1536


async def test_async_openai(target: Target) -> None:
    client = openai.AsyncOpenAI(
        base_url=target.azure_v1_base_url, max_retries=0, timeout=20, **target.openai_kwargs()
    )
    async with client:
        reply = await client.chat.completions.create(model=CHAT, messages=PROMPT, max_tokens=5)
        assert reply.choices[0].message.content
        text = ""
        stream = await client.chat.completions.create(
            model=CHAT, messages=PROMPT, max_tokens=5, stream=True
        )
        async for chunk in stream:
            text += "".join(c.delta.content or "" for c in chunk.choices)
        assert text
    azure = openai.AsyncAzureOpenAI(
        azure_endpoint=target.azure_endpoint,
        api_version=API_VERSION,
        max_retries=0,
        timeout=20,
        **target.openai_kwargs(),
    )
    async with azure:
        emb = await azure.embeddings.create(model=EMBED, input="alpha")
        assert len(emb.data[0].embedding) == 1536


def test_structured_output_parse(target: Target) -> None:
    from pydantic import BaseModel

    class Answer(BaseModel):
        title: str
        score: int

    client = _clients(target)["azure_dated"]
    parsed = client.chat.completions.parse(model=CHAT, messages=PROMPT, response_format=Answer)
    answer = parsed.choices[0].message.parsed
    assert isinstance(answer, Answer) and isinstance(answer.score, int)
