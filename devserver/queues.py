"""The queue side of the dev server: what the Functions host does for the non-HTTP triggers,
when Core Tools are absent (never deployed).

``run(function_app, stop)`` (the devserver runner hook) reads the app's indexed bindings, resolves
``%SETTING%`` names from the environment and drives, with the host's semantics:

* ``serviceBusTrigger`` (the backlog queue and ``<queue>/$DeadLetterQueue``): peek-lock receive,
  the function called with a real ``azure.functions.servicebus.ServiceBusMessage``; **complete**
  when it returns, **abandon** when it raises (Service Bus then redelivers, and dead-letters after
  MaxDeliveryCount). Locks are renewed while the function runs (``maxAutoLockRenewalDuration``);
  up to ``max_concurrent_calls`` messages run at once (``maxConcurrentCalls``).
* ``timerTrigger``: once per tick across every dev server sharing the storage account (the
  host's singleton lock: a blob lease, ``devserver.lease``), on its NCRONTAB schedule (``shared.jobs.TimerSchedule``, the parser the
  re-drive also plans with: six fields; ``*/N`` and plain numbers in the seconds/minutes/hours
  fields, ``*`` elsewhere — enough for "every N seconds / minutes"; anything else is refused
  with a clear error).
* ``queueTrigger`` (Storage, e.g. ``<parking>-poison``): polling, base64 message text (host.json
  ``messageEncoding: base64``), delete on return; on raise the message becomes visible again and
  after ``max_dequeue_count`` dequeues it moves to ``<queue>-poison``, as the host does.

Connections: ``ServiceBusConnection`` and ``AzureWebJobsStorage`` must be connection strings
here (the test broker, Azurite); ``UseDevelopmentStorage=true`` means Azurite's default ports.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import re
import time
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from shared.jobs import TimerSchedule
from shared.storage import expand_dev_connection, storage_queue_client

__all__ = ["QueueSide", "ServiceBusPump", "StorageQueuePump", "TimerPump", "TimerSchedule", "run"]

_log = logging.getLogger("devserver.queues")
_SETTING = re.compile(r"%([^%]+)%")

Handler = Callable[[Any], Awaitable[Any]]


def resolve(name: str, env: Mapping[str, str]) -> str:
    """``%BACKLOG_QUEUE%/$DeadLetterQueue`` -> ``backlog/$DeadLetterQueue`` (KeyError names a missing setting)."""

    def one(match: re.Match[str]) -> str:
        key = match.group(1)
        if key not in env:
            raise KeyError(f"app setting {key} is not set (needed by a trigger binding)")
        return env[key]

    return _SETTING.sub(one, name)


# -- timer schedule: shared.jobs._schedule.TimerSchedule (one parser for the dev server and the re-drive)


# -- pumps ----------------------------------------------------------------------------------------


def to_functions_message(received: Any) -> Any:
    """A real ``azure.functions.servicebus.ServiceBusMessage`` from an SDK ServiceBusReceivedMessage."""
    from azure.functions.servicebus import ServiceBusMessage

    props = {
        (k.decode() if isinstance(k, bytes) else str(k)): (
            v.decode() if isinstance(v, bytes) else v
        )
        for k, v in (received.application_properties or {}).items()
    }
    return ServiceBusMessage(
        body=b"".join(received.body)
        if not isinstance(received.body, (bytes, bytearray))
        else bytes(received.body),
        message_id=str(received.message_id) if received.message_id is not None else "",
        correlation_id=str(received.correlation_id)
        if received.correlation_id is not None
        else None,
        content_type=received.content_type,
        delivery_count=(received.delivery_count or 0)
        + 1,  # the host counts from 1; the AMQP header from 0
        sequence_number=received.sequence_number,
        enqueued_time_utc=received.enqueued_time_utc,
        locked_until=received.locked_until_utc,
        lock_token=str(received.lock_token) if received.lock_token else None,
        dead_letter_reason=received.dead_letter_reason,
        dead_letter_error_description=received.dead_letter_error_description,
        dead_letter_source=received.dead_letter_source,
        reply_to=received.reply_to,
        subject=received.subject,
        application_properties=props,
        user_properties=props,
    )


class ServiceBusPump:
    """Peek-lock receive from one queue (or its DLQ); complete on return, abandon on raise."""

    def __init__(
        self,
        client: Any,
        queue: str,
        handler: Handler,
        *,
        name: str,
        max_concurrent_calls: int = 16,
        max_lock_renewal_s: float = 300.0,
        wait_s: float = 0.25,
    ) -> None:
        self._client = client
        self._queue = queue
        self._handler = handler
        self.name = name
        self._concurrency = max_concurrent_calls
        self._renewal_s = max_lock_renewal_s
        self._wait_s = wait_s
        self.completed = 0
        self.abandoned = 0

    async def run(self, stop: asyncio.Event) -> None:
        from azure.servicebus import ServiceBusSubQueue
        from azure.servicebus.aio import AutoLockRenewer

        base, _, sub = self._queue.partition("/")
        kwargs: dict[str, Any] = {"queue_name": base, "prefetch_count": 0}
        if sub.lower() == "$deadletterqueue":
            kwargs["sub_queue"] = ServiceBusSubQueue.DEAD_LETTER
        slots = asyncio.Semaphore(self._concurrency)
        running: set[asyncio.Task[None]] = set()
        renewer = AutoLockRenewer(max_lock_renewal_duration=self._renewal_s)
        async with self._client.get_queue_receiver(**kwargs) as receiver:
            while not stop.is_set():
                free = self._concurrency - len(running)
                if free <= 0:
                    await asyncio.wait(running, return_when=asyncio.FIRST_COMPLETED)
                    continue
                try:
                    batch = await receiver.receive_messages(
                        max_message_count=free, max_wait_time=self._wait_s
                    )
                except Exception as exc:  # noqa: BLE001 - keep pumping, as the host does
                    _log.warning("%s: receive failed: %s", self.name, exc)
                    await asyncio.sleep(0.5)
                    continue
                for message in batch:
                    renewer.register(receiver, message)
                    await slots.acquire()
                    task = asyncio.create_task(self._one(receiver, message, slots))
                    running.add(task)
                    task.add_done_callback(running.discard)
            if running:
                await asyncio.wait(running)
        await renewer.close()

    async def _one(self, receiver: Any, message: Any, slots: asyncio.Semaphore) -> None:
        try:
            try:
                await _call(self._handler, to_functions_message(message))
            except Exception as exc:  # noqa: BLE001 - the host abandons on any exception
                _log.info(
                    "%s: function raised %s: abandoning message %s",
                    self.name,
                    exc.__class__.__name__,
                    message.message_id,
                )
                self.abandoned += 1
                await _settle(receiver.abandon_message, message, self.name)
            else:
                self.completed += 1
                await _settle(receiver.complete_message, message, self.name)
        finally:
            slots.release()


async def _settle(op: Callable[[Any], Awaitable[None]], message: Any, name: str) -> None:
    try:
        await op(message)
    except Exception as exc:  # noqa: BLE001 - a lost lock means redelivery, as in Azure
        _log.warning("%s: settling %s failed: %s", name, message.message_id, exc.__class__.__name__)


class StorageQueuePump:
    """Poll a Storage queue like the host's queue trigger (base64 text)."""

    def __init__(
        self,
        connection: str,
        queue: str,
        handler: Handler,
        *,
        name: str,
        max_dequeue_count: int = 5,
        visibility_timeout_s: int = 30,
        poll_s: float = 0.25,
        batch: int = 16,
    ) -> None:
        self._connection = connection
        self._queue = queue
        self._handler = handler
        self.name = name
        self._max_dequeue = max_dequeue_count
        self._visibility = visibility_timeout_s
        self._poll_s = poll_s
        self._batch = batch
        self.processed = 0

    async def run(self, stop: asyncio.Event) -> None:
        from azure.core.exceptions import ResourceExistsError
        from azure.functions.queue import QueueMessage

        client = storage_queue_client(self._connection, self._queue)
        poison = storage_queue_client(self._connection, f"{self._queue}-poison")
        async with client, poison:
            try:
                await client.create_queue()
            except ResourceExistsError:
                pass
            while not stop.is_set():
                try:
                    pager = client.receive_messages(
                        messages_per_page=self._batch,
                        visibility_timeout=self._visibility,
                        max_messages=self._batch,
                    )
                    batch = [m async for m in pager]
                except Exception as exc:  # noqa: BLE001
                    _log.warning("%s: receive failed: %s", self.name, exc)
                    batch = []
                if not batch:
                    await _wait(stop, self._poll_s)
                    continue
                for message in batch:
                    fn_message = QueueMessage(
                        id=message.id,
                        body=(message.content or "").encode("utf-8"),
                        dequeue_count=message.dequeue_count,
                        expiration_time=message.expires_on,
                        insertion_time=message.inserted_on,
                        time_next_visible=message.next_visible_on,
                        pop_receipt=message.pop_receipt,
                    )
                    try:
                        await _call(self._handler, fn_message)
                    except Exception as exc:  # noqa: BLE001
                        _log.info(
                            "%s: function raised %s (dequeue %s)",
                            self.name,
                            exc.__class__.__name__,
                            message.dequeue_count,
                        )
                        if (message.dequeue_count or 0) >= self._max_dequeue:
                            try:
                                await poison.create_queue()
                            except ResourceExistsError:
                                pass
                            await poison.send_message(message.content, time_to_live=-1)
                            await client.delete_message(message)
                        else:
                            await client.update_message(
                                message, pop_receipt=message.pop_receipt, visibility_timeout=1
                            )
                    else:
                        self.processed += 1
                        await client.delete_message(message)


class TimerPump:
    """Runs a timer function on its schedule; with a ``lease`` (``devserver.lease.TimerLease``),
    only while this process holds the function's singleton lock, as the host does."""

    def __init__(
        self, schedule: TimerSchedule, handler: Handler, *, name: str, lease: Any = None
    ) -> None:
        self._schedule = schedule
        self._handler = handler
        self.name = name
        self._lease = lease
        self.runs = 0
        self.skipped = 0  # ticks another instance held the lock for
        self.ticks: list[datetime] = []  # the scheduled times this process ran

    async def run(self, stop: asyncio.Event) -> None:
        try:
            await self._run(stop)
        finally:
            if self._lease is not None:
                await self._lease.release()

    async def _run(self, stop: asyncio.Event) -> None:
        from azure.functions.timer import TimerRequest

        while not stop.is_set():
            now = datetime.now(UTC)
            due = self._schedule.next_after(now)
            if await _wait(stop, (due - now).total_seconds()):
                return
            if self._lease is not None and not await self._lease.hold():
                self.skipped += 1
                continue
            self.ticks.append(due)
            late = (datetime.now(UTC) - due).total_seconds() > 1.0
            try:
                await _call(self._handler, TimerRequest(past_due=late))
                self.runs += 1
            except Exception as exc:  # noqa: BLE001 - the host logs and waits for the next occurrence
                _log.warning(
                    "%s: timer function raised %s", self.name, exc.__class__.__name__, exc_info=exc
                )


async def _call(handler: Handler, argument: Any) -> None:
    """Call a function the way the worker does: sync or async."""
    import inspect

    result = handler(argument)
    if inspect.isawaitable(result):
        await result


async def _wait(stop: asyncio.Event, seconds: float) -> bool:
    """Sleep up to ``seconds``; True when ``stop`` was set meanwhile."""
    try:
        await asyncio.wait_for(stop.wait(), timeout=max(0.0, seconds))
        return True
    except TimeoutError:
        return False


# -- wiring ---------------------------------------------------------------------------------------


class QueueSide:
    """Every non-HTTP trigger of a FunctionApp, driven as above until ``stop`` is set."""

    def __init__(
        self,
        function_app: Any,
        env: Mapping[str, str] | None = None,
        *,
        host_json: Mapping[str, Any] | None = None,
    ) -> None:
        self._app = function_app
        self._env = dict(os.environ if env is None else env)
        self._host = dict(host_json or {})
        self.pumps: list[Any] = []
        self._clients: list[Any] = []

    def build(self, wrap: Callable[[str, Handler], Handler] | None = None) -> QueueSide:
        """Create one pump per trigger; ``wrap(function_name, handler)`` may decorate handlers (tests)."""
        from devserver.http import indexed_functions

        ext = self._host.get("extensions", {})
        sb_opts = ext.get("serviceBus", {})
        q_opts = ext.get("queues", {})
        sb_client = None
        for fn in indexed_functions(self._app):
            bindings = [json.loads(raw) for raw in fn.get_raw_bindings()]
            trigger = next(
                (
                    b
                    for b in bindings
                    if str(b.get("direction", "")).upper() == "IN"
                    and b.get("type", "").endswith("Trigger")
                ),
                None,
            )
            if trigger is None or trigger["type"] == "httpTrigger":
                continue
            name = fn.get_function_name()
            handler: Handler = fn.get_user_function()
            if wrap is not None:
                handler = wrap(name, handler)
            kind = trigger["type"]
            if kind == "serviceBusTrigger":
                if sb_client is None:
                    from azure.servicebus.aio import ServiceBusClient

                    sb_client = ServiceBusClient.from_connection_string(
                        self._connection(trigger.get("connection", "ServiceBusConnection"))
                    )
                    self._clients.append(sb_client)
                self.pumps.append(
                    ServiceBusPump(
                        sb_client,
                        resolve(trigger["queueName"], self._env),
                        handler,
                        name=name,
                        max_concurrent_calls=int(sb_opts.get("maxConcurrentCalls", 16)),
                    )
                )
            elif kind == "queueTrigger":
                self.pumps.append(
                    StorageQueuePump(
                        self._connection(trigger.get("connection", "AzureWebJobsStorage")),
                        resolve(trigger["queueName"], self._env),
                        handler,
                        name=name,
                        max_dequeue_count=int(q_opts.get("maxDequeueCount", 5)),
                    )
                )
            elif kind == "timerTrigger":
                self.pumps.append(
                    TimerPump(
                        TimerSchedule.parse(resolve(trigger["schedule"], self._env)),
                        handler,
                        name=name,
                        lease=self._timer_lease(name),
                    )
                )
            else:
                _log.warning("devserver: trigger type %s of %s is not driven locally", kind, name)
        return self

    def _timer_lease(self, function_name: str) -> Any:
        """The host's singleton lock for a timer, in AzureWebJobsStorage (None without storage)."""
        storage = self._env.get("AzureWebJobsStorage")
        if not storage:
            return None
        from devserver.lease import TimerLease

        return TimerLease(
            expand_dev_connection(storage),
            host_id=self._env.get("AzureFunctionsWebHost__hostid", "devserver"),
            function_name=function_name,
            owner=self._env.get("WEBSITE_INSTANCE_ID"),
        )

    def _connection(self, name: str) -> str:
        value = self._env.get(name)
        if not value:
            raise KeyError(
                f"app setting {name} is not set: the dev server needs a connection string for it"
            )
        return value

    async def run(self, stop: asyncio.Event) -> None:
        tasks = [asyncio.create_task(p.run(stop), name=p.name) for p in self.pumps]
        for pump in self.pumps:
            _log.info("devserver: driving %s (%s)", pump.name, type(pump).__name__)
        try:
            await asyncio.gather(*tasks)
        finally:
            for task in tasks:
                task.cancel()
            for client in self._clients:
                await client.close()


def _host_json() -> dict[str, Any]:
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "host.json"
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


async def run(function_app: Any, stop: asyncio.Event) -> None:
    """The devserver runner hook: drive every non-HTTP trigger of ``function_app``."""
    started = time.monotonic()
    side = QueueSide(function_app, host_json=_host_json()).build()
    if not side.pumps:
        return
    _log.info("devserver: queue side ready in %.1fs", time.monotonic() - started)
    await side.run(stop)
