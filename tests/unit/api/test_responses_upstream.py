"""``streamed_create``: a non-streamed Responses create read from its upstream event stream. The
stream itself is a fake (the senders are this unit's collaborator; the deadlines and the real
stream are covered against the simulator in tests/functional/api/test_responses_deadlines.py):
the final event's response object is the answer, an ``error`` event is the failure the JSON
create would have answered with, a stream with no final event is the region's fault, and the
upstream response is closed in every case."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any

import pytest

from shared.aoai import ClassifiedFailure, FailureKind
from shared.responses import streamed_create


class _Upstream:
    def __init__(self) -> None:
        self.closed = False

    async def aclose(self) -> None:
        self.closed = True


class _Opened:
    def __init__(self, events: list[Any]) -> None:
        self.first = events[0]
        self.response = _Upstream()

        async def rest() -> AsyncIterator[Any]:
            for event in events[1:]:
                yield event

        self.events = rest()


class _Senders:
    idle_s = 5.0

    def __init__(self, events: list[Any]) -> None:
        self.opened = _Opened(events)
        self.sent: dict[str, Any] = {}

    async def stream(
        self,
        client: Any,
        path: str,
        body: dict[str, Any],
        request_timeout: Any | None,
        first_byte: Callable[[], None] | None = None,
    ) -> tuple[Any, Mapping[str, str]]:
        self.sent = body
        return self.opened, {"x-ratelimit-remaining-tokens": "1"}


def _created() -> dict[str, Any]:
    return {"type": "response.created", "response": {"id": "resp_1", "status": "in_progress"}}


async def _send(senders: _Senders) -> tuple[Any, Mapping[str, str]]:
    send = streamed_create(senders)
    return await send(None, "/responses", {"model": "d", "input": "hi"}, None)  # type: ignore[no-any-return]


@pytest.mark.parametrize("final", ["response.completed", "response.incomplete", "response.failed"])
async def test_the_final_event_s_response_is_the_answer(final: str) -> None:
    response = {"id": "resp_1", "status": final.split(".")[1], "usage": {"input_tokens": 3}}
    senders = _Senders(
        [
            _created(),
            {"type": "response.output_text.delta", "delta": "Hi"},
            {"type": final, "response": response},
        ]
    )
    value, headers = await _send(senders)
    assert value == response and headers["x-ratelimit-remaining-tokens"] == "1"
    assert senders.sent["stream"] is True and senders.sent["input"] == "hi"
    assert senders.opened.response.closed


async def test_a_content_filter_error_event_is_the_content_filter_failure() -> None:
    error = {"type": "error", "code": "content_filter", "message": "filtered", "param": None}
    senders = _Senders([_created(), error])
    with pytest.raises(ClassifiedFailure) as caught:
        await _send(senders)
    assert caught.value.kind is FailureKind.CONTENT_FILTER and caught.value.status == 400
    assert caught.value.body["message"] == "filtered"
    assert senders.opened.response.closed


@pytest.mark.parametrize(
    "events",
    [
        [_created(), {"type": "error", "code": "server_error", "message": "boom", "param": None}],
        [_created(), {"type": "response.output_text.delta", "delta": "Hi"}],  # no final event
        [_created(), ["not", "an", "event"]],
        [_created(), {"type": "response.completed", "response": None}],
    ],
    ids=["error-event", "no-final-event", "not-an-object", "no-response-object"],
)
async def test_the_region_s_fault_is_a_server_error(events: list[Any]) -> None:
    senders = _Senders(events)
    with pytest.raises(ClassifiedFailure) as caught:
        await _send(senders)
    assert caught.value.kind is FailureKind.SERVER_ERROR
    assert senders.opened.response.closed
