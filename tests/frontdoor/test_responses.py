"""The Responses API through the gateway with the real openai SDK (``OpenAI(base_url=...)`` on
``/api/v1`` and ``/api/openai/v1``) against the dev server and the simulator, whose regions each
store their own responses (an id from one region is a 404 in the other, as in Azure).

Affinity: a conversation stays on the region that stores it while the router prefers another;
the holding region throttled answers 429 (never another region's 404); the holding region down
answers 503 ``response_region_unavailable`` naming it; another caller's id is a 404."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import openai
import pytest

from tests.frontdoor.conftest import CHAT, FUNCTION_KEY, FrontDoor, start_frontdoor

ALIAS = "gpt-4o"
EVENT_ORDER = [
    "response.created",
    "response.in_progress",
    "response.output_item.added",
    "response.content_part.added",
    "response.output_text.delta",
    "response.output_text.done",
    "response.content_part.done",
    "response.output_item.done",
    "response.completed",
]


@pytest.fixture(scope="module")
def door(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FrontDoor]:
    with pytest.MonkeyPatch.context() as monkeypatch:
        front = start_frontdoor(tmp_path_factory.mktemp("responses"), monkeypatch)
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


def _client(door: FrontDoor, front: str = "azure", key: str = FUNCTION_KEY) -> openai.OpenAI:
    base = door.server.base_url + ("/openai/v1/" if front == "azure" else "/v1/")
    return openai.OpenAI(
        base_url=base,
        api_key="unused",
        default_headers={"x-functions-key": key},
        max_retries=0,
        timeout=30,
    )


def _create(client: openai.OpenAI, **kwargs: Any) -> tuple[Any, str]:
    raw = client.responses.with_raw_response.create(**kwargs)
    return raw.parse(), raw.headers["x-gateway-region"]


def _sim_client(door: FrontDoor, region: str) -> openai.OpenAI:
    handle = door.sim.region(region)
    return openai.OpenAI(base_url=handle.v1_base_url, api_key=handle.api_key, max_retries=0)


def _until(check: Any, what: str, seconds: float = 30.0) -> Any:
    deadline = time.monotonic() + seconds
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.2)


@pytest.mark.parametrize(("front", "model"), [("azure", CHAT), ("openai", ALIAS)])
def test_create_retrieve_input_items_delete(fresh: FrontDoor, front: str, model: str) -> None:
    client = _client(fresh, front)
    first = client.responses.create(model=model, input="Tell me about gateways")
    assert first.id.startswith("resp_") and first.status == "completed" and first.output_text
    usage = first.usage
    assert usage is not None and usage.total_tokens == usage.input_tokens + usage.output_tokens
    assert usage.input_tokens_details.cached_tokens == 0
    assert usage.output_tokens_details.reasoning_tokens == 0

    assert client.responses.retrieve(first.id).output_text == first.output_text
    second = client.responses.create(
        model=model, input="And what about regions?", previous_response_id=first.id
    )
    assert second.previous_response_id == first.id
    items = client.responses.input_items.list(second.id)
    assert [i.type for i in items.data] == ["message"]

    client.responses.delete(first.id)
    with pytest.raises(openai.NotFoundError) as gone:
        client.responses.retrieve(first.id)
    assert gone.value.code in ("response_not_found", None) or "not found" in str(gone.value)


def test_unknown_id_and_other_callers_are_404(fresh: FrontDoor) -> None:
    client = _client(fresh)
    made = client.responses.create(model=CHAT, input="mine")
    other = _client(fresh, key="another-callers-key")
    with pytest.raises(openai.NotFoundError) as caught:
        other.responses.retrieve(made.id)
    assert caught.value.body["code"] == "response_not_found"  # type: ignore[index]
    with pytest.raises(openai.NotFoundError):
        other.responses.create(model=CHAT, input="steal", previous_response_id=made.id)
    with pytest.raises(openai.NotFoundError) as unknown:
        client.responses.retrieve("resp_never_seen")
    assert unknown.value.body["code"] == "response_not_found"  # type: ignore[index]
    # the owner still reaches it
    assert client.responses.retrieve(made.id).id == made.id


def test_stream_event_order(fresh: FrontDoor) -> None:
    client = _client(fresh)
    events = list(client.responses.create(model=CHAT, input="Stream it", stream=True))
    kinds = [e.type for e in events]
    assert [k for i, k in enumerate(kinds) if i == 0 or kinds[i - 1] != k] == EVENT_ORDER
    text = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    final = events[-1].response
    assert final.output_text == text
    # the streamed response is remembered: it can be retrieved and continued
    assert client.responses.retrieve(final.id).output_text == text
    assert client.responses.create(model=CHAT, input="more", previous_response_id=final.id).id


def test_background_poll_and_cancel(fresh: FrontDoor) -> None:
    client = _client(fresh)
    queued = client.responses.create(model=CHAT, input="later", background=True)
    assert queued.status in ("queued", "in_progress")
    done = _until(
        lambda: (r := client.responses.retrieve(queued.id)).status == "completed" and r,
        "the background response",
    )
    assert done.output_text
    # the streamed resume form: the stored response's events, replayed by its region
    replayed = list(client.responses.retrieve(queued.id, stream=True))
    kinds = [e.type for e in replayed]
    assert [k for i, k in enumerate(kinds) if i == 0 or kinds[i - 1] != k] == EVENT_ORDER
    assert replayed[-1].response.output_text == done.output_text
    later = list(client.responses.retrieve(queued.id, stream=True, starting_after=3))
    assert [e.sequence_number for e in later] == [e.sequence_number for e in replayed[4:]]

    slow = client.responses.create(
        model=CHAT, input="much later", background=True, metadata={"sim_background_s": "600"}
    )
    assert client.responses.cancel(slow.id).status == "cancelled"
    assert client.responses.retrieve(slow.id).status == "cancelled"
    plain = client.responses.create(model=CHAT, input="now")
    with pytest.raises(openai.BadRequestError):  # the region's own answer, relayed
        client.responses.cancel(plain.id)


def test_store_false_fails_over_and_is_not_remembered(fresh: FrontDoor) -> None:
    client = _client(fresh)
    fresh.sim.region("eastus2").fault("error", status=500, count=1, deployment="gpt-4o-prod")
    made, region = _create(client, model=CHAT, input="no state", store=False)
    assert region == "swedencentral" and made.output_text
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(made.id)


def test_conversation_stays_on_its_region(fresh: FrontDoor) -> None:
    """Turn one lands in swedencentral while eastus2 is throttled; once the router prefers
    eastus2 again, every later turn still goes to swedencentral, which holds the state. The
    holding region throttled: a 429 (not eastus2's 404); the holding region down: 503 naming it."""
    client = _client(fresh)
    east, sweden = fresh.sim.region("eastus2"), fresh.sim.region("swedencentral")
    east.fault("throttle", count=1, retry_after_s=1, deployment="gpt-4o-prod")
    first, region = _create(client, model=CHAT, input="Turn one")
    assert region == "swedencentral"

    # The router prefers eastus2 again (its cooldown over): a fresh conversation goes there...
    _until(
        lambda: _create(client, model=CHAT, input="fresh")[1] == "eastus2",
        "the router to prefer eastus2 again",
    )
    # ...while this conversation's turns stay where its state is.
    previous = first.id
    for turn in ("Turn two", "Turn three"):
        reply, region = _create(client, model=CHAT, input=turn, previous_response_id=previous)
        assert region == "swedencentral"
        assert reply.previous_response_id == previous
        previous = reply.id
    with pytest.raises(openai.NotFoundError):  # eastus2 never had it
        _sim_client(fresh, "eastus2").responses.retrieve(previous)

    # The holding region throttled: the caller waits its turn (429), never another region's 404.
    sweden.fault("throttle", count=1, retry_after_s=1, deployment="gpt4o-sweden")
    with pytest.raises(openai.RateLimitError):
        client.responses.create(model=CHAT, input="Turn four", previous_response_id=previous)

    # The holding region down: a clear 503 naming it.
    sweden.fault("error", status=500, count=100)

    def turn_four() -> openai.APIStatusError | None:
        try:
            client.responses.create(model=CHAT, input="Turn four", previous_response_id=previous)
        except openai.RateLimitError:
            return None  # still cooling down from the throttle above
        except openai.APIStatusError as exc:
            return exc
        raise AssertionError("served while its region is down")

    down = _until(turn_four, "the holding region's outage to be reported")
    assert down.status_code == 503
    error = down.body
    assert error["code"] == "response_region_unavailable"  # type: ignore[index]
    assert "swedencentral" in error["message"]  # type: ignore[index]
    with pytest.raises(openai.APIStatusError) as retrieve_down:
        client.responses.retrieve(previous)
    assert retrieve_down.value.status_code == 503
    # A new conversation is free to fail over.
    assert _create(client, model=CHAT, input="start over")[1] == "eastus2"


@pytest.mark.parametrize("front", ["azure", "openai"])
def test_langchain_chat_openai_responses_api(fresh: FrontDoor, front: str) -> None:
    """LangChain's ChatOpenAI with use_responses_api=True: invoke, stream, and a second turn
    sent as previous_response_id (use_previous_response_id=True)."""
    from langchain_core.messages import HumanMessage
    from langchain_openai import ChatOpenAI

    base = fresh.server.base_url + ("/openai/v1/" if front == "azure" else "/v1/")
    llm = ChatOpenAI(
        model=CHAT if front == "azure" else ALIAS,
        base_url=base,
        api_key="unused",  # type: ignore[arg-type]
        default_headers={"x-functions-key": FUNCTION_KEY},
        max_retries=0,
        timeout=30,
        use_responses_api=True,
        use_previous_response_id=True,
    )
    first = llm.invoke("Tell me about gateways")
    assert first.text and first.response_metadata["id"].startswith("resp_")
    assert first.usage_metadata is not None and first.usage_metadata["total_tokens"] > 0
    second = llm.invoke([HumanMessage("Tell me about gateways"), first, HumanMessage("More?")])
    assert second.text and second.response_metadata["id"] != first.response_metadata["id"]
    stored = _client(fresh, front).responses.retrieve(second.response_metadata["id"])
    assert stored.previous_response_id == first.response_metadata["id"]
    chunks = list(llm.stream("Stream it"))
    assert "".join(c.text for c in chunks)


@pytest.mark.parametrize("version", ["v1", "2025-03-01-preview"])
@pytest.mark.parametrize("where", ["gateway", "simulator"])
def test_azure_openai_client(fresh: FrontDoor, version: str, where: str) -> None:
    """AzureOpenAI builds /openai/responses?api-version=...: Azure's dated route, on the gateway
    as on the simulator; a version without the Responses API is Azure's 404."""
    target = fresh.gateway if where == "gateway" else fresh.simulator
    client = openai.AzureOpenAI(
        azure_endpoint=target.azure_endpoint,
        api_version=version,
        max_retries=0,
        timeout=30,
        **target.openai_kwargs(),
    )
    first = client.responses.create(model=CHAT, input="Tell me about gateways")
    second = client.responses.create(model=CHAT, input="More?", previous_response_id=first.id)
    assert second.previous_response_id == first.id
    assert client.responses.retrieve(second.id).output_text == second.output_text
    assert client.responses.input_items.list(second.id).data
    client.responses.delete(first.id)
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(first.id)

    old = openai.AzureOpenAI(
        azure_endpoint=target.azure_endpoint,
        api_version="2024-10-21",
        max_retries=0,
        timeout=30,
        **target.openai_kwargs(),
    )
    with pytest.raises(openai.NotFoundError) as missing:
        old.responses.create(model=CHAT, input="hello")
    assert missing.value.body["code"] == "404"  # type: ignore[index]


@pytest.mark.parametrize("version", ["preview", "v1"])
@pytest.mark.parametrize("where", ["gateway", "simulator"])
def test_azure_openai_client_on_the_v1_endpoint(fresh: FrontDoor, version: str, where: str) -> None:
    """AzureOpenAI with ``base_url=.../openai/v1/`` (the v1 endpoint, as Microsoft's v1 samples
    build it, with ``api_version="preview"``; or ``v1``): create, continue, stream, retrieve,
    input items, delete, on the gateway as on the simulator."""
    target = fresh.gateway if where == "gateway" else fresh.simulator
    client = openai.AzureOpenAI(
        base_url=target.azure_v1_base_url,
        api_version=version,
        max_retries=0,
        timeout=30,
        **target.openai_kwargs(),
    )
    first = client.responses.create(model=CHAT, input="Tell me about gateways")
    second = client.responses.create(model=CHAT, input="More?", previous_response_id=first.id)
    assert second.previous_response_id == first.id
    events = list(
        client.responses.create(
            model=CHAT, input="Stream it", previous_response_id=second.id, stream=True
        )
    )
    assert events[-1].type == "response.completed"
    third = events[-1].response
    assert third.previous_response_id == second.id
    assert client.responses.retrieve(third.id).output_text == third.output_text
    assert [i.type for i in client.responses.input_items.list(second.id).data] == ["message"]
    client.responses.delete(first.id)
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(first.id)


def test_function_tool_loop_through_the_gateway(fresh: FrontDoor) -> None:
    """A one-tool agent loop as the Agents SDK runs it: the model calls the tool, the tool's
    output goes back with previous_response_id (on the same region), the model answers."""
    client = _client(fresh)
    tool = {
        "type": "function",
        "name": "get_weather",
        "description": "The weather in a city.",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
            "additionalProperties": False,
        },
        "strict": True,
    }
    called, region = _create(client, model=CHAT, input="get_weather for Oslo", tools=[tool])
    (call,) = called.output
    assert call.type == "function_call" and call.name == "get_weather"
    answered, again = _create(
        client,
        model=CHAT,
        previous_response_id=called.id,
        input=[{"type": "function_call_output", "call_id": call.call_id, "output": "sunny"}],
        tools=[tool],
    )
    assert again == region and answered.output_text


def test_langchain_tools_and_structured_output(fresh: FrontDoor) -> None:
    from langchain_core.tools import tool
    from langchain_openai import ChatOpenAI
    from pydantic import BaseModel, Field

    @tool
    def get_weather(city: str) -> str:
        """The weather in a city."""
        return f"sunny in {city}"

    class Forecast(BaseModel):
        """A forecast."""

        city: str = Field(description="the city")
        degrees: int = Field(description="temperature in celsius")

    llm = ChatOpenAI(
        model=CHAT,
        base_url=fresh.server.base_url + "/openai/v1/",
        api_key="unused",  # type: ignore[arg-type]
        default_headers={"x-functions-key": FUNCTION_KEY},
        max_retries=0,
        timeout=30,
        use_responses_api=True,
    )
    message = llm.bind_tools([get_weather]).invoke("What is the weather in get_weather Oslo?")
    assert message.tool_calls and message.tool_calls[0]["name"] == "get_weather"
    forecast = llm.with_structured_output(Forecast).invoke("Forecast for Oslo")
    assert isinstance(forecast, Forecast)
