"""The SSE decoder of upstream streams (``_sse_reader.SseEvents``) against the openai SDK's
``AsyncStream``, which it replaces on the hot path: for the same bytes, cut into parts anywhere,
both yield the same events and fail the same way. And the one-timer idle deadline
(``IdleDeadline``), driven through the event loop's clock."""

from __future__ import annotations

import asyncio
import gzip
import itertools
import json
import random
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import httpx2
import openai
import pytest
from openai import AsyncOpenAI, AsyncStream

from shared.aoai._classify import ClassifiedFailure
from shared.aoai._sse_reader import IdleDeadline, SseEvents
from shared.aoai._types import FailureKind

CHUNK = {
    "id": "chatcmpl-1",
    "object": "chat.completion.chunk",
    "created": 1,
    "model": "gpt-4o",
    "choices": [{"index": 0, "delta": {"content": "héllo ☃"}, "finish_reason": None}],
}


def _event(payload: Any, end: bytes = b"\n\n") -> bytes:
    return b"data: " + json.dumps(payload, ensure_ascii=False).encode() + end


CHAT = (
    _event({"choices": [], "prompt_filter_results": [{"prompt_index": 0}]})
    + _event(CHUNK)
    + b": a comment\n"
    + b"event: message\nid: 7\nretry: 100\n"
    + _event(dict(CHUNK, choices=[{"index": 0, "delta": {}, "finish_reason": "stop"}]))
    + _event({"choices": [], "usage": {"prompt_tokens": 3, "completion_tokens": 2}})
    + b"data: [DONE]\n\n"
)


class _Parts(httpx2.AsyncByteStream):
    """A response body delivered in the given parts (as a socket would cut it)."""

    def __init__(self, parts: list[bytes], error: Exception | None = None) -> None:
        self._parts = parts
        self._error = error
        self.closed = False

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for part in self._parts:
            yield part
        if self._error is not None:
            raise self._error

    async def aclose(self) -> None:
        self.closed = True


def _response(parts: list[bytes], headers: dict[str, str] | None = None, **kw: Any) -> Any:
    return httpx2.Response(
        200,
        headers={"content-type": "text/event-stream", **(headers or {})},
        stream=_Parts(parts, **kw),
        request=httpx2.Request("POST", "http://upstream.test/chat/completions"),
    )


async def _ours(parts: list[bytes], **kw: Any) -> tuple[list[Any], BaseException | None]:
    events: list[Any] = []
    reader = SseEvents(_response(parts, **kw), max_bytes=10**9)
    try:
        async for event in reader:
            events.append(event)
    except Exception as exc:  # noqa: BLE001 - compared below
        return events, exc
    finally:
        await reader.aclose()
    return events, None


async def _sdks(
    parts: list[bytes], client: AsyncOpenAI | None = None, **kw: Any
) -> tuple[list[Any], BaseException | None]:
    """What the SDK's stream decoder makes of the same body (no request is sent)."""
    own = client is None
    sdk = client or AsyncOpenAI(api_key="k", base_url="http://upstream.test/", max_retries=0)
    events: list[Any] = []
    try:
        async for event in AsyncStream(cast_to=object, response=_response(parts, **kw), client=sdk):
            events.append(event)
    except Exception as exc:  # noqa: BLE001 - compared below
        return events, exc
    finally:
        if own:
            await sdk.close()
    return events, None


def _same_failure(ours: BaseException | None, sdks: BaseException | None) -> bool:
    if ours is None or sdks is None:
        return ours is sdks
    if type(ours) is not type(sdks) or str(ours) != str(sdks):
        return False
    return getattr(ours, "body", None) == getattr(sdks, "body", None)


def _splits(body: bytes, rng: random.Random, count: int) -> Iterator[list[bytes]]:
    yield [body]
    for cut in range(1, len(body), max(1, len(body) // 150)):  # two-part cuts all along
        yield [body[:cut], body[cut:]]
    for cut in range(len(body) - 1):  # and at every line end (CR, LF, CRLF)
        if body[cut : cut + 1] in (b"\r", b"\n"):
            yield [body[:cut], body[cut:]]
            yield [body[: cut + 1], body[cut + 1 :]]
    for _ in range(count):  # and random many-part cuts (empty parts too)
        cuts = sorted(rng.randint(0, len(body)) for _ in range(rng.randint(2, 12)))
        edges = [0, *cuts, len(body)]
        yield [body[a:b] for a, b in itertools.pairwise(edges)]


BODIES = {
    "chat, LF": CHAT,
    "chat, CRLF": CHAT.replace(b"\n", b"\r\n"),
    "chat, CR": CHAT.replace(b"\n", b"\r"),
    "multi-line data, no space after the colon": b'data:{"a":\ndata: 1}\n\ndata: [DONE]\n\n',
    "an error event mid-stream": _event(CHUNK)
    + _event({"error": {"message": "server had an error", "code": "500"}}),
    "an error that is not an object": _event(CHUNK) + _event({"error": "boom"}),
    "data that is not JSON": _event(CHUNK) + b"data: {not json\n\n",
    "a JSON value that is not an object": b"data: [1, 2]\n\ndata: null\n\ndata: [DONE]\n\n",
    "no [DONE], last event unterminated": _event(CHUNK) + b'data: {"b": 2}',
    "[DONE] then more": b"data: [DONE]\n\n" + _event(CHUNK),
    "a trailing CR at the very end": _event(CHUNK, end=b"\r\r"),
}


@pytest.mark.parametrize("name", list(BODIES))
async def test_the_reader_yields_and_fails_as_the_sdk_does_however_the_bytes_are_cut(name):
    body = BODIES[name]
    rng = random.Random(name)
    client = AsyncOpenAI(api_key="k", base_url="http://upstream.test/", max_retries=0)
    try:
        for parts in _splits(body, rng, count=30):
            ours, sdks = await _ours(parts), await _sdks(parts, client)
            assert ours[0] == sdks[0], (name, parts)
            assert _same_failure(ours[1], sdks[1]), (name, parts, ours[1], sdks[1])
    finally:
        await client.close()


async def test_transport_errors_are_the_sdks_timeout_and_connection_errors():
    for error, expected in (
        (httpx2.ReadTimeout("slow"), openai.APITimeoutError),
        (httpx2.RemoteProtocolError("peer closed"), openai.APIConnectionError),
    ):
        ours = await _ours([_event(CHUNK)], error=error)
        sdks = await _sdks([_event(CHUNK)], error=error)
        assert ours[0] == sdks[0] == [CHUNK]
        assert type(ours[1]) is type(sdks[1]) is expected
        assert ours[1].__cause__ is error


async def test_a_compressed_body_is_decoded_and_the_cap_counts_the_bytes_received():
    packed = gzip.compress(CHAT)
    parts = [packed[:10], packed[10:]]
    ours = await _ours(parts, headers={"content-encoding": "gzip"})
    assert ours == await _sdks(parts, headers={"content-encoding": "gzip"})
    assert len(ours[0]) == 4

    for headers, body in (({}, CHAT), ({"content-encoding": "gzip"}, packed)):
        reader = SseEvents(_response([body[:20], body[20:]], headers=headers), max_bytes=30)
        with pytest.raises(ClassifiedFailure) as caught:
            async for _ in reader:
                pass
        assert caught.value.kind is FailureKind.SERVER_ERROR
        assert "max_response_bytes" in caught.value.detail
        await reader.aclose()


async def test_closing_mid_body_closes_the_upstream_response():
    response = _response([_event(CHUNK), _event(CHUNK)])
    reader = SseEvents(response, max_bytes=10**9)
    assert await reader.__anext__() == CHUNK
    await reader.aclose()
    assert response.is_closed and response.stream.closed


# -- IdleDeadline, on a loop whose clock the test moves ---------------------------------


class _LoopClock:
    """The running loop's ``time()`` replaced by a value the test sets (restored after)."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self.now = loop.time()
        self._saved: Callable[[], float] = loop.time
        loop.time = lambda: self.now  # type: ignore[method-assign]

    def restore(self) -> None:
        self._loop.time = self._saved  # type: ignore[method-assign]


async def _turns(n: int = 5) -> None:
    for _ in range(n):
        await asyncio.sleep(0)


async def test_the_idle_deadline_fires_after_silence_and_is_pushed_back_by_touch():
    clock = _LoopClock(asyncio.get_running_loop())
    try:
        expired = asyncio.Event()

        async def body() -> None:
            try:
                async with IdleDeadline(10.0) as idle:
                    clock.now += 6
                    await _turns()
                    idle.touch()  # 6 s in: the deadline moves to 16
                    clock.now += 6  # 12: the first timer fires, finds the touch, re-arms
                    await _turns()
                    clock.now += 3  # 15: still alive
                    await _turns()
                    clock.now += 2  # 17: silent for 11 s
                    await asyncio.Event().wait()
            except TimeoutError:
                expired.set()

        task = asyncio.ensure_future(body())
        await _turns(20)
        assert task.done() and expired.is_set()
    finally:
        clock.restore()


async def test_the_idle_deadline_leaves_an_outside_cancellation_alone():
    started = asyncio.Event()

    async def body() -> None:
        async with IdleDeadline(60.0):
            started.set()
            await asyncio.Event().wait()

    task = asyncio.ensure_future(body())
    await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task

    async with IdleDeadline(None) as idle:  # no deadline: no timer at all
        idle.touch()
        await asyncio.sleep(0)
