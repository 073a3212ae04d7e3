"""The HTTP handlers: each takes a Starlette/FastAPI ``Request`` and the process's services and
returns a ``Response``. Every exception is answered through ``_errors.error_response``."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, Protocol

from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse

from shared.aoai import CallContext, ChatRequest, EmbeddingsRequest, SystemClock
from shared.settings import SettingsError
from shared.telemetry import invocation_context

from ._context import RequestInfo, request_info, require_caller
from ._embeddings_body import SLICE, embeddings_chunks
from ._errors import error_response
from ._health import health_status
from ._parse import parse_body, read_body
from ._sse import sse_events

if TYPE_CHECKING:
    from shared.aoai import Gateway
    from shared.settings import GatewaySettings

__all__ = [
    "Services",
    "chat_completions",
    "embeddings",
    "health",
    "health_details",
    "list_models",
    "openapi",
]

_log = logging.getLogger(__name__)


class Services(Protocol):
    """What the handlers need from the composition root (``shared.runtime`` satisfies it)."""

    def settings(self) -> GatewaySettings: ...

    def gateway(self) -> Gateway: ...


def _secrets(services: Services) -> tuple[str, ...]:
    """Configured keys, to scrub from anything we send back."""
    try:
        regions = services.settings().regions
    except Exception:  # noqa: BLE001 - bad settings: nothing configured to scrub
        return ()
    return tuple(r.api_key.get_secret_value() for r in regions if r.api_key is not None)


def _routing_headers(
    info: RequestInfo, services: Services, region: str, deployment: str, attempts: Any
) -> dict[str, str]:
    """The correlation and attempt headers; the region and deployment names too where the
    settings expose them (``GATEWAY_ROUTING_HEADERS``: by default only outside Azure)."""
    count = attempts if isinstance(attempts, int) else len(attempts)
    headers = {**info.headers(), "x-gateway-attempts": str(count)}
    if services.settings().expose_routing_headers:
        headers["x-gateway-region"] = region
        headers["x-gateway-deployment"] = deployment
    return headers


async def _guarded(
    request: Request, services: Services, body: Callable[[RequestInfo], Awaitable[Response]]
) -> Response:
    info = request_info(request, services)
    # The call's spans are children of the host's invocation (its traceparent on the request).
    with invocation_context(request):
        try:
            require_caller(request, services)  # Easy Auth mode: no principal, no service
            return await body(info)
        except Exception as exc:  # noqa: BLE001 - the one error mapping answers every failure
            return error_response(
                exc, info.correlation_id, headers=info.headers(), secrets=_secrets(services)
            )


async def chat_completions(request: Request, services: Services) -> Response:
    """POST v1/chat/completions: JSON, or SSE when ``stream`` is true."""

    async def run(info: RequestInfo) -> Response:
        gateway = services.gateway()
        chat = parse_body(await read_body(request, services.settings().max_body_bytes), ChatRequest)
        ctx = CallContext(correlation_id=info.correlation_id, caller=info.caller)
        if not chat.stream:
            result = await gateway.chat(chat, ctx)  # the access layer logs the call, once
            headers = _routing_headers(
                info, services, result.region, result.deployment, result.attempts
            )
            return JSONResponse(result.response, headers=headers)
        stream = await gateway.open_chat_stream(chat, ctx)
        _log.debug(
            "[%s] chat stream opened on %s", info.correlation_id, stream.region
        )  # logged in full when it ends
        headers = {
            **_routing_headers(info, services, stream.region, stream.deployment, stream.attempts),
            "cache-control": "no-cache",
            "x-accel-buffering": "no",
        }
        events = sse_events(
            stream,
            info.correlation_id,
            secrets=_secrets(services),
            hide_usage_chunk=not chat.wants_usage_chunk,
        )
        return StreamingResponse(events, media_type="text/event-stream", headers=headers)

    return await _guarded(request, services, run)


async def embeddings(request: Request, services: Services) -> Response:
    """POST v1/embeddings: single or batched input; the gateway splits large batches."""

    async def run(info: RequestInfo) -> Response:
        gateway = services.gateway()
        req = parse_body(
            await read_body(request, services.settings().max_body_bytes), EmbeddingsRequest
        )
        # The gateway keeps vectors as base64 (no float objects); floats are written here, a
        # slice at a time off the loop, for a caller who asked for them or did not say.
        as_float = (req.encoding_format or "float") == "float"
        result = await gateway.embeddings(
            req.model_copy(update={"encoding_format": "base64"}),
            CallContext(correlation_id=info.correlation_id, caller=info.caller),
        )
        headers = _routing_headers(
            info, services, result.region, result.deployment, result.attempts
        )
        body = result.response or {}
        if len(body.get("data") or ()) <= SLICE:
            content = b"".join([chunk async for chunk in embeddings_chunks(body, as_float)])
            return Response(content, media_type="application/json", headers=headers)
        return StreamingResponse(
            embeddings_chunks(body, as_float), media_type="application/json", headers=headers
        )

    return await _guarded(request, services, run)


async def list_models(request: Request, services: Services) -> Response:
    """GET v1/models: the aliases, in OpenAI's list shape."""

    async def run(info: RequestInfo) -> Response:
        data = [
            {"id": alias, "object": "model", "created": 0, "owned_by": "gateway"}
            for alias in services.gateway().aliases
        ]
        return JSONResponse({"object": "list", "data": data}, headers=info.headers())

    return await _guarded(request, services, run)


async def _health_answer(request: Request, services: Services, *, details: bool) -> Response:
    info = request_info(request, services)
    headers = {**info.headers(), "cache-control": "no-store"}
    try:
        gateway = services.gateway()
        now = gateway.clock.now()  # the gateway's injected clock, as its cooldowns use
        report = gateway.health_report()
        verdict = health_status(
            report, degraded_after_s=services.settings().health_degraded_after_s
        )
    except Exception as exc:  # noqa: BLE001 - the health route reports what broke
        if isinstance(exc, SettingsError):
            message = (
                str(exc)  # setting names, never values: behind a function key only
                if details
                else "the gateway's settings are invalid; GET /api/health/details (function key) names them"
            )
            problem = {"code": "gateway_misconfigured", "message": message}
        else:
            _log.error("[%s] health report failed", info.correlation_id, exc_info=exc)
            problem = {
                "code": "internal_error",
                "message": f"health report failed; correlation id {info.correlation_id}",
            }
        # No gateway to ask (bad settings): the process's clock.
        failed = {
            "status": "unavailable",
            "alive": True,
            "time": SystemClock.now(),
            "error": problem,
        }
        return JSONResponse(failed, status_code=503, headers=headers)
    body: dict[str, Any] = {"status": verdict["status"], "alive": True, "time": now}
    if details:
        body["regions_down"] = verdict["regions_down"]
        body["deployments_degraded"] = verdict["deployments_degraded"]
        body["gateway"] = report
    return JSONResponse(body, headers=headers)


async def health(request: Request, services: Services) -> Response:
    """GET health (anonymous): liveness and ``status`` only (no region, deployment or setting
    names: anyone can call it). 200 when the gateway
    is configured (``degraded`` while a region's circuit is not closed or a deployment is out:
    traffic still flows to the others), 503 when it is not. Nothing about deployments, quotas,
    live budgets or circuits: that is ``health_details``, behind a function key."""
    return await _health_answer(request, services, details=False)


async def health_details(request: Request, services: Services) -> Response:
    """GET health/details (function key): the same verdict plus ``regions_down``,
    ``deployments_degraded`` (which
    deployments are exhausted, missing or cooling long) and the full report (circuits,
    cooldowns, budgets) of every region and deployment; a misconfiguration names the bad key."""
    return await _health_answer(request, services, details=True)


async def openapi(request: Request, services: Services) -> Response:
    """GET v1/openapi.json: the API's OpenAPI 3.1 document, from the same pydantic models."""
    del services  # the document does not depend on the configuration
    info = request_info(request)
    try:
        from ._openapi import openapi_document  # lazy: cold start

        return JSONResponse(openapi_document(), headers=info.headers())
    except Exception as exc:  # noqa: BLE001 - the one error mapping answers every failure
        return error_response(exc, info.correlation_id, headers=info.headers())
