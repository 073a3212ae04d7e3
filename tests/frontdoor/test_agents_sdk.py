"""The OpenAI Agents SDK (``openai-agents``) through the gateway: a small agent with one function
tool, run by ``Runner`` on the Responses API (the SDK's default model class,
``OpenAIResponsesModel``) with only the endpoint changed: an ``AsyncOpenAI`` whose ``base_url`` is
the gateway's ``/api/openai/v1/`` or ``/api/v1/``, against the dev server and the simulator.

The round trip is the SDK's own: the model answers a ``function_call`` item, the SDK runs the
tool and sends its ``function_call_output`` back, either with the whole conversation as input (the
SDK's default) or as a continuation (``auto_previous_response_id=True``: ``previous_response_id``,
which the gateway must send to the region that stored the first response).

Tracing is off (``RunConfig(tracing_disabled=True)`` and ``OPENAI_AGENTS_DISABLE_TRACING``): the
SDK would otherwise export traces to OpenAI's servers."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import openai
import pytest

from tests.frontdoor.conftest import CHAT, FUNCTION_KEY, FrontDoor, start_frontdoor

agents = pytest.importorskip("agents", reason="openai-agents is not installed")

ALIAS = "gpt-4o"
CITY = "Oslo"


@pytest.fixture(scope="module")
def door(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FrontDoor]:
    with pytest.MonkeyPatch.context() as monkeypatch:
        monkeypatch.setenv("OPENAI_AGENTS_DISABLE_TRACING", "1")  # read when tracing first starts
        front = start_frontdoor(tmp_path_factory.mktemp("agents"), monkeypatch)
        try:
            yield front
        finally:
            front.server.stop()
            front.sim.stop()


@pytest.fixture
def fresh(door: FrontDoor) -> FrontDoor:
    for region in door.sim.regions.values():
        region.reset()
    return door


def _base_url(door: FrontDoor, front: str) -> str:
    return door.server.base_url + ("/openai/v1/" if front == "azure" else "/v1/")


def _async_client(door: FrontDoor, front: str) -> openai.AsyncOpenAI:
    """What a user of the SDK builds: only ``base_url`` (and the gateway's key header) differ."""
    return openai.AsyncOpenAI(
        base_url=_base_url(door, front),
        api_key="unused",
        default_headers={"x-functions-key": FUNCTION_KEY},
        max_retries=0,
        timeout=30,
    )


def _agent(client: openai.AsyncOpenAI, model: str, calls: list[str]) -> Any:
    @agents.function_tool
    def get_weather(city: str) -> str:
        """The weather in a city."""
        calls.append(city)
        return f"sunny in {city}"

    return agents.Agent(
        name="weather",
        instructions="Answer questions about the weather; use the tool.",
        tools=[get_weather],
        model=agents.OpenAIResponsesModel(model=model, openai_client=client),
    )


def _run(door: FrontDoor, front: str, model: str, calls: list[str], chained: bool) -> Any:
    """One agent run on a client of its own, in one event loop."""

    async def go() -> Any:
        async with _async_client(door, front) as client:
            return await agents.Runner.run(
                _agent(client, model, calls),
                f"What is the weather in get_weather {CITY}?",
                run_config=agents.RunConfig(tracing_disabled=True),
                auto_previous_response_id=chained,
            )

    return asyncio.run(go())


@pytest.mark.parametrize("chained", [False, True], ids=["full-input", "previous-response-id"])
@pytest.mark.parametrize(("front", "model"), [("azure", CHAT), ("openai", ALIAS)])
def test_agent_with_one_function_tool(
    fresh: FrontDoor, front: str, model: str, chained: bool
) -> None:
    calls: list[str] = []
    result = _run(fresh, front, model, calls, chained)

    # the model called the tool once (the simulator makes up the arguments, valid per the schema)
    assert len(calls) == 1 and isinstance(calls[0], str)
    assert isinstance(result.final_output, str) and result.final_output
    kinds = [item.type for item in result.new_items]
    assert kinds == ["tool_call_item", "tool_call_output_item", "message_output_item"]
    first, second = result.raw_responses
    assert first.response_id and second.response_id
    assert first.response_id.startswith("resp_") and second.response_id.startswith("resp_")
    assert sum(r.usage.total_tokens for r in result.raw_responses) == (
        result.context_wrapper.usage.total_tokens
    )

    # Both turns are stored where they were made, and the gateway knows where: the second names
    # the first when the run chained them (served by the region holding the first).
    sync = openai.OpenAI(
        base_url=_base_url(fresh, front),
        api_key="unused",
        default_headers={"x-functions-key": FUNCTION_KEY},
        max_retries=0,
        timeout=30,
    )
    stored = sync.responses.retrieve(second.response_id)
    assert stored.output_text == result.final_output
    assert stored.previous_response_id == (first.response_id if chained else None)
    items = sync.responses.input_items.list(second.response_id).data
    assert [i.type for i in items] == (
        ["function_call_output"]
        if chained
        else ["function_call_output", "function_call", "message"]  # newest first
    )


def test_streamed_agent_run_through_the_gateway(fresh: FrontDoor) -> None:
    """``Runner.run_streamed``: the Responses event stream relayed by the gateway, text deltas
    as they come, the tool run in between."""
    calls: list[str] = []

    async def go() -> tuple[Any, list[str]]:
        async with _async_client(fresh, "azure") as client:
            run = agents.Runner.run_streamed(
                _agent(client, CHAT, calls),
                f"What is the weather in get_weather {CITY}?",
                run_config=agents.RunConfig(tracing_disabled=True),
            )
            deltas: list[str] = []
            async for event in run.stream_events():
                if event.type == "raw_response_event" and event.data.type == (
                    "response.output_text.delta"
                ):
                    deltas.append(event.data.delta)
            return run, deltas

    run, deltas = asyncio.run(go())
    assert len(calls) == 1
    assert deltas and "".join(deltas) == run.final_output
