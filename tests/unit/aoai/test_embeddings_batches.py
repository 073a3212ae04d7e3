"""The embeddings fan-out: every part's attempts survive a failure, and the error is raised as
itself (never an ExceptionGroup)."""

from __future__ import annotations

import asyncio

import pytest

from shared.aoai import Attempt, FailureKind, RegionsUnavailable
from shared.aoai._embeddings_batches import fan_out, merge_embeddings, split_inputs
from shared.aoai._failure_policy import CallState


def _attempt(region: str, outcome: FailureKind | None = None) -> Attempt:
    return Attempt(region, f"d-{region}", outcome, None if outcome else 200, 1.0)


async def test_a_failing_part_keeps_every_parts_attempts_and_cancels_the_rest() -> None:
    cancelled = asyncio.Event()
    first_done = asyncio.Event()

    async def send(batch: list[str], call: CallState) -> dict:
        name = batch[0]
        call.attempts.append(_attempt(name, FailureKind.THROTTLED))
        if name == "a":
            call.attempts.append(_attempt(name))
            first_done.set()
            return {"data": []}
        if name == "b":
            await first_done.wait()
            raise RegionsUnavailable("b failed", attempts=tuple(call.attempts))
        try:
            await asyncio.Event().wait()  # "c" never finishes on its own
        except asyncio.CancelledError:
            cancelled.set()
            raise
        raise AssertionError("unreachable")

    calls = [CallState() for _ in range(3)]
    with pytest.raises(RegionsUnavailable) as caught:
        await fan_out([["a"], ["b"], ["c"]], send, calls)
    assert cancelled.is_set()
    assert [(a.region, a.outcome) for a in caught.value.attempts] == [
        ("a", FailureKind.THROTTLED),
        ("a", None),
        ("b", FailureKind.THROTTLED),
        ("c", FailureKind.THROTTLED),
    ]


async def test_an_unexpected_error_is_raised_as_itself() -> None:
    async def send(batch: list[str], call: CallState) -> dict:
        if batch[0] == "bad":
            raise KeyError("broken body")
        return {"data": []}

    with pytest.raises(KeyError):
        await fan_out([["ok"], ["bad"]], send, [CallState(), CallState()])


async def test_all_parts_succeed_in_batch_order() -> None:
    async def send(batch: list[int], call: CallState) -> list[int]:
        await asyncio.sleep(0.001 * (3 - batch[0]))  # later batches finish first
        return batch

    assert await fan_out([[0], [1], [2]], send, [CallState() for _ in range(3)]) == [[0], [1], [2]]


def test_split_and_merge_keep_the_input_order() -> None:
    parts = split_inputs(list("abcdefg"), 3)
    assert parts == [["a", "b", "c"], ["d", "e", "f"], ["g"]]
    bodies = [
        {
            "object": "list",
            "model": "m",
            "data": [{"index": i, "embedding": [ord(x)]} for i, x in reversed(list(enumerate(p)))],
            "usage": {"prompt_tokens": len(p), "total_tokens": len(p)},
        }
        for p in parts
    ]
    merged = merge_embeddings(bodies, 3)
    assert [d["index"] for d in merged["data"]] == list(range(7))
    assert [d["embedding"][0] for d in merged["data"]] == [ord(x) for x in "abcdefg"]
    assert merged["usage"] == {"prompt_tokens": 7, "total_tokens": 7}
