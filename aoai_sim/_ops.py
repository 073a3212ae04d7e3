"""Chat completions and embeddings: request validation, charging estimates and response bodies."""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from . import _embed, _filter, _schema, _text, _tools, _vision
from ._errors import ErrorReply, bad_request, output_too_large
from .config import ContentFilterConfig, DeploymentConfig

__all__ = [
    "ChatPlan",
    "EmbeddingsPlan",
    "chat_body",
    "chat_events",
    "embeddings_body",
    "plan_chat",
    "validate_embeddings",
]


@dataclass(frozen=True)
class _ToolCall:
    id: str
    name: str
    arguments: str


@dataclass(frozen=True)
class _Choice:
    tokens: list[str]
    finish_reason: str
    filtered: str | None
    tool_calls: tuple[_ToolCall, ...] = ()

    @property
    def completion_tokens(self) -> int:
        return len(self.tokens) + sum(
            _text.estimate_tokens(len(c.name) + len(c.arguments)) + 3 for c in self.tool_calls
        )


@dataclass(frozen=True)
class ChatPlan:
    """Everything a chat response will contain, decided before the first byte."""

    id: str
    created: int
    model: str
    choices: tuple[_Choice, ...]
    prompt_tokens: int
    charge: int
    blocked_category: str | None
    stream: bool
    include_usage: bool
    severity: str
    omit_usage: bool = False  # the omit_usage fault: no usage in a non-streaming body either

    @property
    def completion_tokens(self) -> int:
        """Sum of generated tokens over all choices."""
        return sum(c.completion_tokens for c in self.choices)

    def usage(self) -> dict[str, Any]:
        """The usage object."""
        return {
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "total_tokens": self.prompt_tokens + self.completion_tokens,
            "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
            "completion_tokens_details": {
                "reasoning_tokens": 0,
                "audio_tokens": 0,
                "accepted_prediction_tokens": 0,
                "rejected_prediction_tokens": 0,
            },
        }


def _int_param(body: dict[str, Any], key: str, low: int, high: int) -> int | None:
    value = body.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ValueError(
            f"Invalid value for '{key}': expected an integer between {low} and {high}."
        )
    return value


# Max output tokens per model family (Azure's model pages; the largest of the model's versions).
# A cap above it is refused with 400 before the rate limiter charges anything. Models not
# listed accept any cap up to the parameter's own bound.
_MAX_OUTPUT = {
    "gpt-35-turbo": 4_096,
    "gpt-4": 8_192,
    "gpt-4o": 16_384,
    "gpt-4o-mini": 16_384,
    "gpt-4.1": 32_768,
    "gpt-4.1-mini": 32_768,
    "gpt-4.1-nano": 32_768,
    "o1": 100_000,
    "o3": 100_000,
    "o3-mini": 100_000,
    "o4-mini": 100_000,
    "gpt-5": 128_000,
    "gpt-5-mini": 128_000,
    "gpt-5-nano": 128_000,
}


def _model_name(dep: DeploymentConfig) -> str:
    return f"{dep.model}-{dep.model_version}" if dep.model_version else dep.model


def plan_chat(dep: DeploymentConfig, body: Any, cf: ContentFilterConfig) -> ChatPlan | ErrorReply:
    """Validate a chat request and decide its reply (or return a 400)."""
    if not isinstance(body, dict):
        return bad_request("The request body must be a JSON object.")
    messages = body.get("messages")
    if (
        not isinstance(messages, list)
        or not messages
        or not all(isinstance(m, dict) and m.get("role") for m in messages)
    ):
        return bad_request(
            "'messages' is a required property and must be a non-empty array of messages.",
            "messages",
        )
    try:
        max_tokens = _int_param(body, "max_completion_tokens", 1, 1_000_000)
        if max_tokens is None:
            max_tokens = _int_param(body, "max_tokens", 1, 1_000_000)
        n = _int_param(body, "n", 1, 128) or 1
    except ValueError as exc:
        return bad_request(str(exc))
    limit = _MAX_OUTPUT.get(dep.model)
    if limit is not None and max_tokens is not None and max_tokens > limit:
        param = "max_completion_tokens" if body.get("max_completion_tokens") else "max_tokens"
        return output_too_large(param, limit, max_tokens)
    stream = bool(body.get("stream"))
    options = body.get("stream_options") or {}
    include_usage = stream and isinstance(options, dict) and bool(options.get("include_usage"))
    # Azure's admission estimate: text, tool calls and tool definitions at four characters per
    # token, plus each image's documented cost (_vision), plus the output cap.
    definitions = _text.definition_chars(body)
    images = _vision.prompt_image_tokens(messages)
    chars = _text.charge_chars(messages) + definitions
    charge = (
        _text.estimate_tokens(chars)
        + images
        + (max_tokens if max_tokens is not None else dep.default_max_tokens) * n
    )
    all_text = " ".join(_text.message_text(m.get("content")) for m in messages)
    blocked = _filter.scan(all_text, cf.prompt_triggers)
    completion_hit = _filter.scan(all_text, cf.completion_triggers)
    output = _tools.plan_output(body)
    if isinstance(output, tuple):
        return output
    choices = []
    try:
        for index in range(n):
            seed = _text.seed_for(dep.name, messages, index)
            if output.kind == "tools":
                choices.append(_tool_choice(output, seed))
                continue
            if output.kind == "json":
                value = _schema.instance(output.schema, int.from_bytes(seed[:8], "big"))
                tokens, natural = _pieces(json.dumps(value, ensure_ascii=False), max_tokens)
            else:
                tokens, natural = _text.generate(seed, max_tokens)
            if completion_hit:
                choices.append(
                    _Choice(tokens[: max(1, len(tokens) // 2)], "content_filter", completion_hit)
                )
            else:
                choices.append(_Choice(tokens, "stop" if natural else "length", None))
    except _schema.SchemaError as exc:
        return bad_request(f"Invalid schema: {exc}.", "response_format")
    return ChatPlan(
        id=f"chatcmpl-{secrets.token_hex(14)}",
        created=int(time.time()),
        model=_model_name(dep),
        choices=tuple(choices),
        prompt_tokens=_text.prompt_tokens(messages) + _text.estimate_tokens(definitions) + images,
        charge=charge,
        blocked_category=blocked,
        stream=stream,
        include_usage=include_usage,
        severity=cf.severity,
    )


def _pieces(text: str, max_tokens: int | None) -> tuple[list[str], bool]:
    """``text`` as token-sized pieces (about four characters each), cut at ``max_tokens``."""
    pieces = [text[i : i + 4] for i in range(0, len(text), 4)] or [""]
    if max_tokens is not None and len(pieces) > max_tokens:
        return pieces[:max_tokens], False
    return pieces, True


def _tool_choice(output: _tools.Output, seed: bytes) -> _Choice:
    calls = tuple(
        _ToolCall(
            id="call_" + _text.seed_for(seed.hex(), i).hex()[:24],
            name=spec.name,
            arguments=_tools.tool_arguments(spec, _text.seed_for(seed.hex(), spec.name)),
        )
        for i, spec in enumerate(output.calls)
    )
    return _Choice([], "tool_calls", None, calls)


def _message(choice: _Choice) -> dict[str, Any]:
    if not choice.tool_calls:
        return {"role": "assistant", "content": "".join(choice.tokens), "refusal": None}
    return {
        "role": "assistant",
        "content": None,
        "refusal": None,
        "tool_calls": [
            {
                "id": c.id,
                "type": "function",
                "function": {"name": c.name, "arguments": c.arguments},
            }
            for c in choice.tool_calls
        ],
    }


def chat_body(plan: ChatPlan) -> dict[str, Any]:
    """The non-streaming chat.completion object."""
    return {
        "id": plan.id,
        "object": "chat.completion",
        "created": plan.created,
        "model": plan.model,
        "system_fingerprint": "fp_aoaisim",
        "prompt_filter_results": _filter.prompt_filter_results(),
        "choices": [
            {
                "index": i,
                "message": _message(c),
                "finish_reason": c.finish_reason,
                "logprobs": None,
                "content_filter_results": _filter.choice_results(c.filtered, plan.severity),
            }
            for i, c in enumerate(plan.choices)
        ],
        **({} if plan.omit_usage else {"usage": plan.usage()}),
    }


def _sse(obj: Any) -> bytes:
    return b"data: " + _dumps(obj).encode() + b"\n\n"


def _dumps(obj: Any) -> str:
    return json.dumps(obj, separators=(",", ":"))


_SAFE_CHOICE_JSON = _dumps(_filter.choice_results())


def chat_events(plan: ChatPlan, *, finish_in_delta: bool = False) -> Iterator[tuple[bytes, bool]]:
    """SSE events in Azure's order; the flag marks events that carry a generated token.
    ``finish_in_delta``: put each choice's ``finish_reason`` inside its final ``delta`` (and
    null at the choice level), as Microsoft's own simulator and some proxies do."""
    base: dict[str, Any] = {
        "created": plan.created,
        "id": plan.id,
        "model": plan.model,
        "object": "chat.completion.chunk",
        "system_fingerprint": "fp_aoaisim",
    }
    if plan.include_usage:
        base["usage"] = None
    tail = "," + _dumps(base)[1:]  # the shared fields, spliced after "choices"
    yield (
        _sse(
            {
                "choices": [],
                "created": 0,
                "id": "",
                "model": "",
                "object": "",
                "prompt_filter_results": _filter.prompt_filter_results(),
            }
        ),
        False,
    )
    for i, choice in enumerate(plan.choices):
        if choice.tool_calls:
            yield from _tool_call_events(choice, i, base)
            continue
        yield (
            _sse(
                {
                    "choices": [
                        {
                            "content_filter_results": {},
                            "delta": {"content": "", "refusal": None, "role": "assistant"},
                            "finish_reason": None,
                            "index": i,
                            "logprobs": None,
                        }
                    ],
                    **base,
                }
            ),
            False,
        )
        head = (
            'data: {"choices":[{"content_filter_results":'
            + _SAFE_CHOICE_JSON
            + ',"delta":{"content":'
        )
        after = '},"finish_reason":null,"index":%d,"logprobs":null}]' % i + tail + "\n\n"
        for token in choice.tokens:
            yield (head + json.dumps(token) + after).encode(), True
        final_results = (
            _filter.choice_results(choice.filtered, plan.severity) if choice.filtered else {}
        )
        yield (
            _sse(
                {
                    "choices": [
                        {
                            "content_filter_results": final_results,
                            "delta": {"finish_reason": choice.finish_reason}
                            if finish_in_delta
                            else {},
                            "finish_reason": None if finish_in_delta else choice.finish_reason,
                            "index": i,
                            "logprobs": None,
                        }
                    ],
                    **base,
                }
            ),
            False,
        )
    if plan.include_usage:
        yield _sse({"choices": [], **base, "usage": plan.usage()}), False
    yield b"data: [DONE]\n\n", False


def _tool_call_events(
    choice: _Choice, index: int, base: dict[str, Any]
) -> Iterator[tuple[bytes, bool]]:
    """A choice's tool calls as Azure streams them: the first chunk carries the role and the first
    call's id and name with empty arguments; the arguments follow in pieces, each naming only its
    call's ``index``; every further call opens with its id and name; the last chunk has an empty
    delta and ``finish_reason: "tool_calls"``."""

    def event(delta: dict[str, Any], finish: str | None = None) -> bytes:
        return _sse(
            {
                "choices": [
                    {
                        "content_filter_results": {},
                        "delta": delta,
                        "finish_reason": finish,
                        "index": index,
                        "logprobs": None,
                    }
                ],
                **base,
            }
        )

    for n, call in enumerate(choice.tool_calls):
        opening = {
            "index": n,
            "id": call.id,
            "type": "function",
            "function": {"name": call.name, "arguments": ""},
        }
        delta: dict[str, Any] = {"tool_calls": [opening]}
        if n == 0:
            delta = {"role": "assistant", "content": None, "refusal": None, **delta}
        yield event(delta), False
        args = call.arguments
        for start in range(0, len(args), 8):
            piece = {"index": n, "function": {"arguments": args[start : start + 8]}}
            yield event({"tool_calls": [piece]}), True
    yield event({}, choice.finish_reason), False


@dataclass(frozen=True)
class EmbeddingsPlan:
    """A validated embeddings request."""

    texts: tuple[str, ...]
    dims: int | None
    base64: bool
    prompt_tokens: int

    @property
    def charge(self) -> int:
        """Tokens the limiter charges."""
        return self.prompt_tokens


def validate_embeddings(dep: DeploymentConfig, body: Any) -> EmbeddingsPlan | ErrorReply:
    """Validate an embeddings request (or return a 400)."""
    if not isinstance(body, dict):
        return bad_request("The request body must be a JSON object.")
    raw = body.get("input")
    if isinstance(raw, str) or (
        isinstance(raw, list) and raw and all(isinstance(t, int) for t in raw)
    ):
        items: list[Any] = [raw]
    elif isinstance(raw, list) and raw:
        items = raw
    else:
        return bad_request(
            "'input' is a required property and must be a string or a non-empty array.", "input"
        )
    if len(items) > 2048:
        return bad_request("Too many inputs. The max number of inputs is 2048.", "input")
    texts: list[str] = []
    tokens = 0
    for item in items:
        if isinstance(item, str) and item:
            texts.append(item)
            tokens += _text.estimate_tokens(len(item))
        elif (
            isinstance(item, list)
            and item
            and all(isinstance(t, int) and not isinstance(t, bool) for t in item)
        ):
            texts.append(json.dumps(item))
            tokens += len(item)
        else:
            return bad_request(
                "'$.input' is invalid. Please check the API reference: https://platform.openai.com/docs/api-reference.",
                "input",
            )
    dims = body.get("dimensions")
    if dims is not None:
        if "text-embedding-3" not in dep.model:
            return bad_request("This model does not support specifying dimensions.", "dimensions")
        if isinstance(dims, bool) or not isinstance(dims, int) or not 1 <= dims <= dep.dimensions:
            return bad_request(
                f"'dimensions' must be an integer between 1 and {dep.dimensions}.", "dimensions"
            )
    fmt = body.get("encoding_format") or "float"
    if fmt not in ("float", "base64"):
        return bad_request("'encoding_format' must be 'float' or 'base64'.", "encoding_format")
    return EmbeddingsPlan(tuple(texts), dims, fmt == "base64", tokens)


def embeddings_body(dep: DeploymentConfig, plan: EmbeddingsPlan) -> bytes:
    """The embeddings list object as JSON bytes, inputs in order (vectors serialized once, cached)."""
    items = []
    for i, text in enumerate(plan.texts):
        vec = _embed.embedding_json(dep.model, text, dep.dimensions, plan.dims, plan.base64)
        items.append('{"object":"embedding","index":%d,"embedding":%s}' % (i, vec))
    usage = _dumps({"prompt_tokens": plan.prompt_tokens, "total_tokens": plan.prompt_tokens})
    return (
        '{"object":"list","data":[%s],"model":%s,"usage":%s}'
        % (",".join(items), json.dumps(dep.model), usage)
    ).encode()
