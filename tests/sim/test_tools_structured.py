"""What framework clients send: tools and tool_choice (also streamed), parallel_tool_calls,
response_format json_schema (strict honoured), n > 1, stream_options.include_usage; and the plain
OpenAI surface (/v1/...) with its Go-duration rate-limit headers. Real openai SDK over HTTP."""

from __future__ import annotations

import json

import httpx
import openai
import pytest

from aoai_sim._schema import instance, strict_problem
from tests.fixtures.sim import SimHandle
from tests.sim.helpers import azure_client, chat_deployment, embed_deployment, v1_client

WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather in a city",
        "parameters": {
            "type": "object",
            "properties": {
                "city": {"type": "string"},
                "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
                "days": {"type": "integer", "minimum": 1, "maximum": 7},
            },
            "required": ["city", "unit", "days"],
            "additionalProperties": False,
        },
        "strict": True,
    },
}
CLOCK = {
    "type": "function",
    "function": {
        "name": "get_time",
        "parameters": {"type": "object", "properties": {"zone": {"type": "string"}}},
    },
}
PERSON = {
    "type": "object",
    "properties": {
        "name": {"type": "string"},
        "age": {"type": "integer", "minimum": 0, "maximum": 120},
        "tags": {"type": "array", "items": {"type": "string"}},
        "address": {"$ref": "#/$defs/address"},
        "nickname": {"anyOf": [{"type": "string"}, {"type": "null"}]},
    },
    "required": ["name", "age", "tags", "address", "nickname"],
    "additionalProperties": False,
    "$defs": {
        "address": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
            "additionalProperties": False,
        }
    },
}


def _ask(text: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": text}]


def test_auto_calls_the_named_tools_in_parallel(fresh: SimHandle) -> None:
    region = fresh.region("eastus2")
    reply = azure_client(region).chat.completions.create(
        model=chat_deployment(region),
        messages=_ask("use get_weather and get_time"),
        tools=[WEATHER, CLOCK],
    )
    choice = reply.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.content is None
    calls = choice.message.tool_calls
    assert [c.function.name for c in calls] == ["get_weather", "get_time"]
    args = json.loads(calls[0].function.arguments)
    assert set(args) == {"city", "unit", "days"} and args["unit"] in ("celsius", "fahrenheit")
    assert 1 <= args["days"] <= 7
    assert len({c.id for c in calls}) == 2 and all(c.id.startswith("call_") for c in calls)
    assert reply.usage.completion_tokens > 0


def test_parallel_tool_calls_false_makes_one_call(fresh: SimHandle) -> None:
    region = fresh.region("eastus2")
    reply = azure_client(region).chat.completions.create(
        model=chat_deployment(region),
        messages=_ask("use get_weather and get_time"),
        tools=[WEATHER, CLOCK],
        parallel_tool_calls=False,
    )
    assert [c.function.name for c in reply.choices[0].message.tool_calls] == ["get_weather"]


@pytest.mark.parametrize(
    ("tool_choice", "expected"),
    [
        ("none", None),
        ("required", ["get_weather"]),
        ({"type": "function", "function": {"name": "get_time"}}, ["get_time"]),
    ],
)
def test_tool_choice(fresh: SimHandle, tool_choice, expected) -> None:
    region = fresh.region("eastus2")
    reply = v1_client(region).chat.completions.create(
        model=chat_deployment(region),
        messages=_ask("hello"),
        tools=[WEATHER, CLOCK],
        tool_choice=tool_choice,
    )
    message = reply.choices[0].message
    if expected is None:
        assert message.content and not message.tool_calls
        assert reply.choices[0].finish_reason in ("stop", "length")
    else:
        assert [c.function.name for c in message.tool_calls] == expected


def test_auto_answers_text_after_a_tool_result(fresh: SimHandle) -> None:
    region = fresh.region("eastus2")
    messages = [
        *_ask("weather?"),
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "call_1",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": "{}"},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "call_1", "content": "sunny"},
    ]
    reply = azure_client(region).chat.completions.create(
        model=chat_deployment(region), messages=messages, tools=[WEATHER]
    )
    assert reply.choices[0].message.content and not reply.choices[0].message.tool_calls


def test_tool_calls_stream_as_azure_streams_them(fresh: SimHandle) -> None:
    region = fresh.region("eastus2")
    stream = azure_client(region).chat.completions.create(
        model=chat_deployment(region),
        messages=_ask("use get_weather and get_time"),
        tools=[WEATHER, CLOCK],
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    deltas = [c.choices[0].delta for c in chunks if c.choices]
    first = next(d for d in deltas if d.tool_calls)
    assert first.role == "assistant"
    assert first.tool_calls[0].id and first.tool_calls[0].function.name == "get_weather"
    assert first.tool_calls[0].function.arguments == ""
    args: dict[int, str] = {}
    names: dict[int, str] = {}
    for delta in deltas:
        for call in delta.tool_calls or ():
            if call.function.name:
                names[call.index] = call.function.name
            args[call.index] = args.get(call.index, "") + (call.function.arguments or "")
    assert names == {0: "get_weather", 1: "get_time"}
    assert set(json.loads(args[0])) == {"city", "unit", "days"}
    assert isinstance(json.loads(args[1]), dict)
    pieces = sum(1 for d in deltas for c in d.tool_calls or () if c.function.arguments)
    assert pieces > 2  # the arguments arrive in several chunks
    finals = [
        c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason
    ]
    assert finals == ["tool_calls"]
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens > 0


def test_json_schema_answer_is_valid_and_strict_is_enforced(fresh: SimHandle) -> None:
    region = fresh.region("eastus2")
    client = v1_client(region)
    fmt = {
        "type": "json_schema",
        "json_schema": {"name": "person", "schema": PERSON, "strict": True},
    }
    reply = client.chat.completions.create(
        model=chat_deployment(region), messages=_ask("who?"), response_format=fmt, n=3
    )
    assert len(reply.choices) == 3
    for choice in reply.choices:
        doc = json.loads(choice.message.content)
        assert set(doc) == set(PERSON["properties"])
        assert isinstance(doc["name"], str) and 0 <= doc["age"] <= 120
        assert isinstance(doc["tags"], list) and isinstance(doc["address"]["city"], str)
    loose = {key: value for key, value in PERSON.items() if key != "additionalProperties"}
    bad = {
        "type": "json_schema",
        "json_schema": {"name": "person", "schema": loose, "strict": True},
    }
    with pytest.raises(openai.BadRequestError) as err:
        client.chat.completions.create(
            model=chat_deployment(region), messages=_ask("who?"), response_format=bad
        )
    assert "additionalProperties" in err.value.message
    # without strict the same schema is accepted
    ok = {"type": "json_schema", "json_schema": {"name": "person", "schema": loose}}
    reply = client.chat.completions.create(
        model=chat_deployment(region), messages=_ask("who?"), response_format=ok
    )
    assert json.loads(reply.choices[0].message.content)["address"]


def test_strict_function_schema_is_checked(fresh: SimHandle) -> None:
    region = fresh.region("eastus2")
    tool = json.loads(json.dumps(WEATHER))
    tool["function"]["parameters"]["required"] = ["city"]
    with pytest.raises(openai.BadRequestError) as err:
        azure_client(region).chat.completions.create(
            model=chat_deployment(region), messages=_ask("x"), tools=[tool]
        )
    assert "get_weather" in err.value.message and "required" in err.value.message


def test_tool_choice_without_tools_is_refused(fresh: SimHandle) -> None:
    region = fresh.region("eastus2")
    with pytest.raises(openai.BadRequestError):
        azure_client(region).chat.completions.create(
            model=chat_deployment(region), messages=_ask("x"), tool_choice="required"
        )


def test_n_and_include_usage_when_streaming(fresh: SimHandle) -> None:
    region = fresh.region("eastus2")
    chunks = list(
        v1_client(region).chat.completions.create(
            model=chat_deployment(region),
            messages=_ask("two answers"),
            n=2,
            max_tokens=5,
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    indexes = {c.choices[0].index for c in chunks if c.choices}
    assert indexes == {0, 1}
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == 10


def test_schema_generator_units() -> None:
    assert strict_problem(PERSON) is None
    assert "additionalProperties" in strict_problem({"type": "object", "properties": {}})
    value = instance({"type": "array", "items": {"type": "number"}, "minItems": 3})
    assert len(value) == 3 and all(isinstance(v, float) for v in value)
    assert instance({"const": 5}) == 5
    assert instance({"type": ["null", "boolean"]}) in (True, False)


# ------------------------------------------------------------ the plain OpenAI surface


def openai_client(region, **kwargs) -> openai.OpenAI:
    kwargs.setdefault("api_key", region.api_key)
    return openai.OpenAI(base_url=f"{region.endpoint}/v1", max_retries=0, timeout=5, **kwargs)


def test_openai_surface_serves_chat_embeddings_and_models(fresh: SimHandle) -> None:
    region = fresh.region("eastus2")
    client = openai_client(region)
    raw = client.chat.completions.with_raw_response.create(
        model=chat_deployment(region), messages=_ask("hi"), max_tokens=4
    )
    assert raw.parse().choices[0].message.content
    assert raw.headers["x-request-id"].startswith("req_")
    assert "apim-request-id" not in raw.headers
    reset = raw.headers["x-ratelimit-reset-tokens"]
    assert reset.endswith("s") and not reset.replace(".", "").isdigit()
    emb = client.embeddings.create(model=embed_deployment(region), input=["a", "b"])
    assert len(emb.data) == 2
    assert {m.id for m in client.models.list()} == set(region.deployments)


def test_openai_surface_errors_and_throttle_headers(fresh: SimHandle) -> None:
    region = fresh.region("eastus2")
    with pytest.raises(openai.AuthenticationError) as err:
        openai_client(region, api_key="wrong").models.list()
    assert err.value.code == "invalid_api_key"
    # Azure's api-key header is not OpenAI's way to authenticate
    response = httpx.post(
        f"{region.endpoint}/v1/chat/completions",
        headers={"api-key": region.api_key},
        json={"model": chat_deployment(region), "messages": _ask("x")},
    )
    assert response.status_code == 401
    with pytest.raises(openai.NotFoundError) as err:
        openai_client(region).chat.completions.create(model="nope", messages=_ask("x"))
    assert err.value.code == "model_not_found"
    region.fault("throttle", retry_after_s=360, count=1)
    with pytest.raises(openai.RateLimitError) as err:
        openai_client(region).chat.completions.create(
            model=chat_deployment(region), messages=_ask("x")
        )
    headers = err.value.response.headers
    assert headers["x-ratelimit-reset-tokens"] == "6m0s"
    assert "retry-after" not in headers and "retry-after-ms" not in headers
    assert err.value.code == "rate_limit_exceeded"
