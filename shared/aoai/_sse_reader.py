"""The JSON events of an upstream SSE body, decoded from its bytes; and a cheap idle deadline.

``SseEvents`` reads a streamed answer's body straight from the response's byte stream and
splits it into lines as bytes: only ``data:`` lines are kept, and each event's data is decoded
once with ``json.loads``. It yields what the openai SDK's ``AsyncStream(cast_to=object)``
yields for the same body (the SDK adds four nested async generators, a text decode and an event
object per line, which cost a default-path call more than everything else the gateway does):

* lines end with LF, CRLF or CR; an event ends at a blank line; ``data:`` lines (one leading
  space dropped) are joined with LF; comments (``:``), ``event``, ``id``, ``retry`` and unknown
  fields are ignored; an event with no data, or one cut off by the end of the body, is not an
  event;
* ``data: [DONE]`` ends the stream: the rest of an HTTP/1.1 body is read and dropped (for at most
  ``DRAIN_S``) so the connection can be reused, as the SDK does;
* an event whose JSON is an object with an ``error`` raises ``openai.APIError`` (an upstream
  that broke off mid-answer), as the SDK does; data that is not JSON raises its decode error;
* a read timeout raises ``openai.APITimeoutError``, any other transport error
  ``openai.APIConnectionError`` (the cause chained), so ``classify`` sees what it saw before.

An encoded body (``Content-Encoding`` other than identity) is read through httpx's decoders.
The byte cap (``max_response_bytes``) counts the bytes received either way.

``IdleDeadline`` is ``asyncio.timeout`` for silence: one timer for a whole answer, pushed back
by ``touch()`` (one clock read) instead of a timer made and cancelled per chunk. When the timer
fires it re-arms itself if something came since, else it cancels the task, and ``__aexit__``
turns that cancellation into ``TimeoutError`` exactly as ``asyncio.timeout`` does (a
cancellation from elsewhere is left alone).
"""

from __future__ import annotations

import asyncio
import json
import ssl
from collections import deque
from collections.abc import AsyncIterator
from types import TracebackType
from typing import Any

from ._classify import ClassifiedFailure
from ._types import FailureKind

__all__ = ["DRAIN_S", "IdleDeadline", "SseEvents"]

DRAIN_S = 0.1  # what the SDK allows the rest of an HTTP/1.1 body after [DONE]
_DONE = b"[DONE]"


class SseEvents:
    """Async iterator of the decoded JSON events of ``response``'s SSE body (see the module
    docstring). ``aclose()`` releases the connection; reading to the end releases it too."""

    __slots__ = (
        "_cap",
        "_data",
        "_done",
        "_drain_due",
        "_events",
        "_parts",
        "_pending",
        "_response",
        "_seen",
    )

    def __init__(self, response: Any, max_bytes: int) -> None:
        self._response = response
        self._cap = max_bytes
        self._seen = 0
        encoding = response.headers.get("content-encoding")
        if encoding and encoding.strip().lower() != "identity":
            self._parts: AsyncIterator[bytes] = _decoded(response, max_bytes)
            self._cap = 0  # counted by ``_decoded`` on the bytes received
        else:
            self._parts = response.stream.__aiter__()
        self._events: deque[bytes] = deque()  # the data of events read, not yet decoded
        self._pending = b""  # an unfinished line
        self._data: list[bytes] = []  # the data lines of the event being read
        self._done = False  # [DONE] or the end of the body
        self._drain_due = False  # [DONE] came: read the rest of the body before the end

    def __aiter__(self) -> SseEvents:
        return self

    async def __anext__(self) -> Any:
        events = self._events
        while not events:
            if self._done:
                if self._drain_due:
                    self._drain_due = False
                    await self._drain()
                raise StopAsyncIteration
            try:
                part = await self._parts.__anext__()
            except StopAsyncIteration:
                self._done = True
                if self._pending.endswith(b"\r"):  # a CR at the very end ended a line
                    self._feed(b"\n")
                continue
            except Exception as exc:
                mapped = _transport_error(exc, self._response)
                if mapped is exc:
                    raise
                raise mapped from exc
            if self._cap:
                self._seen += len(part)
                if self._seen > self._cap:
                    raise _too_large(self._cap)
            if self._feed(part):
                self._done = self._drain_due = True
        event = json.loads(events.popleft().decode())  # as text: no encoding sniffing
        if type(event) is dict and event.get("error"):
            raise _stream_error(event, self._response)
        return event

    def _feed(self, part: bytes) -> bool:
        """Queue the data of the events completed by ``part``; True once ``[DONE]`` was read
        (what follows it is not read)."""
        text = self._pending + part if self._pending else part
        if b"\r" in text:
            if text.endswith(b"\r"):  # its LF may come with the next part
                self._pending = b"\r"
                text = text[:-1]
            else:
                self._pending = b""
            text = text.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
            lines = text.split(b"\n")
            self._pending = lines.pop() + self._pending
        else:
            lines = text.split(b"\n")
            self._pending = lines.pop()
        data = self._data
        events = self._events
        for line in lines:
            if not line:
                if data:
                    value = data[0] if len(data) == 1 else b"\n".join(data)
                    data.clear()
                    if value.startswith(_DONE):
                        return True
                    events.append(value)
            elif line.startswith(b"data:"):
                value = line[5:]
                data.append(value[1:] if value.startswith(b" ") else value)
            # anything else (a comment, event, id, retry, an unknown field) is ignored
        return False

    async def _drain(self) -> None:
        """After [DONE]: read the rest of an HTTP/1.1 body (briefly) so the connection is
        reused; the caller closes the response."""
        if self._response.http_version != "HTTP/1.1":
            return
        try:
            async with asyncio.timeout(DRAIN_S):
                async for _ in self._parts:
                    pass
        except (TimeoutError, Exception):  # noqa: BLE001 - the answer is complete already
            pass

    async def aclose(self) -> None:
        """Release the connection (also mid-body); never raises."""
        self._done = True
        parts = self._parts
        try:
            if hasattr(parts, "aclose"):
                await parts.aclose()
        except Exception:  # noqa: BLE001 - closing a broken stream may fail again
            pass
        try:
            await self._response.aclose()
        except Exception:  # noqa: BLE001 - as above
            pass


async def _decoded(response: Any, cap: int) -> AsyncIterator[bytes]:
    """An encoded body through httpx's decoders; the cap counts the bytes received."""
    import httpx2

    raw = response.stream

    class Counted(httpx2.AsyncByteStream):
        async def __aiter__(self) -> AsyncIterator[bytes]:
            seen = 0
            async for part in raw:
                seen += len(part)
                if seen > cap:
                    raise _too_large(cap)
                yield part

        async def aclose(self) -> None:
            await raw.aclose()

    response.stream = Counted()
    async for part in response.aiter_bytes():
        yield part


def _too_large(cap: int) -> ClassifiedFailure:
    return ClassifiedFailure(
        FailureKind.SERVER_ERROR,
        status=200,
        detail=f"answer larger than {cap} bytes (max_response_bytes)",
    )


def _transport_error(exc: Exception, response: Any) -> Exception:
    """What the SDK's stream raises for ``exc``: its timeout and connection errors."""
    import anyio
    import httpx2
    import openai

    if isinstance(exc, httpx2.TimeoutException):
        return openai.APITimeoutError(request=response.request)
    if isinstance(exc, (httpx2.RequestError, ssl.SSLError, anyio.EndOfStream)):
        return openai.APIConnectionError(request=response.request)
    return exc


def _stream_error(event: dict[str, Any], response: Any) -> Exception:
    """An error event mid-stream, raised as the SDK raises it."""
    import openai

    error = event["error"]
    message = error.get("message") if isinstance(error, dict) else None
    if not message or not isinstance(message, str):
        message = "An error occurred during streaming"
    return openai.APIError(message=message, request=response.request, body=error)


class IdleDeadline:
    """``async with IdleDeadline(seconds):`` raises ``TimeoutError`` when ``touch()`` has not
    been called for ``seconds`` (None: never). See the module docstring."""

    __slots__ = ("_cancelling", "_expired", "_handle", "_last", "_loop", "_seconds", "_task")

    def __init__(self, seconds: float | None) -> None:
        self._seconds = seconds
        self._handle: asyncio.TimerHandle | None = None
        self._expired = False
        self._last = 0.0

    async def __aenter__(self) -> IdleDeadline:
        loop = self._loop = asyncio.get_running_loop()
        task = asyncio.current_task()
        if task is None:
            raise RuntimeError("IdleDeadline should be used inside a task")
        self._task = task
        self._cancelling = task.cancelling()
        self._last = loop.time()
        if self._seconds is not None:
            self._handle = loop.call_at(self._last + self._seconds, self._check)
        return self

    def touch(self) -> None:
        """Something came: the deadline moves to ``seconds`` from now."""
        self._last = self._loop.time()

    def _check(self) -> None:
        assert self._seconds is not None and self._handle is not None
        due = self._last + self._seconds
        if due > self._handle.when():  # touched since the timer was set: wait the rest
            self._handle = self._loop.call_at(due, self._check)
            return
        self._handle = None
        self._expired = True
        self._task.cancel()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
        if (
            self._expired
            and self._task.uncancel() <= self._cancelling
            and exc_type is asyncio.CancelledError
        ):
            raise TimeoutError from exc
