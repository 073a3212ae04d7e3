"""One ``chat.completion`` body from the ``chat.completion.chunk`` events of a stream.

Non-streaming chat calls are sent upstream as streams (``stream_upstream``), so a silent region
is noticed by the first-byte and idle deadlines within seconds while a long generation, which
keeps sending chunks, is never cut off. The caller still gets the body Azure would have sent
without streaming: per choice the message (role, content, refusal, tool calls, legacy function
call), ``finish_reason``, ``logprobs`` and ``content_filter_results``; the top-level ``id``,
``created``, ``model``, ``system_fingerprint``, ``prompt_filter_results`` and ``usage``.

Upstreams differ: some ignore ``stream_options.include_usage`` (no usage chunk), some name the
model in another field. The body is completed (``complete_chat_body``, also for a body answered
without streaming): ``model`` is the deployment when the upstream gave none, and ``usage``, when
absent or invalid (``usage_of``), is the gateway's estimate (the request's prompt estimate, the
answer's text and tool calls at four characters per token) marked ``"estimated": true``. A
chunk or body that is not the expected JSON shape raises ``MalformedAnswer``: the region's fault.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ._estimate import completion_estimate
from ._results import estimated_usage, usage_of

__all__ = ["ChatAssembler", "MalformedAnswer", "complete_chat_body"]


_TOP_KEYS = ("id", "created", "model", "system_fingerprint")


class MalformedAnswer(ValueError):
    """An upstream answer (a body or a stream chunk) that is not the JSON shape of a chat answer."""


def complete_chat_body(
    body: Any, *, deployment: str, prompt_tokens: Callable[[], int]
) -> dict[str, Any]:
    """Check a ``chat.completion`` body's shape and fill in what the upstream left out: the
    model (the deployment) and the usage (estimated; ``prompt_tokens`` is called only then).
    Raises ``MalformedAnswer``."""
    if not isinstance(body, dict):
        raise MalformedAnswer(f"a JSON {type(body).__name__}, not an object")
    choices = body.get("choices")
    if not isinstance(choices, list) or not all(
        isinstance(c, dict) and isinstance(c.get("message", {}), dict) for c in choices
    ):
        raise MalformedAnswer("no list of choice objects")
    if not body.get("model") or not isinstance(body.get("model"), str):
        body["model"] = deployment
    if usage_of(body.get("usage")) is None:
        body["usage"] = estimated_usage(prompt_tokens(), completion_estimate(choices))
    return body


class _Choice:
    __slots__ = ("content", "filters", "finish", "function", "logprobs", "refusal", "role", "tools")

    def __init__(self) -> None:
        self.role = "assistant"
        self.content: list[str] = []
        self.refusal: list[str] = []
        self.tools: dict[int, dict[str, Any]] = {}
        self.function: dict[str, Any] | None = None
        self.finish: str | None = None
        self.logprobs: dict[str, list[Any]] | None = None
        self.filters: dict[str, Any] | None = None

    def add(self, choice: dict[str, Any]) -> None:
        delta = choice.get("delta") or {}
        if delta.get("role"):
            self.role = delta["role"]
        if delta.get("content"):
            self.content.append(delta["content"])
        if delta.get("refusal"):
            self.refusal.append(delta["refusal"])
        for call in delta.get("tool_calls") or ():
            slot = self.tools.setdefault(
                int(call.get("index", len(self.tools))),
                {"id": None, "type": "function", "function": {"name": "", "arguments": ""}},
            )
            if call.get("id"):
                slot["id"] = call["id"]
            if call.get("type"):
                slot["type"] = call["type"]
            function = call.get("function") or {}
            slot["function"]["name"] += function.get("name") or ""
            slot["function"]["arguments"] += function.get("arguments") or ""
        if delta.get("function_call"):
            part = delta["function_call"]
            if self.function is None:
                self.function = {"name": "", "arguments": ""}
            self.function["name"] += part.get("name") or ""
            self.function["arguments"] += part.get("arguments") or ""
        finish = choice.get("finish_reason") or delta.get("finish_reason")
        if finish:
            self.finish = finish
        logprobs = choice.get("logprobs")
        if isinstance(logprobs, dict):
            if self.logprobs is None:
                self.logprobs = {}
            for key, items in logprobs.items():
                if isinstance(items, list):
                    self.logprobs.setdefault(key, []).extend(items)
        if choice.get("content_filter_results"):
            self.filters = choice["content_filter_results"]

    def body(self, index: int) -> dict[str, Any]:
        message: dict[str, Any] = {
            "role": self.role,
            "content": "".join(self.content) if self.content or not self.tools else None,
        }
        if self.refusal:
            message["refusal"] = "".join(self.refusal)
        if self.tools:
            message["tool_calls"] = [self.tools[i] for i in sorted(self.tools)]
        if self.function is not None:
            message["function_call"] = self.function
        out: dict[str, Any] = {
            "index": index,
            "message": message,
            "finish_reason": self.finish,
            "logprobs": self.logprobs,
        }
        if self.filters is not None:
            out["content_filter_results"] = self.filters
        return out


class ChatAssembler:
    """Feed chunks with ``add``; ``finished`` once every choice seen has a finish_reason."""

    __slots__ = ("_choices", "_missing", "_top", "_usage")

    def __init__(self) -> None:
        self._choices: dict[int, _Choice] = {}
        self._top: dict[str, Any] = {}
        self._missing: tuple[str, ...] = (
            _TOP_KEYS  # top-level keys not seen yet (the first value is kept)
        )
        self._usage: dict[str, Any] | None = None

    def add(self, chunk: Any) -> None:
        """One chunk; ``MalformedAnswer`` when it is not a chat chunk's shape."""
        if not isinstance(chunk, dict):
            raise MalformedAnswer(f"a stream event that is a JSON {type(chunk).__name__}")
        try:
            self._add(chunk)
        except (AttributeError, TypeError, ValueError) as exc:
            raise MalformedAnswer(f"a malformed chunk ({type(exc).__name__})") from exc

    def _add(self, chunk: dict[str, Any]) -> None:
        top = self._top
        if self._missing:
            for key in self._missing:
                if chunk.get(key):
                    top[key] = chunk[key]
            self._missing = tuple(key for key in self._missing if key not in top)
        if chunk.get("prompt_filter_results"):
            top["prompt_filter_results"] = chunk["prompt_filter_results"]
        if chunk.get("usage"):
            self._usage = chunk["usage"]
        choices = self._choices
        for choice in chunk.get("choices") or ():
            index = int(choice.get("index", 0))
            known = choices.get(index)
            if known is None:
                known = choices[index] = _Choice()
            known.add(choice)

    @property
    def finished(self) -> bool:
        return bool(self._choices) and all(c.finish for c in self._choices.values())

    def body(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "id": self._top.get("id", ""),
            "object": "chat.completion",
            "created": self._top.get("created", 0),
            "model": self._top.get("model", ""),
            "choices": [self._choices[i].body(i) for i in sorted(self._choices)],
            "usage": self._usage,
        }
        if "system_fingerprint" in self._top:
            out["system_fingerprint"] = self._top["system_fingerprint"]
        if "prompt_filter_results" in self._top:
            out["prompt_filter_results"] = self._top["prompt_filter_results"]
        return out
