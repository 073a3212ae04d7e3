"""Azure OpenAI-shaped routes on the same handlers as the OpenAI ones.

=======================================================  ==========================================
route (under /api)                                       what
=======================================================  ==========================================
``POST openai/deployments/{name}/chat/completions``      ``AzureOpenAI(azure_endpoint=".../api")``
``POST openai/deployments/{name}/embeddings``            and LangChain / LlamaIndex Azure classes
``POST openai/v1/chat/completions``                      the v1 API: ``OpenAI(base_url=
``POST openai/v1/embeddings``                            ".../api/openai/v1/")``
``GET  openai/v1/models``
=======================================================  ==========================================

``{name}`` (and ``model`` in the body) is a logical alias, or a deployment name from the region
table, which is mapped to the alias it serves. The rewritten body goes to the OpenAI handlers
unchanged otherwise. ``api-version``: deployment routes take the dated versions Azure accepts
(``AZURE_API_VERSIONS``) and ``v1`` (what ``AzureOpenAI(api_version="v1")`` sends); a missing or
unknown one is answered as Azure answers it, 404 ``{"error": {"code": "404", "message":
"Resource not found"}}``. v1 routes take none, ``v1``, ``preview`` or ``latest``; a dated one is
Azure's 400 "api-version query parameter is not allowed when using /v1 path".

Errors come back in Azure's shape (``_azure_errors``): the content filter's
``innererror`` with ``content_filter_result``, and Azure's codes.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.types import Message

from ._azure_errors import azure_response
from ._context import request_info, require_caller
from ._errors import error_response
from ._handlers import chat_completions, embeddings, list_models
from ._parse import read_body
from ._versions import AZURE_API_VERSIONS, V1_API_VERSIONS

if TYPE_CHECKING:
    from ._handlers import Services

__all__ = [
    "azure_chat_completions",
    "azure_embeddings",
    "azure_v1_chat_completions",
    "azure_v1_embeddings",
    "azure_v1_models",
    "resolve_alias",
]

_Handler = Callable[[Request, "Services"], Awaitable[Response]]


def resolve_alias(services: Services, name: str) -> str:
    """``name`` if it is an alias; else the alias a configured deployment called ``name`` serves
    (the first region's, in table order); else ``name`` (the handler answers 404 for it)."""
    gateway = services.gateway()
    if name in gateway.aliases:
        return name
    for region in services.settings().regions:
        for alias, deployment in region.models.items():
            if deployment.deployment == name:
                return alias
    return name


def _azure_json(status: int, code: str, message: str, headers: dict[str, str]) -> JSONResponse:
    return JSONResponse({"error": {"code": code, "message": message}}, status, headers=headers)


def _dumps(data: dict[str, object]) -> bytes:
    """``data`` as UTF-8 JSON. Text holding a lone surrogate (``"\\ud800"``) cannot be encoded as
    UTF-8: it is written as ``\\u`` escapes then, so the handler answers it with its usual 400
    ``invalid_request`` naming the field (never a 500 here, before the request is checked)."""
    try:
        return json.dumps(data, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        return json.dumps(data, ensure_ascii=True).encode("ascii")


def _with_body(request: Request, body: bytes) -> Request:
    """The same request (scope, headers, route) carrying ``body`` instead."""
    scope = dict(request.scope)
    scope["headers"] = [
        (k, v) for k, v in request.scope.get("headers", []) if k.lower() != b"content-length"
    ] + [(b"content-length", str(len(body)).encode())]
    delivered = False

    async def receive() -> Message:
        nonlocal delivered
        if not delivered:
            delivered = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await request.receive()

    return Request(scope, receive)


async def _forward(
    request: Request, services: Services, handler: _Handler, deployment: str | None
) -> Response:
    """Set the body's ``model`` to the alias (``deployment`` from the path, or the body's own
    ``model`` on v1), call the OpenAI handler, and answer its errors in Azure's shape."""
    info = request_info(request, services)
    try:
        require_caller(request, services)
        raw = await read_body(request, services.settings().max_body_bytes)
        try:
            data = json.loads(raw)
        except (ValueError, RecursionError):
            data = None  # the handler answers the malformed body in its usual way
        if isinstance(data, dict):
            name = deployment if deployment is not None else data.get("model")
            if isinstance(name, str) and name:
                data["model"] = resolve_alias(services, name)
                raw = _dumps(data)
        response = await handler(_with_body(request, raw), services)
    except Exception as exc:  # noqa: BLE001 - every failure is answered, in Azure's shape
        response = error_response(exc, info.correlation_id, headers=info.headers())
    return azure_response(response)


def _dated_version_ok(request: Request) -> bool:
    return request.query_params.get("api-version") in AZURE_API_VERSIONS


def _v1_version_ok(request: Request) -> bool:
    version = request.query_params.get("api-version")
    return version is None or version in V1_API_VERSIONS


async def _deployment_route(request: Request, services: Services, handler: _Handler) -> Response:
    info = request_info(request, services)
    if not _dated_version_ok(request):
        return _azure_json(404, "404", "Resource not found", info.headers())
    name = (
        request.path_params.get("deployment")
        or request.url.path.split("/deployments/")[-1].split("/", 1)[0]
    )
    return await _forward(request, services, handler, name)


async def _v1_route(request: Request, services: Services, handler: _Handler) -> Response:
    info = request_info(request, services)
    if not _v1_version_ok(request):
        return _azure_json(
            400,
            "BadRequest",
            "api-version query parameter is not allowed when using /v1 path",
            info.headers(),
        )
    return await _forward(request, services, handler, None)


async def azure_chat_completions(request: Request, services: Services) -> Response:
    """POST openai/deployments/{deployment}/chat/completions?api-version=..."""
    return await _deployment_route(request, services, chat_completions)


async def azure_embeddings(request: Request, services: Services) -> Response:
    """POST openai/deployments/{deployment}/embeddings?api-version=..."""
    return await _deployment_route(request, services, embeddings)


async def azure_v1_chat_completions(request: Request, services: Services) -> Response:
    """POST openai/v1/chat/completions"""
    return await _v1_route(request, services, chat_completions)


async def azure_v1_embeddings(request: Request, services: Services) -> Response:
    """POST openai/v1/embeddings"""
    return await _v1_route(request, services, embeddings)


async def azure_v1_models(request: Request, services: Services) -> Response:
    """GET openai/v1/models: the aliases."""
    info = request_info(request, services)
    if not _v1_version_ok(request):
        return _azure_json(
            400,
            "BadRequest",
            "api-version query parameter is not allowed when using /v1 path",
            info.headers(),
        )
    try:
        require_caller(request, services)
    except Exception as exc:  # noqa: BLE001 - answered in Azure's shape
        return azure_response(error_response(exc, info.correlation_id, headers=info.headers()))
    return azure_response(await list_models(request, services))
