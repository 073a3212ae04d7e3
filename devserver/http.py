"""Serve a FunctionApp's HTTP functions as an ASGI app, the way the host would route them.

The routes come from what the worker indexes: each function's ``httpTrigger`` binding
(``get_raw_bindings()``: route, methods) and its user function (``get_user_function()``), under
host.json's ``extensions.http.routePrefix`` (default ``api``). The user functions already take a
FastAPI/Starlette ``Request`` and return a ``Response`` (HTTP streaming extension), so each is an
endpoint as is. As under Core Tools, function keys are not enforced (auth levels are ignored).
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

__all__ = [
    "HttpFunction",
    "build_asgi_app",
    "http_functions",
    "indexed_functions",
    "route_prefix",
    "serve_config",
]

_log = logging.getLogger(__name__)
_ALL_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS")


@dataclass(frozen=True)
class HttpFunction:
    name: str
    route: str
    methods: tuple[str, ...]
    auth_level: str
    handler: Callable[..., Any]


def indexed_functions(function_app: Any) -> list[Any]:
    """``function_app.get_functions()``, as the worker calls it at indexing, but repeatable.

    azure-functions records each name on the app during the call and refuses a second call
    (every name then looks duplicated), so the record is cleared first.
    """
    function_app.functions_bindings = None
    return function_app.get_functions()


def http_functions(function_app: Any) -> list[HttpFunction]:
    """The app's HTTP-triggered functions, as the worker indexes them."""
    found = []
    for fn in indexed_functions(function_app):
        bindings = [json.loads(raw) for raw in fn.get_raw_bindings()]
        trigger = next((b for b in bindings if b.get("type") == "httpTrigger"), None)
        if trigger is None:
            continue
        methods = tuple(m.upper() for m in (trigger.get("methods") or _ALL_METHODS))
        route = (trigger.get("route") or fn.get_function_name()).strip("/")
        found.append(
            HttpFunction(
                fn.get_function_name(),
                route,
                methods,
                str(trigger.get("authLevel", "")).lower(),
                fn.get_user_function(),
            )
        )
    return found


def route_prefix(host_json: str | Path | None = None) -> str:
    """host.json's ``extensions.http.routePrefix`` (``api`` when absent)."""
    path = Path(host_json) if host_json else Path(__file__).resolve().parents[1] / "host.json"
    try:
        prefix = (
            json.loads(path.read_text(encoding="utf-8"))
            .get("extensions", {})
            .get("http", {})
            .get("routePrefix", "api")
        )
    except (OSError, ValueError):
        prefix = "api"
    return str(prefix).strip("/")


def _endpoint(fn: HttpFunction) -> Callable[[Request], Any]:
    async def endpoint(request: Request) -> Response:
        try:
            return await fn.handler(request)
        except Exception:  # noqa: BLE001 - the host answers 500 with no body when a function raises
            _log.exception("function %s raised", fn.name)
            return Response(status_code=500)

    endpoint.__name__ = fn.name
    return endpoint


def build_asgi_app(function_app: Any, *, prefix: str | None = None) -> Starlette:
    """An ASGI app serving exactly ``function_app``'s HTTP functions under ``/<prefix>``."""
    prefix = route_prefix() if prefix is None else prefix.strip("/")
    base = f"/{prefix}" if prefix else ""
    functions = http_functions(function_app)
    routes = [
        Route(f"{base}/{fn.route}", _endpoint(fn), methods=list(fn.methods), name=fn.name)
        for fn in functions
    ]

    async def not_found(request: Request, exc: Exception) -> Response:
        return _error(request, 404, "not_found", "No function serves this route.")

    async def not_allowed(request: Request, exc: Exception) -> Response:
        allowed = sorted(
            {m for fn in functions if f"{base}/{fn.route}" == request.url.path for m in fn.methods}
        )
        response = _error(
            request,
            405,
            "method_not_allowed",
            f"{request.method} is not allowed here; use {', '.join(allowed) or 'another route'}.",
        )
        response.headers["allow"] = ", ".join(allowed)
        return response

    for fn in functions:
        _log.info(
            "devserver: %s %s/%s (auth level %s, not enforced)",
            ",".join(fn.methods),
            base,
            fn.route,
            fn.auth_level,
        )
    return Starlette(routes=routes, exception_handlers={404: not_found, 405: not_allowed})


def _error(request: Request, status: int, code: str, message: str) -> Response:
    """The API's own error shape (OpenAI's, with a correlation id) for the router's answers."""
    from shared.api import ApiError, error_response, request_info

    info = request_info(request)
    return error_response(
        ApiError(status, code, message), info.correlation_id, headers=info.headers()
    )


class _RedactKeys(logging.Filter):
    """uvicorn's access log records the full path: hide function keys sent as ``?code=``."""

    _KEY = re.compile(r"((?:^|[?&])code=)[^&\s]*", re.IGNORECASE)

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if isinstance(args, tuple) and len(args) >= 3 and isinstance(args[2], str):
            record.args = (*args[:2], self._KEY.sub(r"\1[redacted]", args[2]), *args[3:])
        return True


_ACCESS_FILTER = _RedactKeys()


def serve_config(
    function_app: Any, *, host: str = "127.0.0.1", port: int = 7071, log_level: str = "info"
) -> Any:
    """A uvicorn Config for the app (uvicorn imported here: it is a dev dependency)."""
    import uvicorn

    if host not in ("127.0.0.1", "localhost", "::1"):
        raise ValueError(f"the dev server binds to loopback only, not {host}")
    access = logging.getLogger("uvicorn.access")
    if _ACCESS_FILTER not in access.filters:
        access.addFilter(_ACCESS_FILTER)
    return uvicorn.Config(
        build_asgi_app(function_app), host=host, port=port, log_level=log_level, lifespan="off"
    )
