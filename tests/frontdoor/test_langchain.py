"""langchain-openai against the gateway and the simulator: ChatOpenAI and AzureChatOpenAI (invoke,
stream, batch, bind_tools, with_structured_output), OpenAIEmbeddings and AzureOpenAIEmbeddings.
Each class is built the same way for both targets; only the endpoint and key header change.

Offline: the embeddings classes chunk inputs with tiktoken by default, which downloads its encoding
file; ``check_embedding_ctx_length=False`` (langchain-openai's documented switch) sends the texts
as they are, so nothing is downloaded."""

from __future__ import annotations

import pytest
from langchain_core.messages import AIMessage
from langchain_core.tools import tool
from langchain_openai import (
    AzureChatOpenAI,
    AzureOpenAIEmbeddings,
    ChatOpenAI,
    OpenAIEmbeddings,
)
from pydantic import BaseModel, Field

from tests.frontdoor.conftest import API_VERSION, CHAT, EMBED, Target


@tool
def get_weather(city: str) -> str:
    """The weather in a city."""
    return f"sunny in {city}"


class Forecast(BaseModel):
    """A forecast."""

    city: str = Field(description="the city")
    degrees: int = Field(description="temperature in celsius")


def _chat(kind: str, t: Target):
    common = {"max_retries": 0, "timeout": 20, "default_headers": t.headers, "api_key": t.api_key}
    if kind == "ChatOpenAI":
        return ChatOpenAI(model=CHAT, base_url=t.openai_base_url, **common)
    return AzureChatOpenAI(
        azure_endpoint=t.azure_endpoint,
        azure_deployment=CHAT,
        api_version=API_VERSION,
        **common,
    )


@pytest.mark.parametrize("kind", ["ChatOpenAI", "AzureChatOpenAI"])
def test_invoke_stream_batch(target: Target, kind: str) -> None:
    llm = _chat(kind, target)
    reply = llm.invoke("Tell me about gateways")
    assert isinstance(reply, AIMessage) and reply.content
    assert reply.usage_metadata and reply.usage_metadata["output_tokens"] > 0
    pieces = [chunk.content for chunk in llm.stream("Tell me about gateways")]
    assert len(pieces) > 3 and "".join(pieces)
    answers = llm.batch(["one", "two", "three"])
    assert len(answers) == 3 and all(a.content for a in answers)


@pytest.mark.parametrize("kind", ["ChatOpenAI", "AzureChatOpenAI"])
def test_bind_tools_and_stream_tool_calls(target: Target, kind: str) -> None:
    llm = _chat(kind, target).bind_tools([get_weather])
    reply = llm.invoke("What is the weather in Paris? use get_weather")
    assert [c["name"] for c in reply.tool_calls] == ["get_weather"]
    assert isinstance(reply.tool_calls[0]["args"]["city"], str)
    merged = None
    for chunk in llm.stream("use get_weather"):
        merged = chunk if merged is None else merged + chunk
    assert merged is not None and [c["name"] for c in merged.tool_calls] == ["get_weather"]
    assert "city" in merged.tool_calls[0]["args"]


@pytest.mark.parametrize("kind", ["ChatOpenAI", "AzureChatOpenAI"])
@pytest.mark.parametrize("method", ["json_schema", "function_calling"])
def test_with_structured_output(target: Target, kind: str, method: str) -> None:
    structured = _chat(kind, target).with_structured_output(Forecast, method=method, strict=True)
    forecast = structured.invoke("Forecast for Oslo")
    assert isinstance(forecast, Forecast) and isinstance(forecast.degrees, int)


@pytest.mark.parametrize("kind", ["OpenAIEmbeddings", "AzureOpenAIEmbeddings"])
def test_embeddings(target: Target, kind: str) -> None:
    common = {
        "max_retries": 0,
        "default_headers": target.headers,
        "api_key": target.api_key,
        "check_embedding_ctx_length": False,  # offline: no tiktoken download
    }
    if kind == "OpenAIEmbeddings":
        emb = OpenAIEmbeddings(model=EMBED, base_url=target.openai_base_url, **common)
    else:
        emb = AzureOpenAIEmbeddings(
            azure_endpoint=target.azure_endpoint,
            azure_deployment=EMBED,
            api_version=API_VERSION,
            **common,
        )
    vectors = emb.embed_documents(["alpha", "beta", "gamma"])
    assert len(vectors) == 3 and all(len(v) == 1536 for v in vectors)
    assert emb.embed_query("alpha") == pytest.approx(vectors[0], rel=1e-5)
