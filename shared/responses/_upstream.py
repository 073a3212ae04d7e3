"""A non-streaming Responses API create sent upstream as a stream, answered with the final
response object: what chat's non-streaming calls get from ``Senders.assembled``.

Why: a JSON create has no first byte before the whole answer, so a region that accepts the
connection and then hangs holds the caller for the whole read timeout. As a stream, the region's
first event (``response.created``, sent before generation starts) must come within the
first-byte deadline (``first_byte_timeout_s``) and each later one within the idle deadline
(``idle_timeout_s``); a silent region is a TIMEOUT attempt (failover when nothing pins the call,
503 ``response_region_unavailable`` when it is pinned to the region storing its previous
response), while a long generation, which keeps sending events, completes. The hedge race reads
the first event as the first byte.

The answer is the ``response`` of the stream's final event, as the region stores it and as its
JSON create would have answered it: ``response.completed``, ``response.incomplete`` (a cut or
filtered answer: ``incomplete_details``) and ``response.failed`` (``status: failed`` with its
``error``) each end the stream with that object. An ``error`` event is the failure the JSON create
would have answered with an HTTP error: ``content_filter`` as Azure's content-filter 400, any
other code a server error (the region's fault: failover, or 503 when pinned). A stream that ends,
or sends something that is not an event object, before its final event is a server error; nothing
has reached the caller then, so each of these is an ordinary failed attempt.

``background: true`` creates are not sent this way (they answer ``queued`` at once); neither is
any create when ``stream_upstream`` is off (the gateway's setting, as for chat).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any, NoReturn, Protocol

from shared.aoai import ClassifiedFailure, FailureKind, IdleDeadline, classify, quiet_close

if TYPE_CHECKING:
    import httpx2
    from openai import AsyncOpenAI

__all__ = ["FINAL_EVENTS", "streamed_create"]

# The events that end a Responses stream with the response object (status and usage).
FINAL_EVENTS = frozenset({"response.completed", "response.incomplete", "response.failed"})


def _final(event: Any) -> dict[str, Any] | None:
    """The response object when ``event`` ends the stream; None for any other event; a
    ``ClassifiedFailure`` for an ``error`` event or a malformed one."""
    if not isinstance(event, dict):
        raise ClassifiedFailure(
            FailureKind.SERVER_ERROR,
            status=200,
            detail=f"malformed answer: a stream event that is a JSON {type(event).__name__}",
        )
    kind = event.get("type")
    if kind == "error":
        body = {k: event.get(k) for k in ("code", "message", "param")}
        code = str(event.get("code") or "")
        if code == "content_filter":
            _raise(FailureKind.CONTENT_FILTER, 400, body, "content_filter error event")
        _raise(FailureKind.SERVER_ERROR, None, body, f"error event ({code[:80]})")
    if kind in FINAL_EVENTS:
        response = event.get("response")
        if not isinstance(response, dict):
            raise ClassifiedFailure(
                FailureKind.SERVER_ERROR,
                status=200,
                detail=f"malformed answer: {kind} without a response object",
            )
        return response
    return None


def _raise(kind: FailureKind, status: int | None, body: Mapping[str, Any], detail: str) -> NoReturn:
    raise ClassifiedFailure(kind, status=status, detail=detail, body=body)


class _StreamSenders(Protocol):
    """What is used of ``shared.aoai``'s senders (``Gateway.senders``)."""

    @property
    def idle_s(self) -> float | None: ...

    def stream(
        self,
        client: AsyncOpenAI,
        path: str,
        body: dict[str, Any],
        request_timeout: httpx2.Timeout | None,
        first_byte: Callable[[], None] | None = None,
    ) -> Awaitable[tuple[Any, Mapping[str, str]]]: ...


def streamed_create(senders: _StreamSenders) -> Any:
    """A sender (``shared.aoai.Sender``) for a non-streaming create: ``senders.stream`` with
    ``stream: true``, read under the idle deadline (``senders.idle_s``) up to the final event;
    its value is that event's response object."""

    async def send(
        client: AsyncOpenAI,
        path: str,
        body: dict[str, Any],
        request_timeout: httpx2.Timeout | None,
        first_byte: Callable[[], None] | None = None,
    ) -> tuple[dict[str, Any], Mapping[str, str]]:
        streamed = dict(body, stream=True)
        opened, headers = await senders.stream(client, path, streamed, request_timeout, first_byte)
        events: AsyncIterator[Any] = opened.events
        idle_s: float | None = senders.idle_s
        try:
            final = _final(opened.first)
            if final is None:
                try:  # one timer for the whole answer, pushed back by every event (as chat's)
                    async with IdleDeadline(idle_s) as idle:
                        touch = idle.touch
                        async for event in events:
                            touch()
                            final = _final(event)
                            if final is not None:
                                break
                except TimeoutError:
                    raise ClassifiedFailure(
                        FailureKind.TIMEOUT,
                        detail=f"silent for {idle_s:g}s mid-answer (idle_timeout_s)",
                    ) from None
                if final is None:
                    raise ClassifiedFailure(
                        FailureKind.SERVER_ERROR,
                        detail="the stream ended before its final event (response.completed)",
                    )
        except ClassifiedFailure:
            raise
        except Exception as exc:
            raise classify(exc) from exc
        finally:
            await quiet_close(opened.response)
        return final, headers

    return send
