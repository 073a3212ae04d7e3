"""What a chat reply consists of when the request asks for tools or structured output.

* ``tools`` + ``tool_choice``: ``"none"`` answers text; ``{"type": "function", "function":
  {"name": X}}`` calls X; ``"required"`` calls tools; ``"auto"`` (the default) calls tools unless the
  last message is a tool result (then it answers text, so agent loops end). Which tools: those whose
  name appears in the last user message, else the first one; ``parallel_tool_calls: false`` keeps
  only the first of them. Arguments are a JSON document valid against the function's
  ``parameters`` (every property filled in).
* ``response_format``: ``json_schema`` answers a JSON document valid against the schema;
  ``json_object`` answers a JSON object.
* ``strict: true`` (on a function or a json_schema) is checked as Azure checks it: every object in
  the schema must set ``additionalProperties: false`` and require all its properties, else 400.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from . import _schema, _text
from ._errors import ErrorReply, bad_request

__all__ = ["Output", "ToolSpec", "plan_output", "tool_arguments"]


@dataclass(frozen=True)
class ToolSpec:
    name: str
    parameters: dict[str, Any]


@dataclass(frozen=True)
class Output:
    """``kind``: ``text``, ``json`` (content is a JSON document) or ``tools`` (``calls`` to make)."""

    kind: str
    schema: dict[str, Any] | None = None
    calls: tuple[ToolSpec, ...] = ()


_TEXT = Output("text")


def _tools(body: dict[str, Any]) -> tuple[ToolSpec, ...] | ErrorReply:
    raw = body.get("tools")
    if raw is None:
        return ()
    if not isinstance(raw, list) or len(raw) > 128:
        return bad_request("Invalid 'tools': expected an array of at most 128 tools.", "tools")
    specs = []
    for i, tool in enumerate(raw):
        fn = tool.get("function") if isinstance(tool, dict) else None
        if (
            not isinstance(tool, dict)
            or tool.get("type") != "function"
            or not isinstance(fn, dict)
            or not isinstance(fn.get("name"), str)
            or not fn["name"]
        ):
            return bad_request(
                f"Invalid value for 'tools[{i}]': expected a function tool with a name.",
                f"tools[{i}]",
            )
        params = fn.get("parameters") or {"type": "object", "properties": {}}
        if not isinstance(params, dict):
            return bad_request(
                f"Invalid schema for function '{fn['name']}': schema must be a JSON Schema of 'type: \"object\"'.",
                f"tools[{i}].function.parameters",
            )
        if fn.get("strict") is True:
            problem = _schema.strict_problem(params)
            if problem:
                return bad_request(
                    f"Invalid schema for function '{fn['name']}': {problem}",
                    f"tools[{i}].function.parameters",
                )
        specs.append(ToolSpec(fn["name"], params))
    return tuple(specs)


def _response_schema(body: dict[str, Any]) -> Output | ErrorReply | None:
    fmt = body.get("response_format")
    if fmt is None:
        return None
    kind = fmt.get("type") if isinstance(fmt, dict) else None
    if kind == "text":
        return None
    if kind == "json_object":
        return Output("json", {"type": "object", "properties": {"answer": {"type": "string"}}})
    if kind != "json_schema":
        return bad_request(
            "Invalid value for 'response_format.type': expected 'text', 'json_object' or 'json_schema'.",
            "response_format.type",
        )
    spec = fmt.get("json_schema")
    if not isinstance(spec, dict) or not isinstance(spec.get("name"), str):
        return bad_request(
            "Missing required parameter: 'response_format.json_schema.name'.",
            "response_format.json_schema",
        )
    schema = spec.get("schema") or {"type": "object", "properties": {}}
    if not isinstance(schema, dict):
        return bad_request(
            f"Invalid schema for response_format '{spec['name']}': schema must be an object.",
            "response_format",
        )
    if spec.get("strict") is True:
        problem = _schema.strict_problem(schema)
        if problem:
            return bad_request(
                f"Invalid schema for response_format '{spec['name']}': {problem}",
                "response_format",
            )
    return Output("json", schema)


def _last(messages: list[Any], role: str | None = None) -> dict[str, Any] | None:
    for m in reversed(messages):
        if isinstance(m, dict) and (role is None or m.get("role") == role):
            return m
    return None


def plan_output(body: dict[str, Any]) -> Output | ErrorReply:
    """Decide the reply's kind from ``tools``, ``tool_choice``, ``parallel_tool_calls`` and
    ``response_format`` (or return Azure's 400 for an invalid combination)."""
    tools = _tools(body)
    if not isinstance(tools, tuple) or (tools and not isinstance(tools[0], ToolSpec)):
        return tools  # type: ignore[return-value]
    structured = _response_schema(body)
    if isinstance(structured, tuple):
        return structured
    choice = body.get("tool_choice")
    if not tools:
        if choice not in (None, "none"):
            return bad_request(
                "Invalid value for 'tool_choice': 'tool_choice' is only allowed when 'tools' are specified.",
                "tool_choice",
            )
        if body.get("parallel_tool_calls") is not None:
            return bad_request(
                "Invalid value for 'parallel_tool_calls': 'parallel_tool_calls' is only allowed when 'tools' are specified.",
                "parallel_tool_calls",
            )
        return structured or _TEXT
    by_name = {t.name: t for t in tools}
    if isinstance(choice, dict):
        fn = choice.get("function") if choice.get("type") == "function" else None
        name = fn.get("name") if isinstance(fn, dict) else None
        if name not in by_name:
            return bad_request(
                f"Invalid value for 'tool_choice': tool '{name}' is not in 'tools'.", "tool_choice"
            )
        return Output("tools", calls=(by_name[name],))
    if choice not in (None, "auto", "none", "required"):
        return bad_request(
            "Invalid value for 'tool_choice': expected 'none', 'auto', 'required' or a named function.",
            "tool_choice",
        )
    messages = body.get("messages") or []
    last = _last(messages)
    if choice == "none" or (choice in (None, "auto") and last and last.get("role") == "tool"):
        return structured or _TEXT
    user = _last(messages, "user")
    said = _text.message_text(user.get("content")) if user else ""
    named = [t for t in tools if t.name in said] or [tools[0]]
    if body.get("parallel_tool_calls") is False:
        named = named[:1]
    return Output("tools", calls=tuple(named))


def tool_arguments(spec: ToolSpec, seed: bytes) -> str:
    """The call's arguments: compact JSON valid against the function's parameters."""
    value = _schema.instance(spec.parameters, int.from_bytes(seed[:8], "big"))
    return json.dumps(value, separators=(",", ":"))
