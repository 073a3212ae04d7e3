"""Who is calling and under which correlation id, from the request's headers.

Caller identity, for logs and accounting (never for authorization: the host has already
checked the function key):

1. Easy Auth: the claims in ``x-ms-client-principal`` (base64 JSON ``{"auth_typ", "claims":
   [{"typ", "val"}, ...]}``): the caller application's id (``appid`` in v1 tokens, ``azp`` in v2),
   else its object id (``oid`` / ``.../claims/objectidentifier``), else its name ->
   ``principal:<id>``; without that header ``x-ms-client-principal-name``, else
   ``x-ms-client-principal-id``. App Service authentication sets these and strips any the client
   sent; without Easy Auth a client can send them itself, so they are only as trustworthy as the
   app's auth configuration (``GATEWAY_HTTP_AUTH=easy_auth`` makes the model routes require them:
   ``require_caller``).
2. The function key. The host records which key matched only as a claim
   (``http://schemas.microsoft.com/2017/07/functions/claims/keyid``) on its own principal;
   it sends no header naming the key, and with HTTP streaming the Python worker receives the
   proxied request's headers only. So the key is identified by a short SHA-256 fingerprint of
   the ``x-functions-key`` header (or ``code`` query parameter): ``key:<12 hex>``. The key
   itself is never logged.
3. Otherwise ``anonymous`` (locally, where keys are not enforced, and on anonymous routes).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING

from starlette.requests import Request

if TYPE_CHECKING:
    from ._handlers import Services

__all__ = ["Principal", "RequestInfo", "easy_auth_principal", "request_info", "require_caller"]

_APP_ID_CLAIMS = ("appid", "azp")
_OBJECT_ID_CLAIMS = ("http://schemas.microsoft.com/identity/claims/objectidentifier", "oid")
_NAME_CLAIMS = (
    "name",
    "preferred_username",
    "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/name",
)
_MAX_PRINCIPAL_HEADER = 16 * 1024


@dataclass(frozen=True, slots=True)
class Principal:
    """The Entra ID caller Easy Auth validated: application id, object id, display name."""

    app_id: str | None
    object_id: str | None
    name: str | None

    @property
    def label(self) -> str | None:
        """The id accounting uses: app id, else object id, else name."""
        return self.app_id or self.object_id or self.name


def easy_auth_principal(header: str | None) -> Principal | None:
    """The ``x-ms-client-principal`` header's claims; None when absent or unreadable."""
    if not header or len(header) > _MAX_PRINCIPAL_HEADER:
        return None
    try:
        data = json.loads(base64.b64decode(header + "=" * (-len(header) % 4)))
    except (binascii.Error, ValueError):
        return None
    claims = data.get("claims") if isinstance(data, dict) else None
    if not isinstance(claims, list):
        return None
    values: dict[str, str] = {}
    for claim in claims:
        if isinstance(claim, dict) and isinstance(claim.get("typ"), str):
            val = claim.get("val")
            if isinstance(val, str) and val.strip():
                values.setdefault(claim["typ"], _printable(val.strip()))

    def first(names: tuple[str, ...]) -> str | None:
        return next((values[n] for n in names if n in values), None)

    principal = Principal(first(_APP_ID_CLAIMS), first(_OBJECT_ID_CLAIMS), first(_NAME_CLAIMS))
    return principal if principal.label else None


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
    principal = easy_auth_principal(headers.get("x-ms-client-principal"))
    if principal is not None:
        return f"principal:{principal.label}"
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


def require_caller(request: Request, services: Services) -> None:
    """With ``GATEWAY_HTTP_AUTH=easy_auth`` the model routes are anonymous to the host and Easy Auth
    authenticates: refuse (401 ``unauthenticated``) a request that reached us without a principal
    (Easy Auth off or misconfigured). With function keys (the default) the host checked already."""
    from ._errors import ApiError

    if services.settings().http_auth != "easy_auth":
        return
    headers = request.headers
    if (
        easy_auth_principal(headers.get("x-ms-client-principal")) is None
        and not headers.get("x-ms-client-principal-id", "").strip()
    ):
        raise ApiError(
            401,
            "unauthenticated",
            "This gateway requires an Entra ID token (App Service Authentication); none was "
            "validated for this request.",
            type_="authentication_error",
        )
