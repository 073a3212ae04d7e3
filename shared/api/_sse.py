"""Server-Sent Events as the OpenAI API sends them: ``data: {json}\\n\\n`` per chunk, forwarded as
it arrives, then ``data: [DONE]\\n\\n``. If upstream dies after the first chunk the stream ends with
one error event ``data: {"error": {...}}`` (which the openai SDKs raise as an APIError) and no
``[DONE]``, so a truncated answer is never mistaken for a complete one."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from typing import Any

from ._errors import error_body

__all__ = ["DONE", "sse_event", "sse_events"]

_log = logging.getLogger(__name__)

DONE = b"data: [DONE]\n\n"


def sse_event(payload: Any) -> bytes:
    return (
        b"data: "
        + json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
        + b"\n\n"
    )


async def sse_events(
    stream: Any,
    correlation_id: str,
    *,
    secrets: tuple[str, ...] = (),
    hide_usage_chunk: bool = False,
) -> AsyncIterator[bytes]:
    """Encode an opened chat stream as SSE; always closes it, also when the client goes away.
    ``hide_usage_chunk``: drop the final usage-only chunk (no choices) the gateway asked for
    on the caller's behalf (usage accounting) when the caller did not ask for it."""
    chunks = 0
    try:
        async for chunk in stream:
            if hide_usage_chunk and not chunk.get("choices") and chunk.get("usage"):
                continue
            chunks += 1
            yield sse_event(chunk)
    except Exception as exc:  # noqa: BLE001 - StreamInterrupted, or anything else: never a silent truncation
        _, body = error_body(exc, correlation_id, secrets=secrets)
        _log.warning(
            "[%s] stream ended by %s after %d chunks", correlation_id, body["error"]["code"], chunks
        )
        if body["error"]["code"] == "internal_error":
            _log.error("[%s] unexpected error in stream", correlation_id, exc_info=exc)
        yield sse_event(body)
        return
    finally:
        await _close(stream, correlation_id)
    _log.info("[%s] stream done: %d chunks", correlation_id, chunks)
    yield DONE


async def _close(stream: Any, correlation_id: str) -> None:
    try:
        await stream.aclose()
    except Exception:  # noqa: BLE001 - closing must not mask the outcome
        _log.warning("[%s] closing the upstream stream failed", correlation_id, exc_info=True)
