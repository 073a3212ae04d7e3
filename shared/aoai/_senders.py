"""The two ways one attempt is sent: a JSON request and a stream opened up to its first chunk.

Both go through the openai SDK's generic ``client.post(path, cast_to=httpx2.Response)``, the
SDK's own raw-response path: auth, URL building (v1 or dated), timeouts and error mapping are
the SDK's, the headers (``x-ratelimit-*``) come back with the body in one request, and the body
is decoded once with ``json`` into the dict callers get (no pydantic model per call). Streams use
the same path with ``stream=True``; their SSE body is decoded by ``_sse_reader.SseEvents`` (the
same events as the SDK's ``AsyncStream`` of plain dicts, from the bytes, at a fraction of its
cost).

Every failure leaves a sender as a ``ClassifiedFailure`` (``raise classify(exc) from exc``).

A hung region (accepts the connection, never answers) must not hold callers for the whole
read timeout, which has to be long for non-streamed generations. Streams therefore have a
**first-byte deadline** (headers and first chunk, ``first_byte_timeout_s``) and an **idle
deadline** between chunks (``idle_timeout_s``); both end the attempt as a TIMEOUT, which
fails over and opens the region's circuit. ``assembled`` sends a non-streaming chat as a
stream under the same deadlines and assembles the ``chat.completion`` body (``_assemble``),
so a 60-second generation completes while a silent region is left within seconds. Its idle
deadline is one timer per answer, pushed back by each chunk (``_sse_reader.IdleDeadline``).

An upstream answer is not trusted to be sane: every body is read through a byte cap
(``max_response_bytes``, bytes received); a larger answer, a 200 whose JSON is not the expected
shape (not an object, no choices or data) or a stream event that is not a chat chunk ends the
attempt as a SERVER_ERROR, the region's fault (it fails over and counts toward the circuit).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from ._assemble import ChatAssembler, MalformedAnswer, complete_chat_body
from ._classify import ClassifiedFailure, classify
from ._estimate import prompt_estimate
from ._sse_reader import IdleDeadline, SseEvents
from ._types import FailureKind

if TYPE_CHECKING:
    import httpx2
    from openai import AsyncOpenAI

__all__ = ["OpenedStream", "Sender", "Senders"]

T_co = TypeVar("T_co", covariant=True)

_OFF_LOOP_BYTES = 256 * 1024
_DEFAULT_MAX_RESPONSE_BYTES = 128 * 1024 * 1024


def _malformed(why: str) -> ClassifiedFailure:
    return ClassifiedFailure(
        FailureKind.SERVER_ERROR, status=200, detail=f"malformed answer: {why}"
    )


def _capped_stream_type(base: type[Any]) -> type[Any]:
    """A byte stream (subclass of httpx2's ``AsyncByteStream``, ``base``) that raises once more
    than ``cap`` bytes have arrived through the wrapped one."""

    class CappedStream(base):  # type: ignore[misc]
        def __init__(self, inner: Any, cap: int) -> None:
            self._inner = inner
            self._cap = cap
            self._seen = 0

        async def __aiter__(self) -> AsyncIterator[bytes]:
            async for part in self._inner:
                self._seen += len(part)
                if self._seen > self._cap:
                    raise ClassifiedFailure(
                        FailureKind.SERVER_ERROR,
                        status=200,
                        detail=f"answer larger than {self._cap} bytes (max_response_bytes)",
                    )
                yield part

        async def aclose(self) -> None:
            await self._inner.aclose()

    return CappedStream


def _prompt_tokens(body: Mapping[str, Any]) -> int:
    messages = body.get("messages")
    return prompt_estimate(
        messages if isinstance(messages, list) else (), body.get("tools"), body.get("functions")
    )


class Sender(Protocol[T_co]):
    """Send ``body`` to ``path`` on ``client``; the value and the response headers.
    ``first_byte`` is called once when the answer's first byte has come (a stream's first
    chunk, a JSON answer's headers): what a hedge race is decided by (``_hedge``)."""

    def __call__(
        self,
        client: AsyncOpenAI,
        path: str,
        body: dict[str, Any],
        request_timeout: httpx2.Timeout | None,
        first_byte: Callable[[], None] | None = None,
    ) -> Awaitable[tuple[T_co, Mapping[str, str]]]: ...


class Closable(Protocol):
    """What releases an upstream connection: the response, or the reader over its bytes."""

    async def aclose(self) -> None: ...


@dataclass(frozen=True, slots=True)
class OpenedStream:
    """A stream that has delivered its first chunk."""

    events: AsyncIterator[dict[str, Any]]
    response: Closable  # what ``aclose()`` releases the connection by (ChatStream closes it)
    first: dict[str, Any]


class Senders:
    """The JSON and stream senders, bound to the SDK's response and stream types (imported when
    the gateway is built, not when ``shared.aoai`` is imported)."""

    __slots__ = (
        "_capped",
        "_first_byte_s",
        "_idle_s",
        "_max_bytes",
        "_response_type",
        "_stream_upstream",
    )

    def __init__(
        self,
        *,
        first_byte_s: float | None = None,
        idle_s: float | None = None,
        max_response_bytes: int = _DEFAULT_MAX_RESPONSE_BYTES,
        stream_upstream: bool = True,
    ) -> None:
        import httpx2

        self._response_type = httpx2.Response
        self._first_byte_s = first_byte_s
        self._idle_s = idle_s
        self._max_bytes = max_response_bytes
        self._capped = _capped_stream_type(httpx2.AsyncByteStream)
        self._stream_upstream = stream_upstream

    def _check_length(self, response: httpx2.Response) -> None:
        """An answer whose declared length is over the byte cap is refused before it is read."""
        length = response.headers.get("content-length")
        if length is not None and length.isdigit() and int(length) > self._max_bytes:
            raise ClassifiedFailure(
                FailureKind.SERVER_ERROR,
                status=response.status_code,
                detail=f"answer of {length} bytes, over {self._max_bytes} (max_response_bytes)",
            )

    def _cap(self, response: httpx2.Response) -> None:
        """Read ``response`` through the byte cap (before anything reads its body)."""
        self._check_length(response)
        response.stream = self._capped(response.stream, self._max_bytes)

    @property
    def idle_s(self) -> float | None:
        return self._idle_s

    @property
    def stream_upstream(self) -> bool:
        """Whether non-streaming generations are sent upstream as streams (``stream_upstream``):
        chat's through ``assembled``, the Responses API's through ``shared.responses``."""
        return self._stream_upstream

    @property
    def response_type(self) -> type[Any]:
        return self._response_type

    async def json(
        self,
        client: AsyncOpenAI,
        path: str,
        body: dict[str, Any],
        request_timeout: httpx2.Timeout | None,
        first_byte: Callable[[], None] | None = None,
    ) -> tuple[dict[str, Any], Mapping[str, str]]:
        response = None
        try:
            response = await client.post(
                path,
                body=body,
                cast_to=self._response_type,
                options={"timeout": request_timeout} if request_timeout else {},
                stream=True,  # read below, through the byte cap
            )
            if first_byte is not None:
                first_byte()
            self._cap(response)
            content = await response.aread()
            if len(content) > _OFF_LOOP_BYTES:
                # A large body (thousands of embeddings) would stall every other call while it
                # is decoded: decode it in a worker thread.
                data = await asyncio.to_thread(json.loads, content)
            else:
                data = json.loads(content)
            return self._checked(path, body, data), response.headers
        except Exception as exc:
            raise classify(exc) from exc
        finally:
            if response is not None:
                await quiet_close(response)

    def _checked(self, path: str, body: Mapping[str, Any], data: Any) -> dict[str, Any]:
        """A 200's JSON, checked against the operation's shape (``MalformedAnswer`` is the
        region's fault); a chat body is completed (model, usage: ``complete_chat_body``)."""
        try:
            if path.endswith("/chat/completions"):
                return complete_chat_body(
                    data,
                    deployment=str(body.get("model") or ""),
                    prompt_tokens=lambda: _prompt_tokens(body),
                )
            if not isinstance(data, dict):
                raise MalformedAnswer(f"a JSON {type(data).__name__}, not an object")
            if path.endswith("/embeddings") and not (
                isinstance(data.get("data"), list)
                and all(isinstance(item, dict) for item in data["data"])
            ):
                raise MalformedAnswer("no list of embedding objects")
        except MalformedAnswer as exc:
            raise _malformed(str(exc)) from None
        return data

    async def stream(
        self,
        client: AsyncOpenAI,
        path: str,
        body: dict[str, Any],
        request_timeout: httpx2.Timeout | None,
        first_byte: Callable[[], None] | None = None,
    ) -> tuple[OpenedStream, Mapping[str, str]]:
        response = events = None
        try:
            try:
                async with asyncio.timeout(self._first_byte_s):
                    response = await client.post(
                        path,
                        body=body,
                        cast_to=self._response_type,
                        options={"timeout": request_timeout} if request_timeout else {},
                        stream=True,
                    )
                    self._check_length(response)
                    # Each SSE event's JSON as decoded, a dict for every chat chunk; read
                    # through the byte cap.
                    events = SseEvents(response, self._max_bytes)
                    first = await events.__anext__()
                    if not isinstance(first, dict):
                        raise _malformed(f"a stream event that is a JSON {type(first).__name__}")
                    if first_byte is not None:
                        first_byte()
            except StopAsyncIteration:
                raise ClassifiedFailure(
                    FailureKind.SERVER_ERROR,
                    status=response.status_code if response is not None else None,
                    detail="the stream ended before its first chunk",
                ) from None
            except TimeoutError:
                raise ClassifiedFailure(
                    FailureKind.TIMEOUT,
                    detail=f"no first byte within {self._first_byte_s:g}s (first_byte_timeout_s)",
                ) from None
            return OpenedStream(events, events, first), response.headers
        except BaseException as exc:
            if events is not None:
                await events.aclose()
            elif response is not None:
                await quiet_close(response)
            if isinstance(exc, Exception):
                raise classify(exc) from exc
            raise

    async def assembled(
        self,
        client: AsyncOpenAI,
        path: str,
        body: dict[str, Any],
        request_timeout: httpx2.Timeout | None,
        first_byte: Callable[[], None] | None = None,
    ) -> tuple[dict[str, Any], Mapping[str, str]]:
        """A non-streaming chat sent as a stream (usage included), assembled into the
        ``chat.completion`` body. Before the body is complete nothing has reached the caller,
        so every failure (silence, a broken stream, no finish) is an ordinary failed attempt.
        The idle deadline is one timer for the whole answer, pushed back by every chunk."""
        streamed = dict(body, stream=True, stream_options={"include_usage": True})
        opened, headers = await self.stream(client, path, streamed, request_timeout, first_byte)
        assembler = ChatAssembler()
        add = assembler.add
        try:
            add(opened.first)
            try:
                async with IdleDeadline(self._idle_s) as idle:
                    touch = idle.touch
                    async for chunk in opened.events:
                        touch()
                        add(chunk)
            except TimeoutError:
                raise ClassifiedFailure(
                    FailureKind.TIMEOUT,
                    detail=f"silent for {self._idle_s:g}s mid-answer (idle_timeout_s)",
                ) from None
        except ClassifiedFailure:
            raise
        except MalformedAnswer as exc:
            raise _malformed(str(exc)) from None
        except Exception as exc:
            raise classify(exc) from exc
        finally:
            await opened.response.aclose()
        if not assembler.finished:
            raise ClassifiedFailure(
                FailureKind.SERVER_ERROR, detail="the stream ended without a finish_reason"
            )
        return self._checked(path, body, assembler.body()), headers


async def quiet_close(response: Closable) -> None:
    """Close an upstream response; closing a broken connection may fail again."""
    try:
        await response.aclose()
    except Exception:  # noqa: BLE001 - nothing to do about it
        pass
