"""Drive the real SDK, sync or async, through one awaitable surface so every test runs both ways."""

from __future__ import annotations

import asyncio
import contextlib
import functools
from collections.abc import AsyncIterator
from typing import Any

import pytest
from azure.servicebus import ServiceBusClient
from azure.servicebus.aio import ServiceBusClient as AsyncServiceBusClient


class _Threaded:
    """Wraps a sync SDK handler: every method call runs in a worker thread and is awaited."""

    def __init__(self, handler: Any) -> None:
        self._handler = handler

    @property
    def raw(self) -> Any:
        return self._handler

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._handler, name)
        if not callable(attr):
            return attr

        async def call(*args: Any, **kwargs: Any) -> Any:
            return await asyncio.to_thread(functools.partial(attr, *args, **kwargs))

        return call


class Side:
    """One SDK flavour ("sync" or "async") bound to a broker's connection string."""

    def __init__(self, kind: str, connection_string: str) -> None:
        self.kind = kind
        if kind == "sync":
            self.client: Any = ServiceBusClient.from_connection_string(connection_string)
        else:
            self.client = AsyncServiceBusClient.from_connection_string(connection_string)

    @contextlib.asynccontextmanager
    async def sender(self, queue: str) -> AsyncIterator[Any]:
        # keep_alive=0: no keep-alive thread, so closing a handler does not wait up to 1 s for it.
        handler = self.client.get_queue_sender(queue, keep_alive=0)
        async with self._open(handler) as opened:
            yield opened

    @contextlib.asynccontextmanager
    async def receiver(self, queue: str, **kwargs: Any) -> AsyncIterator[Any]:
        handler = self.client.get_queue_receiver(queue, keep_alive=0, **kwargs)
        async with self._open(handler) as opened:
            yield opened

    @contextlib.asynccontextmanager
    async def pair(self, queue: str, **receiver_kwargs: Any) -> AsyncIterator[tuple[Any, Any]]:
        """A sender and a receiver on ``queue``, opened and closed concurrently (each open costs ~0.5 s)."""
        async with contextlib.AsyncExitStack() as stack:
            sender_cm = self.sender(queue)
            receiver_cm = self.receiver(queue, **receiver_kwargs)
            sender, receiver = await asyncio.gather(
                sender_cm.__aenter__(), receiver_cm.__aenter__()
            )

            async def close_both(*exc: Any) -> None:
                await asyncio.gather(
                    sender_cm.__aexit__(None, None, None), receiver_cm.__aexit__(None, None, None)
                )

            stack.push_async_exit(close_both)
            yield sender, receiver

    @contextlib.asynccontextmanager
    async def _open(self, handler: Any) -> AsyncIterator[Any]:
        if self.kind == "sync":
            await asyncio.to_thread(handler.__enter__)
            try:
                yield _Threaded(handler)
            finally:
                await asyncio.to_thread(handler.close)
        else:
            async with handler:
                yield handler

    async def close(self) -> None:
        if self.kind == "sync":
            await asyncio.to_thread(self.client.close)
        else:
            await self.client.close()


@pytest.fixture(params=["sync", "async"])
async def sdk(request: pytest.FixtureRequest, sb_broker: Any) -> AsyncIterator[Side]:
    """The real SDK (sync, then async) pointed at a fresh ``sb_broker``."""
    side = Side(request.param, sb_broker.connection_string)
    try:
        yield side
    finally:
        await side.close()


@pytest.fixture(params=["sync", "async"])
def sdk_kind(request: pytest.FixtureRequest) -> str:
    """Just the flavour, for tests that build their own broker."""
    return request.param


def body_of(message: Any) -> bytes:
    """A received message's data body as one bytes value."""
    return b"".join(message.body)
