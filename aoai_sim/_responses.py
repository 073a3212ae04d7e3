"""The Responses API of one region (``/openai/v1/responses`` and ``/v1/responses``).

Responses are stored in the region that produced them, as Azure OpenAI stores them in the
resource: an id from another region is a 404 here, so a gateway that sends a continuation or a
retrieval to the wrong region sees the real failure.

* ``POST /responses``: plain JSON, ``stream: true`` (the Responses event stream: created,
  in_progress, output_item.added, content_part.added, output_text.delta..., output_text.done,
  content_part.done, output_item.done, completed or incomplete), ``background: true`` (answers
  ``queued`` at once and completes later, pollable and cancellable), ``store`` (default true),
  ``previous_response_id`` (continues a stored conversation; 404 when this region has no such id),
  ``instructions`` and ``max_output_tokens`` (a cut answer is ``incomplete``).
* The same under Azure's dated route, ``/openai/responses?api-version=2025-03-01-preview`` (or
  ``2025-04-01-preview``, ``preview``, ``v1``: what ``AzureOpenAI`` builds); another or no
  api-version there is Azure's 404 ``Resource not found``.
* ``GET /responses/{id}`` (``?stream=true&starting_after=N`` replays a stored stream),
  ``DELETE /responses/{id}``, ``POST /responses/{id}/cancel`` (background responses only),
  ``GET /responses/{id}/input_items`` (``order``, ``limit``, ``after``).

Usage: ``input_tokens`` (with ``input_tokens_details.cached_tokens``: the stored context of a
continuation, counted in 128-token steps from 1,024 tokens as Azure's prompt caching does),
``output_tokens`` (with ``output_tokens_details.reasoning_tokens``: nonzero only for reasoning
models, o-series and gpt-5), ``total_tokens``. The rate limiter is charged as for chat: the input
estimate plus ``max_output_tokens`` (or the deployment's default output cap). Faults apply as for chat, mid-stream
ones (``after_chunks``) to a streamed create.

Function tools and structured output follow the chat simulator's rules (``_tools``): with
``tools``, ``tool_choice`` ``auto`` (the default) answers ``function_call`` items unless the last
input is a ``function_call_output`` (then text, so agent loops end); ``text.format`` with
``json_schema`` answers a JSON document valid against the schema. Built-in tools (web search, file
search...) are ignored.

A background response runs for ``metadata.sim_background_s`` seconds (default 0.5), so a test can
keep one in progress long enough to cancel it.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from . import _errors, _schema, _text, _tools
from ._faults import Fault, FaultRegistry
from ._http import HttpConnection, Request
from ._limits import Decision
from .config import DeploymentConfig, LatencyConfig, RegionConfig

__all__ = ["DATED_VERSIONS", "ResponsesApi", "responses_path"]

_PREFIXES = ("/openai/v1/responses", "/v1/responses", "/openai/responses")
_DATED_PREFIX = "/openai/responses"
# api-versions of the dated route (``AzureOpenAI(api_version=...)`` without /v1): the Responses
# API's previews, and v1 (what ``AzureOpenAI(api_version="v1")`` sends there).
DATED_VERSIONS = frozenset({"2025-03-01-preview", "2025-04-01-preview", "v1", "preview"})
_BACKGROUND_S = 0.5
_CACHE_MIN, _CACHE_STEP = 1024, 128

Reply = Callable[
    [HttpConnection, "str | None", _errors.ErrorReply, list[tuple[str, str]], Any], Awaitable[None]
]


def responses_path(path: str) -> str | None:
    """The part after ``/responses`` (``""``, ``/{id}``, ``/{id}/cancel``...), or None when
    ``path`` is not a Responses API path."""
    path = path.rstrip("/")
    for prefix in _PREFIXES:
        if path == prefix or path.startswith(prefix + "/"):
            return path[len(prefix) :]
    return None


def _not_found(rid: str) -> _errors.ErrorReply:
    return 404, {
        "error": {
            "message": f"Response with id '{rid}' not found.",
            "type": "invalid_request_error",
            "param": None,
            "code": None,
        }
    }


def _invalid(message: str, param: str | None = None) -> _errors.ErrorReply:
    return 400, {
        "error": {
            "message": message,
            "type": "invalid_request_error",
            "param": param,
            "code": None,
        }
    }


def _item_id(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(24)}"


def _input_items(value: Any) -> list[dict[str, Any]] | _errors.ErrorReply:
    """The request's ``input`` as stored input items (each with an id)."""
    if isinstance(value, str):
        value = [{"role": "user", "content": value}]
    if not isinstance(value, list) or not value:
        return _invalid("'input' must be a string or a non-empty list of items.", "input")
    items: list[dict[str, Any]] = []
    for raw in value:
        if not isinstance(raw, dict):
            return _invalid("Each item of 'input' must be an object.", "input")
        kind = raw.get("type", "message")
        if kind == "message":
            content = raw.get("content")
            role = raw.get("role")
            if role not in ("user", "assistant", "system", "developer"):
                return _invalid("Invalid value for 'input[].role'.", "input")
            if isinstance(content, str):
                part = "output_text" if role == "assistant" else "input_text"
                content = [{"type": part, "text": content}]
            if not isinstance(content, list):
                return _invalid("Invalid type for 'input[].content'.", "input")
            items.append(
                {
                    "id": raw.get("id") or _item_id("msg"),
                    "type": "message",
                    "role": role,
                    "content": content,
                    "status": "completed",
                }
            )
        else:
            items.append({"id": raw.get("id") or _item_id("item"), **raw})
    return items


def _item_chars(item: dict[str, Any]) -> int:
    content = item.get("content")
    if isinstance(content, list):
        return sum(len(p.get("text") or "") for p in content if isinstance(p, dict))
    return sum(len(str(item.get(k) or "")) for k in ("arguments", "output", "name"))


def _context_tokens(items: list[dict[str, Any]]) -> int:
    return sum(_text.estimate_tokens(_item_chars(i)) + 3 for i in items)


def _reasoning(model: str) -> bool:
    return model.startswith(("o1", "o3", "o4", "gpt-5"))


@dataclass
class _Stored:
    body: dict[str, Any]
    input_items: list[dict[str, Any]]
    context: list[dict[str, Any]]  # the whole conversation up to and including this answer
    tokens: list[str]
    events: list[bytes] = field(default_factory=list)
    done: asyncio.Event = field(default_factory=asyncio.Event)
    task: asyncio.Task[None] | None = None


@dataclass(frozen=True)
class _Plan:
    dep: DeploymentConfig
    body: dict[str, Any]  # the response object, completed
    stored: _Stored
    charge: int
    store: bool
    stream: bool
    background: bool
    background_s: float


class ResponsesApi:
    """Serves one region's Responses API; its stored responses live as long as the region."""

    def __init__(
        self,
        region: RegionConfig,
        latency: LatencyConfig,
        *,
        admit: Callable[[DeploymentConfig, int], Decision],
        throttled: Callable[[HttpConnection, DeploymentConfig, Any, Decision], Awaitable[None]],
        reply: Reply,
        headers: Callable[[Any, list[tuple[str, str]]], list[tuple[str, str]]],
        stats: Any,
        faults: FaultRegistry,
        cut_stream: Callable[[Fault, HttpConnection, str, int], Awaitable[None]],
    ) -> None:
        self._region = region
        self._latency = latency
        self._admit = admit
        self._throttled = throttled
        self._reply = reply
        self._headers = headers
        self._stats = stats
        self._faults = faults
        self._cut_stream = cut_stream
        self._stored: dict[str, _Stored] = {}

    def clear(self) -> None:
        for stored in self._stored.values():
            if stored.task is not None:
                stored.task.cancel()
        self._stored.clear()

    def ids(self) -> list[str]:
        return list(self._stored)

    async def serve(self, req: Request, conn: HttpConnection, route: Any, body: Any) -> None:
        if (
            req.path.startswith(_DATED_PREFIX)
            and req.query.get("api-version") not in DATED_VERSIONS
        ):
            await self._reply(conn, None, _errors.resource_not_found(), [], route)
            return
        rest = responses_path(req.path) or ""
        parts = [p for p in rest.split("/") if p]
        method = req.method
        if not parts and method == "POST":
            await self._create(conn, route, body)
            return
        if not parts or len(parts) > 2:
            await self._reply(conn, None, _errors.resource_not_found(), [], route)
            return
        rid = parts[0]
        stored = self._stored.get(rid)
        action = parts[1] if len(parts) == 2 else ""
        allowed = {"": ("GET", "DELETE"), "cancel": ("POST",), "input_items": ("GET",)}
        if method not in allowed.get(action, ()):
            await self._reply(conn, None, _errors.resource_not_found(), [], route)
            return
        if stored is None:
            self._stats.fail(None, "not_found")
            await self._reply(conn, None, _not_found(rid), [], route)
            return
        self._stats.status(None, 200)
        if action == "cancel":
            await self._cancel(conn, route, rid, stored)
        elif action == "input_items":
            await conn.send_json(
                200, _page(stored.input_items, req.query), self._headers(route, [])
            )
        elif method == "DELETE":
            del self._stored[rid]
            if stored.task is not None:
                stored.task.cancel()
            body = {"id": rid, "object": "response.deleted", "deleted": True}
            await conn.send_json(200, body, self._headers(route, []))
        elif req.query.get("stream") == "true":
            await stored.done.wait()
            after = int(req.query.get("starting_after") or -1)
            await self._send_events(conn, route, [], stored.events[after + 1 :])
        else:
            await conn.send_json(200, stored.body, self._headers(route, []))

    async def _cancel(self, conn: HttpConnection, route: Any, rid: str, stored: _Stored) -> None:
        if not stored.body.get("background"):
            reply = _invalid("Only responses created with background=true can be cancelled.")
            await self._reply(conn, None, reply, [], route)
            return
        if stored.body["status"] in ("queued", "in_progress"):
            if stored.task is not None:
                stored.task.cancel()
            stored.body.update(status="cancelled", output=[], usage=None)
            stored.done.set()
        await conn.send_json(200, stored.body, self._headers(route, []))

    # ------------------------------------------------------------------ create
    def _plan(self, dep: DeploymentConfig, body: dict[str, Any]) -> _Plan | _errors.ErrorReply:
        items = _input_items(body.get("input"))
        if isinstance(items, tuple):
            return items
        store = body.get("store", True) is not False
        background = bool(body.get("background"))
        if background and not store:
            return _invalid("Background responses must be stored (store=true).", "store")
        previous: _Stored | None = None
        prev_id = body.get("previous_response_id")
        if prev_id is not None:
            previous = self._stored.get(str(prev_id))
            if previous is None:
                return _not_found(str(prev_id))
        max_out = body.get("max_output_tokens")
        if max_out is not None and (not isinstance(max_out, int) or max_out < 16):
            return _invalid(
                "Invalid 'max_output_tokens': integer below minimum value 16.", "max_output_tokens"
            )
        instructions = body.get("instructions")
        history = previous.context if previous is not None else []
        cached_context = _context_tokens(history)
        input_tokens = _context_tokens(history + items) + 3
        if isinstance(instructions, str):
            input_tokens += _text.estimate_tokens(len(instructions)) + 3
        cached = 0
        if cached_context >= _CACHE_MIN:
            cached = cached_context // _CACHE_STEP * _CACHE_STEP
        seed = _text.seed_for(dep.name, history, items, instructions)
        output = _tools.plan_output(_chat_shape(body, [*history, *items]))
        if isinstance(output, tuple):
            return output
        natural = True
        calls: list[dict[str, Any]] = []
        if output.kind == "tools":
            tokens: list[str] = []
            for spec in output.calls:
                arguments = _tools.tool_arguments(spec, _text.seed_for(seed.hex(), spec.name))
                calls.append(
                    {
                        "id": _item_id("fc"),
                        "type": "function_call",
                        "status": "completed",
                        "call_id": f"call_{secrets.token_hex(12)}",
                        "name": spec.name,
                        "arguments": arguments,
                    }
                )
                tokens.extend(_pieces(arguments))
        elif output.kind == "json":
            value = _schema.instance(output.schema or {}, int.from_bytes(seed[:8], "big"))
            tokens = _pieces(json.dumps(value, ensure_ascii=False))
        else:
            tokens, natural = _text.generate(seed, max_out)
        reasoning = len(tokens) if _reasoning(dep.model) else 0
        text = "".join(tokens)
        message = {
            "id": _item_id("msg"),
            "type": "message",
            "status": "completed" if natural else "incomplete",
            "role": "assistant",
            "content": [{"type": "output_text", "text": text, "annotations": [], "logprobs": []}],
        }
        outputs = calls or [message]
        metadata = body.get("metadata") if isinstance(body.get("metadata"), dict) else {}
        try:
            background_s = float((metadata or {}).get("sim_background_s", _BACKGROUND_S))
        except (TypeError, ValueError):
            background_s = _BACKGROUND_S
        response = {
            "id": _item_id("resp"),
            "object": "response",
            "created_at": int(time.time()),
            "status": "completed" if natural else "incomplete",
            "background": background,
            "error": None,
            "incomplete_details": None if natural else {"reason": "max_output_tokens"},
            "instructions": instructions,
            "max_output_tokens": max_out,
            "model": dep.model,
            "output": outputs,
            "parallel_tool_calls": body.get("parallel_tool_calls", True),
            "previous_response_id": prev_id,
            "reasoning": {"effort": None, "summary": None},
            "store": store,
            "temperature": body.get("temperature", 1.0),
            "text": body.get("text") or {"format": {"type": "text"}},
            "tool_choice": body.get("tool_choice", "auto"),
            "tools": body.get("tools") or [],
            "top_p": body.get("top_p", 1.0),
            "truncation": body.get("truncation", "disabled"),
            "usage": {
                "input_tokens": input_tokens,
                "input_tokens_details": {"cached_tokens": cached},
                "output_tokens": len(tokens) + reasoning,
                "output_tokens_details": {"reasoning_tokens": reasoning},
                "total_tokens": input_tokens + len(tokens) + reasoning,
            },
            "user": body.get("user"),
            "metadata": metadata or {},
        }
        stored = _Stored(response, items, [*history, *items, *outputs], tokens)
        charge = input_tokens + (max_out if max_out is not None else dep.default_max_tokens)
        return _Plan(
            dep,
            response,
            stored,
            charge,
            store,
            bool(body.get("stream")),
            background,
            background_s,
        )

    async def _create(self, conn: HttpConnection, route: Any, body: Any) -> None:
        if not isinstance(body, dict):
            reply = _errors.bad_request("We could not parse the JSON body of your request.")
            await self._reply(conn, None, reply, [], route)
            return
        name = body.get("model")
        if not name:
            await self._reply(
                conn,
                None,
                _errors.bad_request("'model' is a required property.", "model"),
                [],
                route,
            )
            return
        dep = self._region.deployment(str(name))
        if dep is None:
            self._stats.fail(str(name), "not_found")
            await self._reply(conn, str(name), _errors.deployment_not_found(), [], route)
            return
        if dep.kind != "chat" or dep.batch:
            reply = _errors.operation_not_supported("responses", dep.model)
            await self._reply(conn, dep.name, reply, [], route)
            return
        plan = self._plan(dep, body)
        if isinstance(plan, tuple):
            self._stats.fail(dep.name, "bad_request")
            await self._reply(conn, dep.name, plan, [], route)
            return
        decision = self._admit(dep, plan.charge)
        if not decision.allowed:
            await self._throttled(conn, dep, route, decision)
            return
        usage = plan.body["usage"]
        self._stats.add(dep.name, "prompt_tokens", usage["input_tokens"])
        self._stats.add(dep.name, "completion_tokens", usage["output_tokens"])
        self._stats.status(dep.name, 200)
        stored = plan.stored
        if plan.store:
            self._stored[plan.body["id"]] = stored
        headers = self._headers(route, decision.headers())
        if plan.background and not plan.stream:
            final = dict(plan.body)
            plan.body.update(status="queued", output=[], usage=None, incomplete_details=None)
            stored.task = asyncio.get_running_loop().create_task(
                self._run_background(stored, final, plan.background_s)
            )
            await conn.send_json(200, plan.body, headers)
            return
        events = _events(plan.body, stored.tokens)
        stored.events = events
        stored.done.set()
        if not plan.stream:
            await self._pace(len(stored.tokens))
            await conn.send_json(200, plan.body, headers)
            return
        self._stats.add(dep.name, "streamed")
        cut = self._faults.take_mid_stream(dep.name)
        await self._send_events(conn, route, headers, events, paced=True, cut=cut, dep=dep.name)

    async def _run_background(self, stored: _Stored, final: dict[str, Any], seconds: float) -> None:
        await asyncio.sleep(min(0.05, seconds / 4))
        stored.body["status"] = "in_progress"
        await asyncio.sleep(seconds)
        stored.body.update(final)
        stored.events = _events(stored.body, stored.tokens)
        stored.done.set()

    async def _pace(self, count: int) -> None:
        delay = self._latency.ttft_ms / 1000 + self._latency.per_token_ms / 1000 * max(0, count - 1)
        if delay:
            await asyncio.sleep(delay)

    async def _send_events(
        self,
        conn: HttpConnection,
        route: Any,
        headers: list[tuple[str, str]],
        events: list[bytes],
        *,
        paced: bool = False,
        cut: Fault | None = None,
        dep: str = "",
    ) -> None:
        """Write ``events``; a mid-stream fault (``cut``) cuts them after ``after_chunks``."""
        await conn.start_chunked(
            200,
            [
                ("content-type", "text/event-stream; charset=utf-8"),
                ("cache-control", "no-cache"),
                *(headers or self._headers(route, [])),
            ],
        )
        per_token = self._latency.per_token_ms / 1000
        for index, event in enumerate(events):
            if conn.closed:
                return
            if cut is not None and index >= (cut.after_chunks or 0):
                await self._cut_stream(cut, conn, dep, index)
                return
            if paced and (self._latency.ttft_ms or per_token):
                await conn.flush()
                await asyncio.sleep(self._latency.ttft_ms / 1000 if index == 0 else per_token)
            conn.write_chunk(event)
        await conn.end_chunked()


def _page(items: list[dict[str, Any]], query: dict[str, str]) -> dict[str, Any]:
    order = query.get("order", "desc")
    ordered = list(reversed(items)) if order == "desc" else list(items)
    after = query.get("after")
    if after:
        ids = [i["id"] for i in ordered]
        ordered = ordered[ids.index(after) + 1 :] if after in ids else []
    try:
        limit = max(1, min(100, int(query.get("limit") or 20)))
    except ValueError:
        limit = 20
    data = ordered[:limit]
    return {
        "object": "list",
        "data": data,
        "first_id": data[0]["id"] if data else None,
        "last_id": data[-1]["id"] if data else None,
        "has_more": len(ordered) > limit,
    }


def _sse(kind: str, payload: dict[str, Any]) -> bytes:
    data = json.dumps({"type": kind, **payload}, separators=(",", ":"))
    return f"event: {kind}\ndata: {data}\n\n".encode()


def _events(final: dict[str, Any], tokens: list[str]) -> list[bytes]:
    """The documented event sequence of ``final`` (a finished response), numbered from 0: for a
    message its content part and text deltas, for a function call its argument deltas."""
    start = dict(final, status="in_progress", output=[], usage=None, incomplete_details=None)
    sequence: list[tuple[str, dict[str, Any]]] = [
        ("response.created", {"response": start}),
        ("response.in_progress", {"response": start}),
    ]
    for index, item in enumerate(final["output"]):
        if item["type"] == "function_call":
            where = {"item_id": item["id"], "output_index": index}
            sequence += [
                (
                    "response.output_item.added",
                    {"output_index": index, "item": dict(item, status="in_progress", arguments="")},
                ),
                ("response.function_call_arguments.delta", {**where, "delta": item["arguments"]}),
                (
                    "response.function_call_arguments.done",
                    {**where, "name": item["name"], "arguments": item["arguments"]},
                ),
                ("response.output_item.done", {"output_index": index, "item": item}),
            ]
            continue
        where = {"item_id": item["id"], "output_index": index, "content_index": 0}
        text = item["content"][0]["text"]
        sequence += [
            (
                "response.output_item.added",
                {"output_index": index, "item": dict(item, status="in_progress", content=[])},
            ),
            (
                "response.content_part.added",
                {**where, "part": {"type": "output_text", "text": "", "annotations": []}},
            ),
            *(
                ("response.output_text.delta", {**where, "delta": token, "logprobs": []})
                for token in tokens
            ),
            ("response.output_text.done", {**where, "text": text, "logprobs": []}),
            ("response.content_part.done", {**where, "part": item["content"][0]}),
            ("response.output_item.done", {"output_index": index, "item": item}),
        ]
    last = "response.completed" if final["status"] == "completed" else "response.incomplete"
    sequence.append((last, {"response": final}))
    return [
        _sse(kind, {**payload, "sequence_number": n}) for n, (kind, payload) in enumerate(sequence)
    ]


def _pieces(text: str) -> list[str]:
    """``text`` as token-sized pieces (four characters each)."""
    return [text[i : i + 4] for i in range(0, len(text), 4)] or [""]


def _chat_shape(body: dict[str, Any], context: list[dict[str, Any]]) -> dict[str, Any]:
    """The request as a chat body, for the chat simulator's choice of output (``_tools``):
    function tools, ``tool_choice``, ``text.format`` as ``response_format``, and the
    conversation as messages (a function call's output is a ``tool`` message)."""
    chat: dict[str, Any] = {}
    tools = body.get("tools")
    if isinstance(tools, list):
        chat["tools"] = [
            {
                "type": "function",
                "function": {
                    k: t[k] for k in ("name", "description", "parameters", "strict") if k in t
                },
            }
            for t in tools
            if isinstance(t, dict) and t.get("type") == "function"
        ] or None
    choice = body.get("tool_choice")
    if isinstance(choice, dict) and choice.get("type") == "function":
        choice = {"type": "function", "function": {"name": choice.get("name")}}
    if choice is not None and chat.get("tools"):
        chat["tool_choice"] = choice
    if body.get("parallel_tool_calls") is not None and chat.get("tools"):
        chat["parallel_tool_calls"] = body["parallel_tool_calls"]
    fmt = (body.get("text") or {}).get("format") if isinstance(body.get("text"), dict) else None
    if isinstance(fmt, dict) and fmt.get("type") == "json_schema":
        chat["response_format"] = {
            "type": "json_schema",
            "json_schema": {k: fmt[k] for k in ("name", "schema", "strict") if k in fmt},
        }
    elif isinstance(fmt, dict) and fmt.get("type") == "json_object":
        chat["response_format"] = {"type": "json_object"}
    messages: list[dict[str, Any]] = []
    for item in context:
        kind = item.get("type")
        if kind == "message":
            messages.append({"role": item.get("role"), "content": item.get("content")})
        elif kind == "function_call":
            messages.append({"role": "assistant", "content": None})
        elif kind == "function_call_output":
            messages.append({"role": "tool", "content": str(item.get("output") or "")})
    chat["messages"] = messages
    return {k: v for k, v in chat.items() if v is not None}
