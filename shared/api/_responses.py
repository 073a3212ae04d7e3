"""The Responses API through the gateway: ``POST responses``, ``GET/DELETE responses/{id}``,
``POST responses/{id}/cancel``, ``GET responses/{id}/input_items``, under ``/api/v1/`` (OpenAI's
errors; ``model`` is an alias), ``/api/openai/v1/`` (Azure's v1 API: ``model`` may also be a
deployment name; errors in Azure's shape) and ``/api/openai/responses?api-version=`` (Azure's dated
route, what ``AzureOpenAI`` builds: ``DATED_API_VERSIONS``; another or none is Azure's 404).

Affinity: a response is stored by the Azure OpenAI resource that produced it, so every request
naming a stored response (``previous_response_id``, an id in the path) goes to the region and
deployment recorded when the gateway saw it created (``shared.responses``), whatever the router
would prefer: through the same call loop, so pacing, the shared quota and the region's circuit
apply, but with no failover. When that region is down the caller gets 503
``response_region_unavailable`` naming it; an id the gateway never recorded, or one created by
another caller, is 404 ``response_not_found``. A request without stored-state references (no
``previous_response_id``) is routed like chat, with failover.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any, Protocol

from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse

from shared.aoai import (
    AllThrottled,
    CallContext,
    ClassifiedFailure,
    DeadlineExceeded,
    FailureKind,
    UpstreamUnavailable,
    Usage,
    classify,
)

from ._azure import resolve_alias
from ._azure_errors import azure_response
from ._context import RequestInfo, request_info, require_caller
from ._errors import ApiError, error_response
from ._parse import read_body
from ._versions import V1_API_VERSIONS

if TYPE_CHECKING:
    from shared.aoai import Gateway
    from shared.responses import AffinityStore, ResponseHome
    from shared.settings import GatewaySettings

__all__ = [
    "ResponsesServices",
    "response_by_id",
    "response_cancel",
    "response_delete",
    "response_input_items",
    "response_retrieve",
    "responses_create",
]

_log = logging.getLogger(__name__)
_PATH = "/responses"
_ID_OPS_COST = 1  # tokens charged for a retrieval, deletion, cancellation or listing
# Upstream answers to a pinned call that are the answer, not the region's failure: relayed.
_RELAYED = frozenset({400, 404, 409, 422})
# Azure's dated route for the Responses API (``/openai/responses?api-version=``, what
# ``AzureOpenAI`` builds): its preview versions, and ``v1`` (``AzureOpenAI(api_version="v1")``).
DATED_API_VERSIONS = frozenset({"2025-03-01-preview", "2025-04-01-preview", "v1", "preview"})


class ResponsesServices(Protocol):
    """What these handlers need from the composition root (``shared.runtime``)."""

    def settings(self) -> GatewaySettings: ...

    def gateway(self) -> Gateway: ...

    def response_affinity(self) -> AffinityStore: ...


class _Relayed(Exception):
    """An upstream 4xx that answers a pinned call (e.g. 400 cancelling a foreground response)."""

    def __init__(self, status: int, body: Mapping[str, Any]) -> None:
        super().__init__(f"HTTP {status}")
        self.status = status
        self.body = dict(body)


def _usage(data: Any) -> Usage | None:
    """The gateway's ``Usage`` from a Responses ``usage`` object (``shared.responses``)."""
    from shared.responses import responses_usage  # lazy: cold start

    return responses_usage(data)


def _estimate(body: Mapping[str, Any], default_max_tokens: int) -> int:
    """Tokens charged against TPM (``shared.responses.responses_cost``, as for a job)."""
    from shared.responses import responses_cost  # lazy: cold start

    return responses_cost(body, default_max_tokens)


def _relaying(send: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
    """``send``, with the upstream 4xx answers of a pinned call relayed (``_Relayed``) instead
    of counted against the deployment (a 404 there means the response is gone, not the
    deployment)."""

    async def wrapped(
        client: Any,
        path: str,
        body: dict[str, Any],
        timeout: Any,
        first_byte: Callable[[], None] | None = None,
    ) -> Any:
        try:
            return await send(client, path, body, timeout, first_byte)
        except ClassifiedFailure as failure:
            if failure.status in _RELAYED:
                raise _Relayed(failure.status or 400, failure.body) from None
            raise

    return wrapped


def _create_sender(gateway: Gateway, body: Mapping[str, Any]) -> tuple[Any, bool]:
    """How a create is sent, and whether it may be hedged. ``stream: true``: the caller's stream.
    Otherwise as a stream answered with its final response object
    (``shared.responses.streamed_create``: the first-byte and idle deadlines apply, as for a
    non-streaming chat), or as JSON for ``background: true`` (answered ``queued`` at once) and
    when ``stream_upstream`` is off; a JSON answer's headers come only with the whole answer,
    so there is no first byte to hedge on."""
    from shared.responses import streamed_create  # lazy: cold start

    senders = gateway.senders
    if body.get("stream") is True:
        return senders.stream, True
    if body.get("background") is True or not senders.stream_upstream:
        return senders.json, False
    return streamed_create(senders), True


def _method_sender(gateway: Gateway, method: str, query: Mapping[str, str]) -> Any:
    """A JSON sender for GET, DELETE or a bodiless POST on a response id (no ``model`` sent)."""
    response_type = gateway.senders.response_type

    async def send(
        client: Any,
        path: str,
        body: dict[str, Any],
        timeout: Any,
        first_byte: Callable[[], None] | None = None,
    ) -> tuple[dict[str, Any], Mapping[str, str]]:
        del body  # the call loop adds the deployment's name; these calls take no body
        options: dict[str, Any] = {"params": dict(query)} if query else {}
        if timeout is not None:
            options["timeout"] = timeout
        try:
            if method == "GET":
                response = await client.get(path, cast_to=response_type, options=options)
            elif method == "DELETE":
                response = await client.delete(path, cast_to=response_type, options=options)
            else:
                response = await client.post(path, cast_to=response_type, options=options)
            if first_byte is not None:
                first_byte()
            data = json.loads(response.content) if response.content else {}
        except Exception as exc:
            raise classify(exc) from exc
        if not isinstance(data, dict):
            raise ClassifiedFailure(
                FailureKind.SERVER_ERROR, status=200, detail="malformed answer: not an object"
            )
        return data, response.headers

    return _relaying(send)


def _stream_get_sender(
    gateway: Gateway, query: Mapping[str, str], first_byte_s: float | None
) -> Any:
    """A sender for ``GET responses/{id}?stream=true``: the region's replay of a stored
    response's events, opened up to its first event (within ``first_byte_s``); the value is
    (first event, the rest, the upstream response to close)."""
    from openai import AsyncStream

    response_type = gateway.senders.response_type

    async def send(
        client: Any,
        path: str,
        body: dict[str, Any],
        timeout: Any,
        first_byte: Callable[[], None] | None = None,
    ) -> tuple[tuple[dict[str, Any], AsyncIterator[Any], Any], Mapping[str, str]]:
        del body
        options: dict[str, Any] = {"params": dict(query)}
        if timeout is not None:
            options["timeout"] = timeout
        response = None
        try:
            async with asyncio.timeout(first_byte_s):
                response = await client.get(
                    path, cast_to=response_type, options=options, stream=True
                )
                events = AsyncStream(cast_to=object, response=response, client=client)
                iterator = events.__aiter__()
                first = await iterator.__anext__()
            if first_byte is not None:
                first_byte()
            if not isinstance(first, dict):
                raise ClassifiedFailure(
                    FailureKind.SERVER_ERROR, status=200, detail="malformed stream event"
                )
            return (first, iterator, response), response.headers
        except BaseException as exc:
            if response is not None:
                await response.aclose()
            if isinstance(exc, StopAsyncIteration):
                raise ClassifiedFailure(
                    FailureKind.SERVER_ERROR, detail="the stream ended before its first event"
                ) from None
            if isinstance(exc, TimeoutError):
                raise ClassifiedFailure(
                    FailureKind.TIMEOUT, detail=f"no first byte within {first_byte_s}s"
                ) from None
            if isinstance(exc, Exception):
                raise classify(exc) from exc
            raise

    return _relaying(send)


def _routing_headers(
    info: RequestInfo, services: ResponsesServices, names: tuple[str, str], attempts: int
) -> dict[str, str]:
    headers = {**info.headers(), "x-gateway-attempts": str(attempts)}
    if services.settings().expose_routing_headers:
        headers["x-gateway-region"], headers["x-gateway-deployment"] = names
    return headers


def _region_unavailable(response_id: str, home: ResponseHome, why: str) -> ApiError:
    return ApiError(
        503,
        "response_region_unavailable",
        f"Response '{response_id}' is stored in region '{home.region}', which cannot be reached "
        f"now ({why}). Stored responses are served only by the region that holds them; retry "
        "later, or start over with the full input (a request without previous_response_id, or "
        "with store: false, is free to fail over).",
        param="previous_response_id",
        type_="server_error",
    )


def _not_found(response_id: str, param: str | None = None) -> ApiError:
    return ApiError(
        404,
        "response_not_found",
        f"Response with id '{response_id}' not found.",
        param=param,
    )


async def _home(
    services: ResponsesServices, info: RequestInfo, response_id: str, param: str | None = None
) -> ResponseHome:
    """Where ``response_id`` lives, if this caller created it through the gateway; else 404.
    503 when its region's circuit is open."""
    try:
        home = await services.response_affinity().find(response_id)
    except Exception as exc:
        _log.warning("response affinity lookup failed (%s)", type(exc).__name__)
        raise ApiError(
            503,
            "response_affinity_unavailable",
            "The gateway cannot look up where this response is stored right now (its storage "
            "is unreachable); retry later.",
            type_="server_error",
        ) from exc
    if home is None or home.caller != info.caller:
        raise _not_found(response_id, param)
    if not services.gateway().region_open(home.region):
        raise _region_unavailable(response_id, home, "its circuit is open")
    return home


async def _pinned(
    response_id: str, home: ResponseHome, call: Awaitable[tuple[Any, Any]]
) -> tuple[Any, Any]:
    """A call on ``home``: unreachable -> 503 naming the region; throttled stays a 429."""
    try:
        return await call
    except AllThrottled:
        raise
    except (UpstreamUnavailable, DeadlineExceeded) as exc:
        raise _region_unavailable(response_id, home, type(exc).__name__) from exc


async def _guarded(
    request: Request,
    services: ResponsesServices,
    body: Callable[[RequestInfo], Awaitable[Response]],
    *,
    azure: bool,
    dated: bool = False,
) -> Response:
    info = request_info(request, services)
    version = request.query_params.get("api-version")
    if dated and version not in DATED_API_VERSIONS:
        return JSONResponse(
            {"error": {"code": "404", "message": "Resource not found"}}, 404, headers=info.headers()
        )
    try:
        if azure and not dated and version is not None and version not in V1_API_VERSIONS:
            raise ApiError(
                400,
                "BadRequest",
                "api-version query parameter is not allowed when using /v1 path",
            )
        require_caller(request, services)
        response = await body(info)
    except _Relayed as relayed:
        response = JSONResponse({"error": relayed.body}, relayed.status, headers=info.headers())
    except Exception as exc:  # noqa: BLE001 - the one error mapping answers every failure
        response = error_response(exc, info.correlation_id, headers=info.headers())
    return azure_response(response) if azure else response


def _response_id(request: Request) -> str:
    value = request.path_params.get("response_id")
    if not isinstance(value, str) or not value or len(value) > 256 or not value.isprintable():
        # No response has such an id: the answer an unknown id gets (no id is probed apart).
        raise _not_found(repr(value)[:80] if isinstance(value, str) else "", "response_id")
    return value


async def _sse(
    first: dict[str, Any],
    events: AsyncIterator[dict[str, Any]],
    response: Any,
    idle_s: float,
    on_end: Callable[[dict[str, Any] | None, BaseException | None], None] | None = None,
) -> AsyncIterator[bytes]:
    """The upstream Responses events, as they arrive, each as ``event:``/``data:``; an upstream
    that breaks off or falls silent ends the stream with an ``error`` event. ``on_end`` hears
    the response object of the final event (``response.completed``, ``.incomplete``,
    ``.failed``: the one with usage), or the failure, once the stream is over."""

    def frame(event: dict[str, Any]) -> bytes:
        kind = str(event.get("type") or "message")
        data = json.dumps(event, ensure_ascii=False, separators=(",", ":"))
        return f"event: {kind}\ndata: {data}\n\n".encode()

    final: dict[str, Any] | None = None
    failure: BaseException | None = None
    try:
        yield frame(first)
        while True:
            try:
                async with asyncio.timeout(idle_s):
                    event = await events.__anext__()
            except StopAsyncIteration:
                return
            if isinstance(event, dict):
                if isinstance(event.get("response"), dict) and event["response"].get("usage"):
                    final = event["response"]
                yield frame(event)
    except Exception as exc:  # noqa: BLE001 - the caller hears of it in the stream
        failure = exc
        _log.warning("responses stream interrupted upstream (%s)", type(exc).__name__)
        yield frame(
            {
                "type": "error",
                "code": "stream_interrupted",
                "message": "The upstream stream broke off or fell silent; the response may be "
                "incomplete.",
                "param": None,
            }
        )
    finally:
        try:
            await response.aclose()
        except Exception:  # noqa: BLE001 - closing a broken connection may fail again
            pass
        if on_end is not None:
            on_end(final, failure)


# ------------------------------------------------------------------------------ handlers


async def responses_create(
    request: Request, services: ResponsesServices, *, azure: bool = False, dated: bool = False
) -> Response:
    """POST responses: JSON, the event stream (``stream: true``), or ``background: true``."""

    async def run(info: RequestInfo) -> Response:
        settings = services.settings()
        gateway = services.gateway()
        raw = await read_body(request, settings.max_body_bytes)
        try:
            body = json.loads(raw)
        except (ValueError, RecursionError):
            raise ApiError(400, "invalid_json", "The request body is not valid JSON.") from None
        if not isinstance(body, dict):
            raise ApiError(400, "invalid_json", "The request body must be a JSON object.")
        model = body.get("model")
        if not isinstance(model, str) or not model:
            raise ApiError(400, "invalid_request", "'model' is required.", param="model")
        if azure or dated:
            model = body["model"] = resolve_alias(services, model)
        previous = body.get("previous_response_id")
        if previous is not None and not isinstance(previous, str):
            raise ApiError(
                400,
                "invalid_request",
                "'previous_response_id' must be a string.",
                param="previous_response_id",
            )
        stream = body.get("stream") is True
        stored = body.get("store") is not False
        ctx = CallContext(correlation_id=info.correlation_id, caller=info.caller)
        cost = _estimate(body, settings.default_max_tokens)
        home = await _home(services, info, previous, "previous_response_id") if previous else None
        target: str | tuple[str, str] = model if home is None else (home.region, home.deployment)
        send, hedge = _create_sender(gateway, body)
        if home is not None:
            send = _relaying(send)
        call = gateway.call_deployment(
            "responses",
            target,
            path=_PATH,
            body=body,
            send=send,
            cost=cost,
            ctx=ctx,
            usage=None if stream else _usage,
            report_at_end=stream,
            hedge=hedge,
        )
        started = gateway.clock.monotonic()
        value, result = await (_pinned(str(previous), home, call) if home else call)
        names = (result.region, result.deployment)
        headers = _routing_headers(info, services, names, len(result.attempts))
        affinity = services.response_affinity()
        if not stream:
            response_id = value.get("id")
            if stored and isinstance(response_id, str):
                await affinity.remember(response_id, _home_of(names, info.caller))
            return JSONResponse(value, headers=headers)
        first = value.first
        created = first.get("response") if isinstance(first, dict) else None
        response_id = created.get("id") if isinstance(created, dict) else None
        if stored and isinstance(response_id, str):
            await affinity.remember(response_id, _home_of(names, info.caller))

        def ended(final: dict[str, Any] | None, error: BaseException | None) -> None:
            gateway.call_ended(
                "responses",
                ctx,
                result,
                started=started,
                usage=_usage(final),
                response=final,
                error=error,
            )

        events = _sse(
            first, value.events, value.response, settings.idle_timeout_s or 60.0, on_end=ended
        )
        headers.update({"cache-control": "no-cache", "x-accel-buffering": "no"})
        return StreamingResponse(events, media_type="text/event-stream", headers=headers)

    return await _guarded(request, services, run, azure=azure or dated, dated=dated)


def _home_of(names: tuple[str, str], caller: str) -> ResponseHome:
    from shared.responses import ResponseHome  # lazy: cold start

    return ResponseHome(names[0], names[1], caller)


async def _on_home(
    request: Request,
    services: ResponsesServices,
    *,
    azure: bool,
    dated: bool,
    method: str,
    suffix: str,
    operation: str,
    after: Callable[[str], Awaitable[None]] | None = None,
) -> Response:
    async def run(info: RequestInfo) -> Response:
        response_id = _response_id(request)
        home = await _home(services, info, response_id)
        gateway = services.gateway()
        settings = services.settings()
        query = {k: v for k, v in request.query_params.items() if k != "api-version"}
        resume = method == "GET" and not suffix and query.get("stream") == "true"
        call = gateway.call_deployment(
            operation,
            (home.region, home.deployment),
            path=f"{_PATH}/{response_id}{suffix}",
            body={},
            send=_stream_get_sender(gateway, query, settings.first_byte_timeout_s)
            if resume
            else _method_sender(gateway, method, query),
            cost=_ID_OPS_COST,
            ctx=CallContext(correlation_id=info.correlation_id, caller=info.caller),
        )
        value, result = await _pinned(response_id, home, call)
        if resume:  # the stored response's events, replayed by its region
            first, events, upstream = value
            headers = _routing_headers(
                info, services, (result.region, result.deployment), len(result.attempts)
            )
            headers.update({"cache-control": "no-cache", "x-accel-buffering": "no"})
            relay = _sse(first, events, upstream, settings.idle_timeout_s or 60.0)
            return StreamingResponse(relay, media_type="text/event-stream", headers=headers)
        if after is not None:
            try:
                await after(response_id)
            except Exception as exc:  # noqa: BLE001 - done upstream; the row outlives it
                _log.warning("response affinity not updated (%s)", type(exc).__name__)
        names = (result.region, result.deployment)
        return JSONResponse(
            value, headers=_routing_headers(info, services, names, len(result.attempts))
        )

    return await _guarded(request, services, run, azure=azure or dated, dated=dated)


async def response_retrieve(
    request: Request, services: ResponsesServices, *, azure: bool = False, dated: bool = False
) -> Response:
    """GET responses/{id}: from the region that stores it."""
    return await _on_home(
        request,
        services,
        azure=azure,
        dated=dated,
        method="GET",
        suffix="",
        operation="responses_get",
    )


async def response_delete(
    request: Request, services: ResponsesServices, *, azure: bool = False, dated: bool = False
) -> Response:
    """DELETE responses/{id}: in the region that stores it; the gateway forgets it too."""
    return await _on_home(
        request,
        services,
        azure=azure,
        dated=dated,
        method="DELETE",
        suffix="",
        operation="responses_delete",
        after=services.response_affinity().forget,
    )


async def response_by_id(
    request: Request, services: ResponsesServices, *, azure: bool = False, dated: bool = False
) -> Response:
    """GET or DELETE responses/{id} (one route, two methods)."""
    if request.method == "DELETE":
        return await response_delete(request, services, azure=azure, dated=dated)
    return await response_retrieve(request, services, azure=azure, dated=dated)


async def response_cancel(
    request: Request, services: ResponsesServices, *, azure: bool = False, dated: bool = False
) -> Response:
    """POST responses/{id}/cancel: a background response, in the region that runs it."""
    return await _on_home(
        request,
        services,
        azure=azure,
        dated=dated,
        method="POST",
        suffix="/cancel",
        operation="responses_cancel",
    )


async def response_input_items(
    request: Request, services: ResponsesServices, *, azure: bool = False, dated: bool = False
) -> Response:
    """GET responses/{id}/input_items: from the region that stores it."""
    return await _on_home(
        request,
        services,
        azure=azure,
        dated=dated,
        method="GET",
        suffix="/input_items",
        operation="responses_input_items",
    )
