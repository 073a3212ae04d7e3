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
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
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
        return JSONResponse(
            {
                "error": {
                    "message": "No function serves this route.",
                    "type": "invalid_request_error",
                    "param": None,
                    "code": "not_found",
                }
            },
            status_code=404,
        )

    for fn in functions:
        _log.info(
            "devserver: %s %s/%s (auth level %s, not enforced)",
            ",".join(fn.methods),
            base,
            fn.route,
            fn.auth_level,
        )
    return Starlette(routes=routes, exception_handlers={404: not_found})


def serve_config(
    function_app: Any, *, host: str = "127.0.0.1", port: int = 7071, log_level: str = "info"
) -> Any:
    """A uvicorn Config for the app (uvicorn imported here: it is a dev dependency)."""
    import uvicorn

    if host not in ("127.0.0.1", "localhost", "::1"):
        raise ValueError(f"the dev server binds to loopback only, not {host}")
    return uvicorn.Config(
        build_asgi_app(function_app), host=host, port=port, log_level=log_level, lifespan="off"
    )
