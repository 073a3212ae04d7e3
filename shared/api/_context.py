"""Who is calling and under which correlation id, from what the platform authenticated.

The caller identity keys per-caller limits, usage, cost and (for jobs) ownership, so it comes only
from what the host or App Service checked in the active auth mode (``GATEWAY_HTTP_AUTH``), never
from a header a client can set on its own. docs/security.md states the whole trust model.

- ``function_key`` (default): the host checked the function key. It sends no header naming the
  key (with HTTP streaming the worker sees the proxied request's headers only), so the caller is
  a short SHA-256 fingerprint of the ``x-functions-key`` header (or ``code`` query parameter):
  ``key:<12 hex>``, or ``key:<name>`` where ``GATEWAY_KEY_NAMES`` names that fingerprint. The key
  itself is never logged. ``x-ms-client-principal*`` headers are ignored: without App Service
  Authentication nobody strips them, so any caller could claim any principal.
- ``easy_auth``: App Service Authentication validated an Entra ID token in front of the app,
  stripped any client-sent ``x-ms-client-principal*`` headers and set its own. Only while the
  platform says it is on (``WEBSITE_AUTH_ENABLED``) is the full ``x-ms-client-principal`` document
  trusted: the caller application's id (``appid`` in v1 tokens, ``azp`` in v2), else its object id
  (``oid``), else its name -> ``principal:<id>``. A bare ``-id``/``-name`` header never is. With
  authentication off the model routes answer 503 (``require_caller``).
- Otherwise ``anonymous`` (anonymous routes, and local runs where keys are not enforced).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal, Protocol

from starlette.requests import Request

from ._errors import ApiError

if TYPE_CHECKING:
    from shared.settings import GatewaySettings

__all__ = [
    "CallerPolicy",
    "Principal",
    "RequestInfo",
    "easy_auth_principal",
    "key_fingerprint",
    "request_info",
    "require_caller",
]

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


class HasSettings(Protocol):
    """What identity needs of the services: the gateway's settings (the auth mode)."""

    def settings(self) -> GatewaySettings: ...


def key_fingerprint(key: str) -> str:
    """The 12-hex SHA-256 fingerprint that identifies a function key (``GATEWAY_KEY_NAMES``)."""
    return hashlib.sha256(key.encode("utf-8", "replace")).hexdigest()[:12]


@dataclass(frozen=True, slots=True)
class CallerPolicy:
    """What the active auth mode lets the gateway believe about a caller. The default trusts no
    header: the function-key mode with no key names."""

    mode: Literal["function_key", "easy_auth"] = "function_key"
    platform_auth: bool = False  # WEBSITE_AUTH_ENABLED: App Service Authentication is on
    key_names: tuple[tuple[str, str], ...] = ()  # (fingerprint, name)

    @classmethod
    def from_settings(cls, settings: GatewaySettings) -> CallerPolicy:
        return cls(
            mode=settings.http_auth,
            platform_auth=settings.website_auth_enabled,
            key_names=tuple((fp, name) for name, fp in sorted(settings.key_names.items())),
        )

    @classmethod
    def of(cls, services: HasSettings | None) -> CallerPolicy:
        """The policy of ``services``' settings; the default (trust no header) when there are no
        services or their settings are broken (health and errors still answer then)."""
        if services is None:
            return cls()
        try:
            return cls.from_settings(services.settings())
        except Exception:  # noqa: BLE001 - bad settings are reported by the route; trust nothing
            return cls()

    @property
    def trusts_principal(self) -> bool:
        return self.mode == "easy_auth" and self.platform_auth

    def caller(self, request: Request) -> str:
        headers = request.headers
        if self.trusts_principal:
            principal = easy_auth_principal(headers.get("x-ms-client-principal"))
            if principal is not None:
                return f"principal:{principal.label}"
        key = headers.get("x-functions-key") or request.query_params.get("code")
        if key:
            fingerprint = key_fingerprint(key)
            name = next((n for fp, n in self.key_names if fp == fingerprint), None)
            return f"key:{name or fingerprint}"
        return "anonymous"


def request_info(request: Request, services: HasSettings | None = None) -> RequestInfo:
    """The caller's correlation id if it sent a well-formed one, else a new one; and the caller,
    as the auth mode of ``services``' settings authenticates it (see the module docstring)."""
    caller = CallerPolicy.of(services).caller(request)
    for header in _CORRELATION_HEADERS:
        value = request.headers.get(header, "").strip()
        if value and _SAFE_ID.match(value):
            return RequestInfo(value, caller)
    return RequestInfo(uuid.uuid4().hex, caller)


def require_caller(request: Request, services: HasSettings) -> None:
    """With ``GATEWAY_HTTP_AUTH=easy_auth`` the model routes are anonymous to the host and App
    Service Authentication authenticates. Refuse (503 ``easy_auth_not_enabled``) while the platform
    says it is off, since any client could then send the principal headers; refuse (401
    ``unauthenticated``) a request without a readable ``x-ms-client-principal`` document. With
    function keys (the default) the host checked already."""
    policy = CallerPolicy.of(services)
    if policy.mode != "easy_auth":
        return
    if not policy.platform_auth:
        raise ApiError(
            503,
            "easy_auth_not_enabled",
            "GATEWAY_HTTP_AUTH is easy_auth, but App Service Authentication is off for this app "
            "(WEBSITE_AUTH_ENABLED is not true), so the model routes would be open to anyone. "
            "Turn authentication on, or set GATEWAY_HTTP_AUTH=function_key.",
            type_="server_error",
        )
    if easy_auth_principal(request.headers.get("x-ms-client-principal")) is None:
        raise ApiError(
            401,
            "unauthenticated",
            "This gateway requires an Entra ID token (App Service Authentication); none was "
            "validated for this request.",
            type_="authentication_error",
        )
