"""The broker: a TCP server on loopback, a clock, and the admin API for tests."""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import logging
import threading
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

from . import _sdk
from ._connection import Connection
from ._entities import EntityNotFound, QueueConfig, Registry
from ._message import STATE_ACTIVE, STATE_DEFERRED, STATE_SCHEDULED, BrokerMessage

__all__ = ["LOOPBACK_HOSTS", "Broker", "start_in_thread"]

_LOGGER = logging.getLogger(__name__)
T = TypeVar("T")
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")
_TICK_S = 0.02


class Broker:
    """A wire-level AMQP 1.0 Service Bus test broker.

    Run it in its own thread (``start_in_thread``) or inside a running loop (``await start()``).
    Admin methods may be called from any thread.
    """

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        queues: Iterable[str] = (),
        max_delivery_count: int = 10,
        lock_duration_s: float = 30.0,
        auto_create: bool = True,
        dead_lettering_on_expiration: bool = False,
        default_ttl_s: float | None = None,
        max_frame_size: int = 65536,
        max_message_size: int = 256 * 1024,
        duplicate_detection_window_s: float | None = None,
    ) -> None:
        if host not in LOOPBACK_HOSTS:
            raise ValueError(f"sbbroker only listens on loopback, not {host!r}")
        self.host = host
        self.port = port
        self.max_frame_size = max_frame_size
        self.max_message_size = max_message_size
        self.config = QueueConfig(
            max_delivery_count=max_delivery_count,
            lock_duration_s=lock_duration_s,
            dead_lettering_on_expiration=dead_lettering_on_expiration,
            default_ttl_s=default_ttl_s,
            duplicate_detection_window_s=duplicate_detection_window_s,
        )
        self.registry = Registry(self.config, auto_create=auto_create, queues=queues)
        self.connections: set[Connection] = set()
        # wire counters for tests: split_deliveries_in/out, transfer_frames_with_more_in
        self.counters: collections.Counter[str] = collections.Counter()
        self._server: asyncio.base_events.Server | None = None
        self._ticker: asyncio.Task | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._tasks: set[asyncio.Task] = set()

    # -- addressing ----------------------------------------------------------------------
    @property
    def connection_string(self) -> str:
        """A connection string the unmodified SDK accepts (plain AMQP, no TLS)."""
        host = "127.0.0.1" if self.host == "localhost" else self.host
        return (
            f"Endpoint=sb://{host}:{self.port};SharedAccessKeyName=k;"
            "SharedAccessKey=v;UseDevelopmentEmulator=true"
        )

    # -- lifecycle -----------------------------------------------------------------------
    async def start(self) -> Broker:
        """Listen on the configured port (0 picks a free one) inside the running loop."""
        _sdk.check_sdk_version()  # refuses another azure-servicebus than the one checked against
        self._loop = asyncio.get_running_loop()
        self._server = await asyncio.start_server(self._on_client, self.host, self.port)
        self.port = self._server.sockets[0].getsockname()[1]
        self._ticker = self._loop.create_task(self._tick_forever())
        _LOGGER.info("sbbroker listening on %s:%s", self.host, self.port)
        return self

    async def aclose(self) -> None:
        """Stop listening, drop every connection and the clock."""
        if self._ticker:
            self._ticker.cancel()
        if self._server:
            self._server.close()
        for connection in list(self.connections):
            connection.cleanup()
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._server:
            await self._server.wait_closed()

    async def _on_client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connection = Connection(self, reader, writer)
        self.connections.add(connection)
        task = asyncio.current_task()
        if task is not None:
            self._tasks.add(task)
        try:
            await connection.serve()
        finally:
            if task is not None:
                self._tasks.discard(task)

    async def _tick_forever(self) -> None:
        while True:
            await asyncio.sleep(_TICK_S)
            try:
                self.registry.tick()
            except Exception:
                _LOGGER.exception("tick failed")

    def start_in_thread(self, timeout: float = 10.0) -> Broker:
        """Run the broker on its own event loop in a daemon thread; returns once listening."""
        _sdk.check_sdk_version()
        ready: concurrent.futures.Future = concurrent.futures.Future()

        def run() -> None:
            loop = asyncio.new_event_loop()
            asyncio.set_event_loop(loop)
            try:
                loop.run_until_complete(self.start())
            except BaseException as exc:  # noqa: BLE001
                ready.set_exception(exc)
                loop.close()
                return
            ready.set_result(None)
            try:
                loop.run_forever()
            finally:
                loop.run_until_complete(self.aclose())
                loop.run_until_complete(loop.shutdown_asyncgens())
                loop.close()

        self._thread = threading.Thread(target=run, name=f"sbbroker-{self.port}", daemon=True)
        self._thread.start()
        ready.result(timeout)
        return self

    def stop(self, timeout: float = 10.0) -> None:
        """Stop a broker started with ``start_in_thread`` (idempotent)."""
        loop, thread = self._loop, self._thread
        if loop is None or thread is None or not thread.is_alive():
            return
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout)
        self._thread = None

    def __enter__(self) -> Broker:
        if self._thread is None:
            self.start_in_thread()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    # -- admin ---------------------------------------------------------------------------
    def _call(self, fn: Callable[[], T], timeout: float = 10.0) -> T:
        """Run ``fn`` on the broker's loop (state is only touched there)."""
        loop = self._loop
        if loop is None or not loop.is_running() or self._in_loop_thread():
            return fn()

        async def run() -> T:
            return fn()

        return asyncio.run_coroutine_threadsafe(run(), loop).result(timeout)

    def _in_loop_thread(self) -> bool:
        try:
            return asyncio.get_running_loop() is self._loop
        except RuntimeError:
            return False

    def _snapshot(
        self, name: str, state: int | None, locked: bool | None = None
    ) -> list[BrokerMessage]:
        def run() -> list[BrokerMessage]:
            self.registry.tick()
            try:
                queue = self.registry.get(name, create=False)
            except EntityNotFound:
                return []
            if state is None:
                found = sorted(queue.messages.values(), key=lambda m: m.sequence_number)
            else:
                found = queue.with_state(state)
            return [m.snapshot() for m in found]

        return self._call(run)

    def queue_count(self, queue: str) -> int:
        """Active messages: visible plus locked (in flight), not scheduled or deferred (like ActiveMessageCount)."""
        return len(self._snapshot(queue, STATE_ACTIVE))

    def dlq_count(self, queue: str) -> int:
        """Messages in ``<queue>/$DeadLetterQueue``."""
        return len(self._snapshot(queue + "/$DeadLetterQueue", STATE_ACTIVE))

    def scheduled_count(self, queue: str) -> int:
        """Scheduled messages not yet visible."""
        return len(self._snapshot(queue, STATE_SCHEDULED))

    def deferred_count(self, queue: str) -> int:
        return len(self._snapshot(queue, STATE_DEFERRED))

    def messages(self, queue: str, *, include_scheduled: bool = False) -> list[BrokerMessage]:
        """Snapshot of active messages (visible and locked), in sequence order."""
        if include_scheduled:
            return [m for m in self._snapshot(queue, None) if m.state != "deferred"]
        return self._snapshot(queue, STATE_ACTIVE)

    def scheduled_messages(self, queue: str) -> list[BrokerMessage]:
        return self._snapshot(queue, STATE_SCHEDULED)

    def dlq_messages(self, queue: str) -> list[BrokerMessage]:
        return self._snapshot(queue + "/$DeadLetterQueue", STATE_ACTIVE)

    def queue_names(self) -> list[str]:
        return self._call(lambda: sorted(q.name for q in self.registry.queues.values()))

    def create_queue(self, name: str, *, duplicate_detection_window_s: float | None = None) -> None:
        """Declare a queue (useful when auto-create is off). ``duplicate_detection_window_s``
        turns on RequiresDuplicateDetection with that history window (also on an existing queue)."""
        config = None
        if duplicate_detection_window_s is not None:
            config = QueueConfig(
                **{
                    **vars(self.config),
                    "duplicate_detection_window_s": duplicate_detection_window_s,
                }
            )
        self._call(lambda: self.registry.create(name, config))

    def deny_send(self, queue: str, denied: bool = True) -> None:
        """Refuse links that send to ``queue`` with ``amqp:unauthorized-access``, as Service Bus
        refuses a client without the Send claim (no Data Sender role): the SDK raises
        ``ServiceBusAuthorizationError``."""

        def run() -> None:
            self.registry.get(queue).send_denied = denied

        self._call(run)

    def duplicates_dropped(self, queue: str) -> int:
        """Messages ``queue`` accepted and dropped as duplicates (same MessageId inside the window)."""

        def run() -> int:
            try:
                return self.registry.get(queue, create=False).duplicates_dropped
            except EntityNotFound:
                return 0

        return self._call(run)

    def reset(self) -> None:
        """Drop all messages and locks, and forget auto-created queues without receivers."""
        self._call(self.registry.reset)

    def stats(self) -> dict[str, dict[str, int]]:
        """Counts per queue: active, locked, scheduled, deferred, dead-lettered."""

        def run() -> dict[str, dict[str, int]]:
            self.registry.tick()
            result = {}
            for queue in self.registry.queues.values():
                msgs = list(queue.messages.values())
                result[queue.name] = {
                    "active": sum(m.state == STATE_ACTIVE for m in msgs),
                    "locked": sum(m.lock_token is not None for m in msgs),
                    "scheduled": sum(m.state == STATE_SCHEDULED for m in msgs),
                    "deferred": sum(m.state == STATE_DEFERRED for m in msgs),
                    "dead_lettered": len(queue.dlq.messages) if queue.dlq else 0,
                    "duplicates_dropped": queue.duplicates_dropped,
                }
            return result

        return self._call(run)


def start_in_thread(
    port: int = 0,
    *,
    queues: Iterable[str] = (),
    max_delivery_count: int = 10,
    lock_duration_s: float = 30.0,
    auto_create: bool = True,
    **kwargs: Any,
) -> Broker:
    """Start a broker on its own thread and loop; call ``.stop()`` when done."""
    broker = Broker(
        port=port,
        queues=queues,
        max_delivery_count=max_delivery_count,
        lock_duration_s=lock_duration_s,
        auto_create=auto_create,
        **kwargs,
    )
    return broker.start_in_thread()
