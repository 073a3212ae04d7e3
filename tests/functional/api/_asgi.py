"""Build the Starlette requests the host's HTTP streaming proxy hands a function, for direct calls."""

from __future__ import annotations

import json
from typing import Any

from starlette.requests import Request

__all__ = ["body_of", "make_request"]


def make_request(
    method: str, path: str, body: bytes | Any = b"", headers: dict[str, str] | None = None
) -> Request:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    hdrs = {"content-type": "application/json", "content-length": str(len(raw)), **(headers or {})}
    sent = False

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if sent:
            return {"type": "http.disconnect"}
        sent = True
        return {"type": "http.request", "body": raw, "more_body": False}

    scope = {
        "type": "http",
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "query_string": b"",
        "headers": [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in hdrs.items()],
        "server": ("127.0.0.1", 7071),
        "client": ("127.0.0.1", 50000),
    }
    return Request(scope, receive)


async def body_of(response: Any) -> bytes:
    """The whole body of a Response or StreamingResponse (iterating ``body_iterator``)."""
    if hasattr(response, "body_iterator"):
        return b"".join(
            [c if isinstance(c, bytes) else c.encode() async for c in response.body_iterator]
        )
    return bytes(response.body)
