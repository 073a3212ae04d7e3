"""The two ways one attempt is sent: a JSON request and a stream opened up to its first chunk.

Both go through the openai SDK's generic ``client.post(path, cast_to=httpx2.Response)``, the
SDK's own raw-response path: auth, URL building (v1 or dated), timeouts and error mapping are
the SDK's, the headers (``x-ratelimit-*``) come back with the body in one request, and the body
is decoded once with ``json`` into the dict callers get (no pydantic model per call). Streams use
the same path with ``stream=True`` and the SDK's SSE decoder (``AsyncStream`` of plain dicts).

Every failure leaves a sender as a ``ClassifiedFailure`` (``raise classify(exc) from exc``).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar, cast

from ._classify import ClassifiedFailure, classify
from ._types import FailureKind

__all__ = ["OpenedStream", "Sender", "Senders"]

T_co = TypeVar("T_co", covariant=True)


class Sender(Protocol[T_co]):
    """Send ``body`` to ``path`` on ``client``; the value and the response headers."""

    def __call__(
        self, client: Any, path: str, body: dict[str, Any], request_timeout: Any | None
    ) -> Awaitable[tuple[T_co, Mapping[str, str]]]: ...


@dataclass(frozen=True, slots=True)
class OpenedStream:
    """A stream that has delivered its first chunk."""

    events: AsyncIterator[dict[str, Any]]
    response: Any  # httpx2.Response, closed by ChatStream
    first: dict[str, Any]


class Senders:
    """The JSON and stream senders, bound to the SDK's response and stream types (imported when
    the gateway is built, not when ``shared.aoai`` is imported)."""

    __slots__ = ("_response_type", "_stream_type")

    def __init__(self) -> None:
        import httpx2
        from openai import AsyncStream

        self._response_type = httpx2.Response
        self._stream_type = AsyncStream

    @property
    def response_type(self) -> type[Any]:
        return self._response_type

    async def json(
        self, client: Any, path: str, body: dict[str, Any], request_timeout: Any | None
    ) -> tuple[dict[str, Any], Mapping[str, str]]:
        try:
            response = await client.post(
                path,
                body=body,
                cast_to=self._response_type,
                options={"timeout": request_timeout} if request_timeout else {},
            )
            return response.json(), response.headers
        except Exception as exc:
            raise classify(exc) from exc

    async def stream(
        self, client: Any, path: str, body: dict[str, Any], request_timeout: Any | None
    ) -> tuple[OpenedStream, Mapping[str, str]]:
        response = None
        try:
            response = await client.post(
                path,
                body=body,
                cast_to=self._response_type,
                options={"timeout": request_timeout} if request_timeout else {},
                stream=True,
            )
            events = self._stream_type(cast_to=object, response=response, client=client)
            # cast_to=object: each SSE event's JSON as decoded, a dict for every chat chunk.
            iterator = cast("AsyncIterator[dict[str, Any]]", events.__aiter__())
            try:
                first = await iterator.__anext__()
            except StopAsyncIteration:
                raise ClassifiedFailure(
                    FailureKind.SERVER_ERROR,
                    status=response.status_code,
                    detail="the stream ended before its first chunk",
                ) from None
            return OpenedStream(iterator, response, first), response.headers
        except BaseException as exc:
            if response is not None:
                await quiet_close(response)
            if isinstance(exc, Exception):
                raise classify(exc) from exc
            raise


async def quiet_close(response: Any) -> None:
    """Close an upstream response; closing a broken connection may fail again."""
    try:
        await response.aclose()
    except Exception:  # noqa: BLE001 - nothing to do about it
        pass
