"""One ``chat.completion`` body from the ``chat.completion.chunk`` events of a stream.

Non-streaming chat calls are sent upstream as streams (``stream_upstream``), so a silent region
is noticed by the first-byte and idle deadlines within seconds while a long generation, which
keeps sending chunks, is never cut off. The caller still gets the body Azure would have sent
without streaming: per choice the message (role, content, refusal, tool calls, legacy function
call), ``finish_reason``, ``logprobs`` and ``content_filter_results``; the top-level ``id``,
``created``, ``model``, ``system_fingerprint``, ``prompt_filter_results`` and ``usage``.
"""

from __future__ import annotations

from typing import Any

__all__ = ["ChatAssembler"]


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

    __slots__ = ("_choices", "_top", "_usage")

    def __init__(self) -> None:
        self._choices: dict[int, _Choice] = {}
        self._top: dict[str, Any] = {}
        self._usage: dict[str, Any] | None = None

    def add(self, chunk: dict[str, Any]) -> None:
        for key in ("id", "created", "model", "system_fingerprint"):
            if chunk.get(key) and not self._top.get(key):
                self._top[key] = chunk[key]
        if chunk.get("prompt_filter_results"):
            self._top["prompt_filter_results"] = chunk["prompt_filter_results"]
        if chunk.get("usage"):
            self._usage = chunk["usage"]
        for choice in chunk.get("choices") or ():
            self._choices.setdefault(int(choice.get("index", 0)), _Choice()).add(choice)

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
