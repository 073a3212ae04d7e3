"""Deterministic, realistic-looking completion text and the token estimates around it."""

from __future__ import annotations

import hashlib
import json
import math
import random
from collections.abc import Iterable
from typing import Any

__all__ = [
    "charge_chars",
    "definition_chars",
    "estimate_tokens",
    "generate",
    "message_text",
    "prompt_tokens",
    "seed_for",
]

_WORDS = [
    "the",
    "a",
    "an",
    "of",
    "to",
    "in",
    "for",
    "on",
    "with",
    "by",
    "from",
    "about",
    "across",
    "after",
    "before",
    "between",
    "during",
    "into",
    "over",
    "under",
    "system",
    "request",
    "response",
    "region",
    "gateway",
    "model",
    "token",
    "stream",
    "latency",
    "quota",
    "capacity",
    "retry",
    "backoff",
    "deployment",
    "service",
    "client",
    "server",
    "message",
    "answer",
    "question",
    "result",
    "value",
    "signal",
    "window",
    "minute",
    "second",
    "simple",
    "clear",
    "steady",
    "careful",
    "quick",
    "small",
    "large",
    "local",
    "remote",
    "primary",
    "secondary",
    "healthy",
    "busy",
    "ready",
    "is",
    "are",
    "was",
    "were",
    "will",
    "can",
    "should",
    "may",
    "must",
    "might",
    "does",
    "did",
    "has",
    "have",
    "had",
    "keeps",
    "sends",
    "returns",
    "handles",
    "checks",
    "routes",
    "balances",
    "measures",
    "reports",
    "explains",
    "describes",
    "shows",
    "finds",
    "builds",
    "tests",
    "runs",
    "starts",
    "data",
    "cache",
    "queue",
    "batch",
    "record",
    "event",
    "error",
    "limit",
    "count",
    "rate",
    "time",
    "path",
    "route",
    "policy",
    "state",
    "change",
    "first",
    "next",
    "last",
    "other",
    "same",
    "each",
    "every",
    "many",
    "few",
    "more",
    "most",
    "some",
    "any",
    "all",
    "both",
    "either",
    "neither",
]


def message_text(content: Any) -> str:
    """The text of a message ``content`` (a string or a list of parts)."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(
            p.get("text", "")
            for p in content
            if isinstance(p, dict) and isinstance(p.get("text"), str)
        )
    return ""


def charge_chars(messages: Iterable[Any]) -> int:
    """Characters the rate limiter's estimate counts in the messages: each message's text (a
    string, or its text parts), and each assistant tool call's function name and arguments."""
    total = 0
    for m in messages:
        if isinstance(m, dict):
            total += _content_chars(m.get("content")) + _calls_chars(m)
    return total


def _content_chars(content: Any) -> int:
    if isinstance(content, str):
        return len(content)
    if isinstance(content, list):
        return sum(
            len(p["text"])
            for p in content
            if isinstance(p, dict) and isinstance(p.get("text"), str)
        )
    return 0


def _calls_chars(message: dict[str, Any]) -> int:
    functions: list[Any] = [message.get("function_call")]
    calls = message.get("tool_calls")
    if isinstance(calls, list):
        functions.extend(c.get("function") for c in calls if isinstance(c, dict))
    return sum(
        len(f[key])
        for f in functions
        if isinstance(f, dict)
        for key in ("name", "arguments")
        if isinstance(f.get(key), str)
    )


def definition_chars(body: dict[str, Any]) -> int:
    """Characters of the request's tool definitions (``tools``, legacy ``functions``), each as
    compact JSON."""
    total = 0
    for key in ("tools", "functions"):
        items = body.get(key)
        if isinstance(items, list):
            total += sum(
                len(json.dumps(d, ensure_ascii=False, separators=(",", ":"), default=str))
                for d in items
            )
    return total


def estimate_tokens(chars: int) -> int:
    """Azure-style character estimate: one token per four characters, rounded up."""
    return math.ceil(chars / 4)


def prompt_tokens(messages: list[Any]) -> int:
    """Usage prompt_tokens: per-message estimate (text and tool calls) plus chat-format overhead
    (3 per message, 3 primer). Tool definitions and images are added by the caller."""
    return (
        sum(
            estimate_tokens(_content_chars(m.get("content")) + _calls_chars(m)) + 3
            for m in messages
            if isinstance(m, dict)
        )
        + 3
    )


def seed_for(*parts: Any) -> bytes:
    """A stable seed from JSON-able parts."""
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).digest()


def generate(seed: bytes, max_tokens: int | None) -> tuple[list[str], bool]:
    """Token strings of a reply, and whether it ended naturally (False: cut by max_tokens)."""
    rng = random.Random(seed)
    natural = 16 + rng.randrange(112)
    limit = natural if max_tokens is None else min(natural, max_tokens)
    tokens: list[str] = []
    words_left = rng.randint(6, 14)
    start = True
    while len(tokens) < limit:
        remaining = natural - len(tokens)
        if remaining == 1 or words_left == 0:
            tokens.append(".")
            words_left = rng.randint(6, 14)
            start = True
            continue
        word = rng.choice(_WORDS)
        if start:
            word = word.capitalize()
        tokens.append(word if not tokens else " " + word)
        start = False
        words_left -= 1
    return tokens, len(tokens) >= natural
