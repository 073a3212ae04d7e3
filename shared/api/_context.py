"""Who is calling and under which correlation id, from the request's headers.

Caller identity, for logs and accounting (never for authorization: the host has already
checked the function key):

1. Easy Auth: ``x-ms-client-principal-name``, else ``x-ms-client-principal-id``. App Service
   authentication sets these and strips any the client sent; without Easy Auth a client can
   send them itself, so they are only as trustworthy as the app's auth configuration.
2. The function key. The host records which key matched only as a claim
   (``http://schemas.microsoft.com/2017/07/functions/claims/keyid``) on its own principal;
   it sends no header naming the key, and with HTTP streaming the Python worker receives the
   proxied request's headers only. So the key is identified by a short SHA-256 fingerprint of
   the ``x-functions-key`` header (or ``code`` query parameter): ``key:<12 hex>``. The key
   itself is never logged.
3. Otherwise ``anonymous`` (locally, where keys are not enforced, and on anonymous routes).
"""

from __future__ import annotations

import hashlib
import re
import uuid
from dataclasses import dataclass

from starlette.requests import Request

__all__ = ["RequestInfo", "request_info"]

_SAFE_ID = re.compile(r"^[A-Za-z0-9._:@/+=-]{1,128}$")
_CORRELATION_HEADERS = ("x-correlation-id", "x-ms-client-request-id", "x-request-id")


@dataclass(frozen=True, slots=True)
class RequestInfo:
    correlation_id: str
    caller: str

    def headers(self) -> dict[str, str]:
        return {"x-request-id": self.correlation_id, "x-correlation-id": self.correlation_id}


def _printable(value: str, limit: int = 128) -> str:
    return "".join(ch for ch in value if ch.isprintable())[:limit]


def _caller(request: Request) -> str:
    headers = request.headers
    for header in ("x-ms-client-principal-name", "x-ms-client-principal-id"):
        value = _printable(headers.get(header, "").strip())
        if value:
            return f"principal:{value}"
    key = headers.get("x-functions-key") or request.query_params.get("code")
    if key:
        return "key:" + hashlib.sha256(key.encode("utf-8", "replace")).hexdigest()[:12]
    return "anonymous"


def request_info(request: Request) -> RequestInfo:
    """The caller's correlation id if it sent a well-formed one, else a new one; and the caller."""
    for header in _CORRELATION_HEADERS:
        value = request.headers.get(header, "").strip()
        if value and _SAFE_ID.match(value):
            return RequestInfo(value, _caller(request))
    return RequestInfo(uuid.uuid4().hex, _caller(request))
