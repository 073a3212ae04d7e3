"""Backlog end-to-end harness: the test broker, Azurite and the simulator, driven by the dev
server's queue side (peek-lock, complete on return, abandon on raise, timer on its schedule).

The pumps call the same trigger wiring as ``function_app``'s handlers (``BacklogTriggers``), on
a ``Backlog`` built by the composition root (``shared.runtime.build_backlog``) so tests can pass
a clock or a checkpoint (fault-injection seam);
``test_local_e2e.py`` runs the real ``function_app`` handlers through ``shared.runtime``.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
import pytest_asyncio

from devserver.queues import QueueSide
from shared import runtime
from shared.jobs import Backlog, BacklogTriggers, JobMessage
from shared.settings import load_backlog_settings
from testpeers.gateway import unique_ledger_table
from tests.fixtures.sim import start_sim

__all__ = ["REGIONS", "Harness", "backlog_env", "e2e_sim", "harness_factory", "module_sim"]

REGIONS = ("eastus2", "swedencentral")


def backlog_env(
    broker: Any, azurite: Any, unique_name: Callable[[str], str], **extra: str
) -> dict[str, str]:
    return {
        "BACKLOG_QUEUE": unique_name("backlog"),
        "PARKING_QUEUE": unique_name("parked"),
        "RETRY_TIMER_SCHEDULE": "*/1 * * * * *",
        "BACKLOG_JOBS_TABLE": unique_name("jobs"),
        "BACKLOG_RESULTS_CONTAINER": unique_name("results"),
        "ServiceBusConnection": broker.connection_string,
        "AzureWebJobsStorage": azurite.connection_string,
        "GATEWAY_LEDGER_TABLE": unique_ledger_table(),
        "BACKLOG_DLQ_REDRIVE_DELAY_S": "0",
        "BACKLOG_DEFER_S": "1",
        "BACKLOG_REDRIVE_CLAIM_S": "5",
        "BACKLOG_REPLY_QUEUES": '{"*": ["replies*"]}',  # unique_name("replies") in every test
        **extra,
    }


@dataclass
class Harness:
    backlog: Backlog
    broker: Any
    env: dict[str, str]
    reply_queue: str
    side: QueueSide | None = None
    stop: asyncio.Event = field(default_factory=asyncio.Event)
    task: asyncio.Task[None] | None = None
    calls: Counter[str] = field(default_factory=Counter)

    @property
    def store(self) -> Any:
        return self.backlog.services.store

    def job(self, content: str = "hello", **fields: Any) -> JobMessage:
        request = fields.pop("request", None) or {
            "model": "gpt-4o",
            "messages": [{"role": "user", "content": content}],
            "max_tokens": 16,
        }
        return JobMessage(request=request, reply_to=self.reply_queue, **fields)

    async def submit(self, *jobs: JobMessage) -> list[str]:
        for job in jobs:
            await self.backlog.submit(job)
        return [j.job_id for j in jobs]

    async def wait_terminal(self, job_ids: list[str], timeout: float = 60.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        pending = set(job_ids)
        done: dict[str, Any] = {}
        while pending and time.monotonic() < deadline:
            for job_id in list(pending):
                record = await self.store.get(job_id)
                if record is not None and record.terminal and record.reply_state != "pending":
                    done[job_id] = record
                    pending.discard(job_id)
            if pending:
                await asyncio.sleep(0.1)
        assert not pending, (
            f"{len(pending)} jobs not terminal after {timeout}s: {sorted(pending)[:5]}"
        )
        return done

    async def settled(self, queue: str | None = None, timeout: float = 30.0) -> None:
        """Wait until every message of ``queue`` (the backlog queue by default) is settled:
        none visible, locked (in a handler) or scheduled. The positive signal that no further
        delivery can come, so counts read afterwards are final."""
        name = queue or self.env["BACKLOG_QUEUE"]
        deadline = time.monotonic() + timeout
        while self.broker.queue_count(name) or self.broker.scheduled_count(name):
            assert time.monotonic() < deadline, f"{name} not settled after {timeout}s"
            await asyncio.sleep(0.05)

    def replies(self) -> list[dict[str, Any]]:
        out = []
        for message in self.broker.messages(self.reply_queue):
            body = json.loads(message.body)
            body["_message_id"] = message.message_id
            body["_correlation_id"] = message.correlation_id
            out.append(body)
        return out

    async def start(
        self, *, timer: bool = True, wrap: Callable[[str, Any], Any] | None = None
    ) -> Harness:
        handlers = BacklogTriggers(self.backlog).by_function()  # the app's wiring

        def choose(name: str, default: Any) -> Any:
            handler = handlers.get(name, default)

            async def counted(arg: Any) -> None:
                self.calls[name] += 1
                await (wrap(name, handler) if wrap else handler)(arg)

            return counted

        import function_app

        side = QueueSide(
            function_app.app,
            self.env,
            host_json={"extensions": {"serviceBus": {"maxConcurrentCalls": 16}}},
        ).build(wrap=choose)
        if not timer:
            side.pumps = [p for p in side.pumps if p.name != "backlog_timer"]
        self.side = side
        self.task = asyncio.create_task(side.run(self.stop))
        return self

    async def aclose(self) -> None:
        if self.task is not None:
            self.stop.set()
            try:
                await asyncio.wait_for(self.task, timeout=15)
            except TimeoutError:
                self.task.cancel()
        await self.backlog.aclose()


@pytest_asyncio.fixture
async def harness_factory(
    azurite: Any, unique_name: Callable[[str], str]
) -> AsyncIterator[Callable[..., Harness]]:
    """``harness_factory(broker, gateway, *, checkpoint=None, clock=time.time, **env) -> Harness`` (not started)."""
    built: list[Harness] = []

    def make(
        broker: Any, gateway: Any, *, checkpoint: Any = None, clock: Any = time.time, **env: str
    ) -> Harness:
        values = backlog_env(broker, azurite, unique_name, **env)
        settings = load_backlog_settings(values)
        backlog = runtime.build_backlog(settings, gateway, clock=clock, checkpoint=checkpoint)
        harness = Harness(backlog, broker, values, reply_queue=unique_name("replies"))
        broker.create_queue(harness.reply_queue)
        built.append(harness)
        return harness

    yield make
    for harness in built:
        await harness.aclose()


@pytest.fixture(scope="module")
def module_sim(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """One simulator (eastus2 + swedencentral) per test module: starting one costs ~2 s."""
    handle = start_sim(workdir=tmp_path_factory.mktemp("e2e-sim"))
    try:
        yield handle
    finally:
        handle.stop()


@pytest.fixture
def e2e_sim(module_sim: Any) -> Iterator[Any]:
    """``module_sim`` with faults, rate windows and stats cleared before and after the test."""
    for name in REGIONS:
        module_sim.region(name).reset()
    yield module_sim
    for name in REGIONS:
        module_sim.region(name).reset()
