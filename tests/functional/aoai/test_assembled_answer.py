"""A non-streaming chat is streamed from upstream and assembled (``stream_upstream``, the
default): its idle deadline is one timer for the whole answer, not one per chunk, and it still
ends a stalled answer as a timeout that fails over. Real SDK, simulated regions."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from shared.aoai import FailureKind

from ._helpers import chat, ctx

PREFER_EAST = {"eastus2": 0, "swedencentral": 1}


@contextmanager
def _timers() -> Iterator[Counter[str]]:
    """Count the timers the running loop is asked for, by what they call."""
    loop = asyncio.get_running_loop()
    counts: Counter[str] = Counter()
    call_at = loop.call_at

    def counted(when: float, callback: Any, *args: Any, **kwargs: Any) -> Any:
        counts[getattr(callback, "__qualname__", type(callback).__name__)] += 1
        return call_at(when, callback, *args, **kwargs)

    loop.call_at = counted  # type: ignore[method-assign]
    try:
        yield counts
    finally:
        del loop.call_at  # the class's own method again


async def test_a_long_answer_costs_a_few_timers_not_one_per_chunk(
    sim_factory, gateway_settings_factory, gateway_factory
):
    sim = sim_factory()
    gateway = gateway_factory(gateway_settings_factory(sim, regions=["eastus2"]))
    await gateway.chat(chat(max_tokens=5), ctx())  # connections and clients are warm
    with _timers() as counts:
        result = await gateway.chat(chat("Tell me a long story.", max_tokens=300), ctx())
    assert result.usage is not None and result.usage.completion_tokens > 50  # dozens of chunks
    assert [a.outcome for a in result.attempts] == [None]
    # asyncio.timeout: the first-byte deadline, the call's deadline, the drain after [DONE];
    # the idle deadline is one timer (re-armed only when it comes due while chunks flow).
    assert counts["Timeout._on_timeout"] <= 4, counts
    assert counts["IdleDeadline._check"] <= 2, counts


async def test_an_answer_that_stalls_mid_way_times_out_on_the_idle_deadline_and_fails_over(
    sim_factory, gateway_settings_factory, gateway_factory
):
    sim = sim_factory()
    gateway = gateway_factory(
        gateway_settings_factory(
            sim,
            priorities=PREFER_EAST,
            idle_timeout_s=1.0,
            read_timeout_s=60.0,
            call_deadline_s=120.0,
        )
    )
    sim.region("eastus2").fault("hang", after_chunks=3, count=1, deployment="gpt-4o-prod")
    result = await gateway.chat(chat(), ctx())
    assert [(a.region, a.outcome) for a in result.attempts] == [
        ("eastus2", FailureKind.TIMEOUT),
        ("swedencentral", None),
    ]
    assert "idle_timeout_s" in (result.attempts[0].detail or "")
    assert result.response["choices"][0]["message"]["content"]
