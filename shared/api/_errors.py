"""Every failure becomes OpenAI's error shape here, and only here.

    {"error": {"message", "type", "param", "code", "correlation_id", ...safe details}}

``code`` is stable (``GatewayError.code`` or one of the API's own codes below); callers branch on
it. Nothing from an exception reaches a body unless the exception class chose to expose it, and
every message is scrubbed of configured keys and anything shaped like a bearer token.
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Iterable
from typing import Any

from starlette.responses import JSONResponse

from shared.aoai import (
    AllThrottled,
    ConfigurationError,
    ContentFiltered,
    GatewayError,
    RequestRejected,
    UpstreamUnavailable,
)
from shared.settings import SettingsError

__all__ = ["ApiError", "error_body", "error_response", "scrub"]

_log = logging.getLogger(__name__)

# JWTs (Entra tokens) and "Bearer <anything>".
_TOKENISH = re.compile(
    r"eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]*|(?i:bearer)\s+[A-Za-z0-9._~+/=-]{8,}"
)


class ApiError(Exception):
    """An error the API itself detects (body too large, malformed JSON, invalid field)."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        param: str | None = None,
        type_: str = "invalid_request_error",
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.param = param
        self.type = type_


def scrub(text: str, secrets: Iterable[str] = ()) -> str:
    """Remove configured secrets and token-shaped strings from ``text``."""
    for secret in secrets:
        if secret and len(secret) >= 4:
            text = text.replace(secret, "[redacted]")
    return _TOKENISH.sub("[redacted]", text)


def _error_type(exc: GatewayError) -> str:
    if isinstance(exc, AllThrottled):
        return "rate_limit_error"
    if isinstance(exc, RequestRejected):
        return "invalid_request_error"
    if isinstance(exc, ConfigurationError):
        return "gateway_error"
    if isinstance(exc, UpstreamUnavailable):
        return "upstream_error"
    return "server_error"


def _scrub_value(value: Any, secrets: tuple[str, ...]) -> Any:
    if isinstance(value, str):
        return scrub(value, secrets)
    if isinstance(value, dict):
        return {k: _scrub_value(v, secrets) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_scrub_value(v, secrets) for v in value]
    return value


def error_body(
    exc: BaseException, correlation_id: str, *, secrets: tuple[str, ...] = ()
) -> tuple[int, dict[str, Any]]:
    """(HTTP status, body) for any exception. Unexpected ones become 500 ``internal_error``."""
    if isinstance(exc, ApiError):
        status, inner = (
            exc.status,
            {"message": exc.message, "type": exc.type, "param": exc.param, "code": exc.code},
        )
    elif isinstance(exc, GatewayError):
        details = dict(exc.details())
        param = details.pop("param", None)
        status = exc.http_status
        inner = {"message": exc.message, "type": _error_type(exc), "param": param, "code": exc.code}
        if isinstance(exc, ContentFiltered):
            details["filtered_categories"] = exc.filtered_categories
        if exc.attempts:
            details["attempts"] = len(exc.attempts)
        inner.update({k: v for k, v in details.items() if k not in inner})
    elif isinstance(exc, SettingsError):
        status = 500
        inner = {
            "message": "The gateway's app settings are invalid; an operator must fix them (GET /api/health shows which).",
            "type": "gateway_error",
            "param": None,
            "code": "gateway_misconfigured",
        }
    else:
        status = 500
        inner = {
            "message": f"Internal error. Quote correlation id {correlation_id} when reporting it.",
            "type": "server_error",
            "param": None,
            "code": "internal_error",
        }
    inner["correlation_id"] = correlation_id
    return status, {"error": _scrub_value(inner, secrets)}


def error_response(
    exc: BaseException,
    correlation_id: str,
    *,
    headers: dict[str, str] | None = None,
    secrets: tuple[str, ...] = (),
) -> JSONResponse:
    """The JSON response for ``exc``, with ``Retry-After`` on 429 and the correlation headers."""
    status, body = error_body(exc, correlation_id, secrets=secrets)
    out = dict(headers or {})
    if isinstance(exc, AllThrottled):
        wait = exc.retry_after_s
        out["retry-after"] = str(max(1, math.ceil(wait)))
        out["retry-after-ms"] = str(max(1, math.ceil(wait * 1000)))
    if isinstance(exc, GatewayError):
        out.setdefault("x-gateway-attempts", str(len(exc.attempts)))
        extra = getattr(exc, "response_headers", None)  # e.g. a caller's own x-ratelimit-*
        if extra is not None:
            out.update(extra())
    code = body["error"]["code"]
    if isinstance(exc, SettingsError):
        _log.error(
            "[%s] answered %d %s: %s", correlation_id, status, code, scrub(str(exc), secrets)
        )
    elif status >= 500 and not isinstance(exc, GatewayError):
        _log.error("[%s] unexpected %s", correlation_id, type(exc).__name__, exc_info=exc)
    else:
        _log.log(
            logging.WARNING if status >= 500 else logging.INFO,
            "[%s] answered %d %s",
            correlation_id,
            status,
            code,
        )
    return JSONResponse(body, status_code=status, headers=out)
