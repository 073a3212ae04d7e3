"""Embeddings over the batch limit: split the inputs, send the parts concurrently, merge.

A batch larger than the smallest ``max_inputs`` of the alias's deployments is cut into parts
of that size; each part is its own routed call. The answer is reassembled in input order with
the usage summed. When a part fails, the others are cancelled and the call ends with that
part's error, carrying the attempts of every part (also those cancelled on the way).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine, Sequence
from typing import Any, TypeVar

from ._exceptions import GatewayError
from ._failure_policy import CallState

__all__ = ["fan_out", "merge_embeddings", "split_inputs"]

T = TypeVar("T")


def split_inputs(inputs: list[Any], size: int) -> list[list[Any]]:
    return [inputs[i : i + size] for i in range(0, len(inputs), size)]


async def fan_out(
    batches: Sequence[list[Any]],
    send: Callable[[list[Any], CallState], Coroutine[Any, Any, T]],
    calls: Sequence[CallState],
) -> list[T]:
    """Run ``send(batch, call)`` for every batch at once; the results in batch order.

    The first part to fail cancels the others; its error is raised as it is (never an
    ``ExceptionGroup``), a ``GatewayError`` with the attempts of every part."""
    tasks = [asyncio.create_task(send(b, c)) for b, c in zip(batches, calls, strict=True)]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
    finally:
        pending = [t for t in tasks if not t.done()]
        for task in pending:
            task.cancel()
        if pending:
            await asyncio.wait(pending)
    errors = [t.exception() for t in tasks if not t.cancelled()]  # retrieves every one
    error = next((e for e in errors if e is not None), None)
    if error is not None:
        if isinstance(error, GatewayError):
            error.attempts = tuple(a for call in calls for a in call.attempts)
        raise error
    return [task.result() for task in tasks]


def merge_embeddings(bodies: Sequence[dict[str, Any]], size: int) -> dict[str, Any]:
    """One embeddings body from the parts' bodies (``size`` inputs each but the last)."""
    data: list[dict[str, Any]] = []
    prompt = total = 0
    for offset, body in enumerate(bodies):
        for item in sorted(body.get("data") or (), key=lambda d: d.get("index", 0)):
            data.append(dict(item, index=offset * size + item.get("index", 0)))
        usage = body.get("usage") or {}
        prompt += usage.get("prompt_tokens", 0) or 0
        total += usage.get("total_tokens", 0) or 0
    first = bodies[0]
    return {
        "object": first.get("object", "list"),
        "data": data,
        "model": first.get("model"),
        "usage": {"prompt_tokens": prompt, "total_tokens": total},
    }
