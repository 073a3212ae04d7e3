"""The timer's singleton lock (a blob lease in Azurite): three dev server timer pumps, each with
its own lease client as three processes would have, run each tick exactly once between them."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from itertools import pairwise

from devserver.lease import TimerLease
from devserver.queues import TimerPump
from shared.jobs import TimerSchedule

EVERY_2S = "*/2 * * * * *"


def _pumps(azurite, host: str, ran: list[tuple[int, object]]) -> list[TimerPump]:
    def handler(index: int):
        async def timer(request) -> None:
            ran.append((index, request))

        return timer

    return [
        TimerPump(
            TimerSchedule.parse(EVERY_2S),
            handler(i),
            name="backlog_timer",
            lease=TimerLease(
                azurite.connection_string,
                host_id=host,
                function_name="backlog_timer",
                owner=f"instance-{i}",
            ),
        )
        for i in range(3)
    ]


async def _until(condition, timeout_s: float = 90.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout_s
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, "timed out"
        await asyncio.sleep(0.05)


async def test_exactly_one_of_three_runs_each_tick_and_another_takes_over(azurite, unique_name):
    ran: list[tuple[int, object]] = []
    pumps = _pumps(azurite, unique_name("host"), ran)
    stops = [asyncio.Event() for _ in pumps]
    tasks = [asyncio.create_task(p.run(s)) for p, s in zip(pumps, stops, strict=True)]
    try:
        # A positive signal that every pump had its chance at several ticks: each either ran or
        # skipped (the lock was held elsewhere) at least 3 of them.
        await _until(lambda: min(len(p.ticks) + p.skipped for p in pumps) >= 3)
        ticks = [t for p in pumps for t in p.ticks]
        assert len(ticks) == len(set(ticks))  # no tick ran twice
        holders = [i for i, p in enumerate(pumps) if p.ticks]
        assert len(holders) == 1  # the holder keeps the lease and renews it each tick
        holder = holders[0]
        # The holder goes away (releases its lease on shutdown): another takes the next ticks.
        stops[holder].set()
        await tasks[holder]
        before = {i: len(p.ticks) for i, p in enumerate(pumps)}
        await _until(
            lambda: sum(len(p.ticks) - before[i] for i, p in enumerate(pumps) if i != holder) >= 2
        )
        ticks = sorted(t for p in pumps for t in p.ticks)
        assert len(ticks) == len(set(ticks))
        successors = [i for i, p in enumerate(pumps) if i != holder and len(p.ticks) > before[i]]
        assert len(successors) == 1
        # Every tick ran somewhere, once: consecutive 2-second steps, bar the hand-over.
        gaps = [b - a for a, b in pairwise(ticks)]
        assert sum(1 for g in gaps if g != timedelta(seconds=2)) <= 1
        assert len(ran) == len(ticks)
    finally:
        for stop in stops:
            stop.set()
        await asyncio.gather(*tasks, return_exceptions=True)
