"""The simulator's Responses API through the real openai SDK: stored per region, streamed in the
documented event order, background with polling and cancel, input items, usage details."""

from __future__ import annotations

import json
import time

import openai
import pytest

from tests.fixtures.sim import SimHandle

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


def _client(sim: SimHandle, region: str = "eastus2") -> openai.OpenAI:
    handle = sim.region(region)
    return openai.OpenAI(
        base_url=handle.v1_base_url, api_key=handle.api_key, max_retries=0, timeout=20
    )


def _dedupe(kinds: list[str]) -> list[str]:
    return [k for i, k in enumerate(kinds) if i == 0 or kinds[i - 1] != k]


def test_create_retrieve_continue_delete(fresh: SimHandle) -> None:
    client = _client(fresh)
    first = client.responses.create(model="gpt-4o-prod", input="Tell me about gateways")
    assert first.id.startswith("resp_") and first.status == "completed"
    assert first.output_text and first.model == "gpt-4o"
    usage = first.usage
    assert usage is not None
    assert usage.total_tokens == usage.input_tokens + usage.output_tokens
    assert usage.input_tokens_details.cached_tokens == 0
    assert usage.output_tokens_details.reasoning_tokens == 0

    again = client.responses.retrieve(first.id)
    assert again.id == first.id and again.output_text == first.output_text

    second = client.responses.create(
        model="gpt-4o-prod", input="And regions?", previous_response_id=first.id
    )
    assert second.previous_response_id == first.id
    assert second.usage is not None and second.usage.input_tokens > usage.input_tokens

    items = client.responses.input_items.list(second.id)
    assert [i.type for i in items.data] == ["message"]

    client.responses.delete(first.id)
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(first.id)
    with pytest.raises(openai.NotFoundError):
        client.responses.create(model="gpt-4o-prod", input="more", previous_response_id=first.id)


def test_ids_are_per_region(fresh: SimHandle) -> None:
    made = _client(fresh, "eastus2").responses.create(model="gpt-4o-prod", input="hello")
    other = _client(fresh, "swedencentral")
    with pytest.raises(openai.NotFoundError) as caught:
        other.responses.retrieve(made.id)
    assert made.id in str(caught.value)
    with pytest.raises(openai.NotFoundError):
        other.responses.create(model="gpt4o-sweden", input="hi", previous_response_id=made.id)


def test_store_false_is_not_retrievable(fresh: SimHandle) -> None:
    client = _client(fresh)
    made = client.responses.create(model="gpt-4o-prod", input="hello", store=False)
    assert made.store is False
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(made.id)


def test_stream_event_order(fresh: SimHandle) -> None:
    client = _client(fresh)
    events = list(client.responses.create(model="gpt-4o-prod", input="Stream it", stream=True))
    assert _dedupe([e.type for e in events]) == EVENT_ORDER
    assert [e.sequence_number for e in events] == list(range(len(events)))
    text = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    final = events[-1].response
    assert final.output_text == text and final.usage is not None
    assert client.responses.retrieve(final.id).output_text == text


def test_max_output_tokens_incomplete(fresh: SimHandle) -> None:
    made = _client(fresh).responses.create(
        model="gpt-4o-prod", input="Tell me a long story", max_output_tokens=16
    )
    assert made.status == "incomplete"
    assert made.incomplete_details is not None
    assert made.incomplete_details.reason == "max_output_tokens"
    assert made.usage is not None and made.usage.output_tokens == 16


def test_background_poll_and_cancel(fresh: SimHandle) -> None:
    client = _client(fresh)
    queued = client.responses.create(model="gpt-4o-prod", input="later", background=True)
    assert queued.status in ("queued", "in_progress")
    deadline = time.monotonic() + 30
    polled = client.responses.retrieve(queued.id)
    while polled.status in ("queued", "in_progress") and time.monotonic() < deadline:
        time.sleep(0.1)
        polled = client.responses.retrieve(queued.id)
    assert polled.status == "completed" and polled.output_text

    slow = client.responses.create(
        model="gpt-4o-prod",
        input="much later",
        background=True,
        metadata={"sim_background_s": "600"},
    )
    cancelled = client.responses.cancel(slow.id)
    assert cancelled.status == "cancelled"
    assert client.responses.retrieve(slow.id).status == "cancelled"

    plain = client.responses.create(model="gpt-4o-prod", input="now")
    with pytest.raises(openai.BadRequestError):
        client.responses.cancel(plain.id)


def test_throttle_fault_applies(fresh: SimHandle) -> None:
    fresh.region("eastus2").fault("throttle", count=1, retry_after_s=3, deployment="gpt-4o-prod")
    with pytest.raises(openai.RateLimitError):
        _client(fresh).responses.create(model="gpt-4o-prod", input="hello")
    assert _client(fresh).responses.create(model="gpt-4o-prod", input="hello").output_text


LOOKUP = {
    "type": "function",
    "name": "lookup",
    "description": "Look something up.",
    "parameters": {
        "type": "object",
        "properties": {"query": {"type": "string"}},
        "required": ["query"],
        "additionalProperties": False,
    },
    "strict": True,
}


def test_function_call_round_trip(fresh: SimHandle) -> None:
    client = _client(fresh)
    called = client.responses.create(
        model="gpt-4o-prod", input="Please lookup gateways", tools=[LOOKUP]
    )
    (call,) = called.output
    assert call.type == "function_call" and call.name == "lookup"
    assert "query" in json.loads(call.arguments)
    answered = client.responses.create(
        model="gpt-4o-prod",
        previous_response_id=called.id,
        input=[{"type": "function_call_output", "call_id": call.call_id, "output": "found it"}],
        tools=[LOOKUP],
    )
    assert answered.output[0].type == "message" and answered.output_text

    events = list(
        client.responses.create(
            model="gpt-4o-prod", input="lookup", tools=[LOOKUP], tool_choice="required", stream=True
        )
    )
    assert [e.type for e in events] == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.function_call_arguments.delta",
        "response.function_call_arguments.done",
        "response.output_item.done",
        "response.completed",
    ]


def test_structured_output(fresh: SimHandle) -> None:
    schema = {
        "type": "object",
        "properties": {"city": {"type": "string"}, "degrees": {"type": "integer"}},
        "required": ["city", "degrees"],
        "additionalProperties": False,
    }
    made = _client(fresh).responses.create(
        model="gpt-4o-prod",
        input="Forecast",
        text={
            "format": {"type": "json_schema", "name": "forecast", "schema": schema, "strict": True}
        },
    )
    value = json.loads(made.output_text)
    assert isinstance(value["city"], str) and isinstance(value["degrees"], int)
