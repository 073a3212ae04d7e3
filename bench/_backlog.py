"""Drive drain jobs through the real backlog path: Service Bus test broker -> the worker function
(``function_app``'s Service Bus trigger, pumped by ``devserver.queues.QueueSide``) -> access
layer -> simulator, with the job store and parking in Azurite and the re-drive timer every second.

Terminal outcomes are counted from ``shared.jobs._conclude``'s one log record per winning terminal
write (job id + status), so completions are timed without polling the store; the store is read
once at the end to confirm every job's final state.
"""

from __future__ import annotations

import asyncio
import logging
import shutil
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from testpeers.azurite import AzuriteHandle, start_azurite

from ._harness import ROOT, Budget

__all__ = ["Azurite", "backlog_available", "drain_via_backlog"]


def _azurite_binary() -> str | None:
    local = ROOT / "node_modules" / ".bin" / "azurite"
    return str(local) if local.exists() else shutil.which("azurite")


def backlog_available() -> str | None:
    """None when the backlog path can run here, else why not."""
    if _azurite_binary() is None:
        return "azurite is not installed (npm install)"
    try:
        import sbbroker  # noqa: F401
        from devserver.queues import QueueSide  # noqa: F401
        from shared.jobs import BacklogTriggers, JobMessage  # noqa: F401
        from shared.runtime import build_backlog  # noqa: F401
        from shared.settings import load_backlog_settings  # noqa: F401
    except ImportError as exc:
        return f"backlog modules not importable: {exc}"
    return None


class Azurite:
    """Azurite (blob, queue, table) in memory on free loopback ports, started by
    ``testpeers.azurite`` (the test suite's starter) and stopped on exit."""

    def __init__(self) -> None:
        self._handle: AzuriteHandle | None = None
        self._dir: tempfile.TemporaryDirectory[str] | None = None

    @property
    def connection_string(self) -> str:
        assert self._handle is not None, "Azurite is not running"
        return self._handle.connection_string

    def __enter__(self) -> Azurite:
        self._dir = tempfile.TemporaryDirectory(prefix="bench-azurite-")  # its log
        try:
            self._handle = start_azurite(Path(self._dir.name))
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        if self._handle is not None:
            self._handle.stop()
            self._handle = None
        if self._dir is not None:
            self._dir.cleanup()
            self._dir = None


class _Terminals(logging.Handler):
    """Times every winning terminal write from ``shared.jobs._conclude``'s log records."""

    def __init__(self, t0: Callable[[], float]) -> None:
        super().__init__(logging.INFO)
        self._t0 = t0
        self.writes: Counter[str] = Counter()
        self.first: dict[str, tuple[float, str]] = {}

    def emit(self, record: logging.LogRecord) -> None:
        job = getattr(record, "job", None)
        if isinstance(job, dict) and "status" in job and "job_id" in job:
            self.writes[job["job_id"]] += 1
            self.first.setdefault(
                job["job_id"], (time.monotonic() - self._t0(), str(job["status"]))
            )


async def drain_via_backlog(
    gateway: Any,
    jobs: int,
    *,
    request_for: Callable[[int], dict[str, Any]],
    concurrency: int,
    cap_s: float,
    storage_connection: str,
    on_start: Callable[[], float | None] | None = None,
    settings: Mapping[str, str] | None = None,
    gateway_settings: Any = None,
    lane: str = "standard",
) -> dict[str, Any]:
    """Submit ``jobs`` jobs and wait (at most ``cap_s``) until each reaches a terminal state."""
    import function_app
    import sbbroker
    from devserver.queues import QueueSide
    from shared.jobs import BacklogTriggers, JobMessage
    from shared.runtime import build_backlog
    from shared.settings import load_backlog_settings

    tag = uuid.uuid4().hex[:8]
    env: Mapping[str, str] = {
        "BACKLOG_QUEUE": f"drain{tag}",
        "PARKING_QUEUE": f"drainparked{tag}",
        "BACKLOG_JOBS_TABLE": f"drainjobs{tag}",
        "BACKLOG_RESULTS_CONTAINER": f"drainresults{tag}",
        "AzureWebJobsStorage": storage_connection,
        **dict(settings or {}),
    }
    broker = sbbroker.Broker(port=0).start_in_thread()
    env = {**env, "ServiceBusConnection": broker.connection_string}
    backlog = build_backlog(load_backlog_settings(env), gateway, gateway_settings=gateway_settings)
    t0 = [time.monotonic()]
    terminals = _Terminals(lambda: t0[0])
    core_log = logging.getLogger("shared.jobs._conclude")
    previous = core_log.level
    core_log.addHandler(terminals)
    core_log.setLevel(logging.INFO)
    stats: Counter[str] = Counter()

    triggers = BacklogTriggers(backlog)  # the app's wiring, each handler counted
    counted = {
        "backlog_worker": "deliveries",
        "backlog_dead_letters": "dead_letter_deliveries",
        "backlog_timer": "timer_runs",
        "parking_poison": "parking_poison",
    }

    def count(name: str, handler: Any) -> Any:
        async def run(arg: Any) -> None:
            stats[counted[name]] += 1
            await handler(arg)

        return run

    handlers = {name: count(name, h) for name, h in triggers.by_function().items()}
    side = QueueSide(
        function_app.app,
        env,
        host_json={"extensions": {"serviceBus": {"maxConcurrentCalls": concurrency}}},
    )
    side.build(wrap=lambda name, default: handlers.get(name, default))
    stop = asyncio.Event()
    budget = Budget(cap_s)
    ids: list[str] = []
    submit_s = 0.0
    pumps: asyncio.Task[Any] | None = None
    try:
        # Fill the backlog first (not timed), then start the worker side: the drain starts full.
        submit_started = time.monotonic()
        messages = [JobMessage(request=request_for(i), lane=lane) for i in range(jobs)]
        ids.extend(m.job_id for m in messages)
        gate = asyncio.Semaphore(16)

        async def submit(message: Any) -> None:
            async with gate:
                await backlog.submit(message)

        await asyncio.gather(*(submit(m) for m in messages))
        submit_s = time.monotonic() - submit_started
        t0[0] = time.monotonic()
        if on_start is not None:
            stamp = await asyncio.to_thread(on_start)
            t0[0] = stamp if isinstance(stamp, float) else time.monotonic()
        pumps = asyncio.create_task(side.run(stop))
        wanted = set(ids)
        while not budget.expired() and not wanted <= terminals.first.keys():
            await asyncio.sleep(0.1)
        wall = time.monotonic() - t0[0]
        await asyncio.sleep(0.5)  # stragglers: a duplicate being processed would show up here
        final: Counter[str] = Counter()
        lanes: Counter[str] = Counter()
        usage: Counter[str] = Counter()
        store = backlog.services.store
        reading = asyncio.Semaphore(32)  # read the rows back concurrently (after the timing)

        async def read(job_id: str) -> Any:
            async with reading:
                return await store.get(job_id)

        for record in await asyncio.gather(*(read(job_id) for job_id in ids)):
            final[record.status if record is not None else "missing"] += 1
            if record is not None:
                lanes[record.lane or "standard"] += 1
                for key, value in (record.usage or {}).items():
                    usage[f"{record.lane or 'standard'}:{key}"] += int(value)
    finally:
        stop.set()
        if pumps is not None:
            await asyncio.gather(pumps, return_exceptions=True)
        core_log.removeHandler(terminals)
        core_log.setLevel(previous)
        await backlog.aclose()
        broker.stop()
    done = {j: terminals.first[j] for j in ids if j in terminals.first}
    succeeded = [t for t, status in done.values() if status == "succeeded"]
    return {
        "wall_s": wall,
        "submit_s": round(submit_s, 2),
        "succeeded": len(succeeded),
        "done_times": sorted(succeeded),
        "failed": dict(Counter(status for _, status in done.values() if status != "succeeded")),
        "not_terminal": len(ids) - len(done),
        "double_terminal_writes": sum(1 for j in ids if terminals.writes[j] > 1),
        "final_states": dict(final),
        "lanes": dict(lanes),
        "usage": dict(usage),
        "hit_time_cap": budget.expired(),
        **dict(stats),
    }
