"""The operations routes (``/api/ops/...``, the host's master key): each takes a Starlette
``Request`` and the composition root (``OpsRoot``: ``shared.runtime``), and answers JSON;
failures in OpenAI's error shape. The routes build no client: the shared region-state store, the job
table and the Service Bus client are the composition root's, the same objects the gateway and
the backlog use (so identity-based storage reaches them as it reaches the gateway's).

* ``GET  ops/state``          this instance's view plus every instance's shared region-state records
* ``POST ops/clear``          ``{"region": "eastus2"}`` or ``{"deployment": "eastus2/gpt-4o-prod"}``
* ``GET  ops/parked``         parked jobs (from the job store)
* ``POST ops/parked/redrive`` ``{"job_ids": [...]}`` or ``{"all": true, "limit": N}``: send parked
  jobs to the backlog now, before their retry time (per job: re-driven or why not)
* ``GET  ops/deadletters``    peek the backlog's dead-letter queue (``?limit=``)
* ``POST ops/deadletters/redrive`` ``{"sequence_numbers": [...]}``: send those back to the backlog
* ``GET  ops/callers``        caller limits in force and each caller's use against them
* ``GET  ops/jobs/{id}``      any job's status, whole (the batch's internals included)
* ``POST ops/jobs/{id}/cancel`` cancel any waiting job
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, Protocol

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from shared.ops import (
    UnknownTarget,
    clear,
    parked_jobs,
    peek_dead_letters,
    redrive_dead_letters,
    shared_state,
)
from shared.settings import SettingsError

from ._context import request_info
from ._errors import ApiError, error_response

if TYPE_CHECKING:
    from azure.data.tables.aio import TableClient
    from azure.servicebus.aio import ServiceBusClient

    from shared.aoai import Gateway, VerdictStore
    from shared.callerlimits import CallerLimiter
    from shared.jobs import Backlog
    from shared.settings import BacklogSettings, GatewaySettings

__all__ = [
    "OpsRoot",
    "ops_callers",
    "ops_clear",
    "ops_dead_letters",
    "ops_job_cancel",
    "ops_job_status",
    "ops_parked",
    "ops_parked_redrive",
    "ops_redrive",
    "ops_state",
]

logger = logging.getLogger(__name__)


class OpsRoot(Protocol):
    """What the operations routes take from the composition root (``shared.runtime`` is one)."""

    def settings(self) -> GatewaySettings: ...

    def backlog_settings(self) -> BacklogSettings: ...

    def gateway(self) -> Gateway: ...

    def verdict_store(self) -> VerdictStore | None: ...

    def backlog(self) -> Backlog: ...

    def jobs_table(self) -> TableClient: ...

    def service_bus(self) -> ServiceBusClient: ...

    def caller_limiter(self) -> CallerLimiter | None: ...


async def _answer(
    request: Request, body: Callable[[], Awaitable[Any]], status: int = 200
) -> Response:
    info = request_info(request)
    try:
        payload = await body()
    except Exception as exc:  # noqa: BLE001 - every failure becomes OpenAI's error shape
        return error_response(exc, info.correlation_id, headers=info.headers())
    return JSONResponse(
        payload, status_code=status, headers={**info.headers(), "cache-control": "no-store"}
    )


async def _json(request: Request) -> dict[str, Any]:
    try:
        value = json.loads(await request.body() or b"{}")
    except json.JSONDecodeError as exc:
        raise ApiError(400, "invalid_json", f"The body is not JSON: {exc.msg}.") from None
    if not isinstance(value, dict):
        raise ApiError(400, "invalid_json", "The body must be a JSON object.")
    return value


def _regions(services: OpsRoot) -> dict[str, list[str]]:
    return {
        r.name: sorted(d.deployment for d in r.models.values()) for r in services.settings().regions
    }


async def ops_state(request: Request, services: OpsRoot) -> Response:
    """This instance's circuits, cooldowns and budgets, and every instance's shared records."""

    async def body() -> dict[str, Any]:
        store = services.verdict_store()
        records = await shared_state(store)
        return {
            "instance": services.gateway().health_report(),
            "shared": records,
            "shared_store": "table" if store is not None else None,
        }

    return await _answer(request, body)


async def ops_clear(request: Request, services: OpsRoot) -> Response:
    """Clear a region's or a deployment's state on every instance (through the shared table)."""

    async def body() -> dict[str, Any]:
        wanted = await _json(request)
        store = services.verdict_store()
        if store is None:
            raise ApiError(
                409,
                "no_shared_health",
                "No shared region-state table is configured (AzureWebJobsStorage or "
                "AzureWebJobsStorage__accountName / __tableServiceUri).",
            )
        try:
            keys = await clear(
                store,
                _regions(services),
                region=wanted.get("region"),
                deployment=wanted.get("deployment"),
            )
        except UnknownTarget as exc:
            raise ApiError(
                404,
                "unknown_target",
                str(exc),
                param="region" if wanted.get("region") else "deployment",
            ) from None
        logger.warning("ops: cleared %s", ", ".join(keys))
        cache_s = services.settings().health_cache_s
        return {"cleared": keys, "effective_within_s": cache_s}

    return await _answer(request, body)


async def ops_parked(request: Request, services: OpsRoot) -> Response:
    async def body() -> dict[str, Any]:

        return {"object": "list", "data": await _parked(services)}

    return await _answer(request, body)


_MAX_PARKED_REDRIVE = 500


async def _parked(services: OpsRoot, *, limit: int = 200) -> list[dict[str, Any]]:
    """Parked jobs from the job store's table (the backlog's client); none while the table
    does not exist yet (no job was ever submitted). 409 ``no_job_store`` without storage."""
    from azure.core.exceptions import ResourceNotFoundError  # lazy: cold start

    try:
        table = services.jobs_table()
    except SettingsError as exc:
        raise ApiError(409, "no_job_store", f"No job store is configured: {exc}") from None
    try:
        return await parked_jobs(table, limit=limit)
    except ResourceNotFoundError:
        return []


async def ops_parked_redrive(request: Request, services: OpsRoot) -> Response:
    """Re-drive parked jobs now: ``{"job_ids": [...]}``, or ``{"all": true, "limit": N}`` (the
    ``N`` parked jobs due soonest, at most 500, 200 by default)."""

    async def body() -> dict[str, Any]:

        wanted = await _json(request)
        job_ids = wanted.get("job_ids")
        if wanted.get("all") is True and job_ids is None:
            limit = wanted.get("limit", 200)
            if (
                isinstance(limit, bool)
                or not isinstance(limit, int)
                or not 1 <= limit <= _MAX_PARKED_REDRIVE
            ):
                raise ApiError(
                    400,
                    "invalid_parameter",
                    f"'limit' must be an integer from 1 to {_MAX_PARKED_REDRIVE}.",
                    param="limit",
                )
            job_ids = [j["job_id"] for j in await _parked(services, limit=limit)]
        elif (
            not isinstance(job_ids, list)
            or not job_ids
            or len(job_ids) > _MAX_PARKED_REDRIVE
            or not all(isinstance(j, str) and j for j in job_ids)
            or "all" in wanted
        ):
            raise ApiError(
                400,
                "invalid_parameter",
                "Give 'job_ids' (a non-empty list of up to "
                f"{_MAX_PARKED_REDRIVE} job ids) or 'all': true.",
                param="job_ids",
            )
        results = await services.backlog().redrive_parked(list(dict.fromkeys(job_ids)))
        return {
            "object": "list",
            "redriven": sum(1 for r in results if r["redriven"]),
            "data": results,
        }

    return await _answer(request, body)


async def _with_bus(
    services: OpsRoot, work: Callable[[ServiceBusClient, str], Awaitable[Any]]
) -> Any:
    """``work`` on the composition root's Service Bus client and the backlog's queue."""
    return await work(services.service_bus(), services.backlog_settings().queue)


async def ops_dead_letters(request: Request, services: OpsRoot) -> Response:
    async def body() -> dict[str, Any]:
        try:
            limit = max(1, min(250, int(request.query_params.get("limit", "50"))))
        except ValueError:
            raise ApiError(
                400, "invalid_parameter", "'limit' must be a number.", param="limit"
            ) from None
        rows = await _with_bus(services, lambda c, q: peek_dead_letters(c, q, limit=limit))
        return {"object": "list", "data": rows}

    return await _answer(request, body)


async def ops_redrive(request: Request, services: OpsRoot) -> Response:
    async def body() -> dict[str, Any]:
        wanted = (await _json(request)).get("sequence_numbers")
        if (
            not isinstance(wanted, list)
            or not wanted
            or not all(isinstance(n, int) for n in wanted)
        ):
            raise ApiError(
                400,
                "invalid_parameter",
                "'sequence_numbers' must be a non-empty list of integers.",
                param="sequence_numbers",
            )
        result: dict[str, Any] = await _with_bus(
            services, lambda c, q: redrive_dead_letters(c, q, wanted)
        )
        logger.warning("ops: re-drove dead letters %s", result["redriven"])
        return result

    return await _answer(request, body)


async def ops_callers(request: Request, services: OpsRoot) -> Response:
    """Caller limits in force and each caller's use against them (this month, this window)."""

    async def body() -> dict[str, Any]:
        limiter = services.caller_limiter()
        if limiter is None:
            return {"limits": None, "data": []}
        rows = await limiter.report()
        return {
            "limits": {
                "default": limiter.limits.default.model_dump(),
                "window_s": limiter.limits.window_s,
            },
            "data": rows,
        }

    return await _answer(request, body)


def _job_id(request: Request, suffix: str = "") -> str:
    """The path's job id (the host proxies the raw request: taken from the path if no router set it)."""
    return str(
        request.path_params.get("job_id")
        or request.url.path.rstrip("/").removesuffix(suffix).rsplit("/", 1)[-1]
    )


def _no_job(job_id: str) -> ApiError:
    return ApiError(404, "job_not_found", f"No job with id '{job_id[:100]}'.", param="id")


async def ops_job_status(request: Request, services: OpsRoot) -> Response:
    """Any job's status, as its submitter sees it plus the batch's internals."""
    job_id = _job_id(request)

    async def body() -> Any:
        status = await services.backlog().status(job_id, owner=None)
        if status is None:
            raise _no_job(job_id)
        return status

    return await _answer(request, body)


async def ops_job_cancel(request: Request, services: OpsRoot) -> Response:
    """Cancel any waiting job (409 while it runs or once it finished, as for its submitter)."""
    from shared.jobs import (
        JobNotCancellable,  # lazy: cold start (model routes never load the backlog)
    )

    job_id = _job_id(request, "/cancel")

    async def body() -> Any:
        try:
            status = await services.backlog().cancel(job_id, by="operator", owner=None)
        except JobNotCancellable as exc:
            raise ApiError(409, exc.code, str(exc), param="id") from None
        if status is None:
            raise _no_job(job_id)
        logger.info("job %s cancelled by an operator", job_id, extra={"correlation_id": job_id})
        return status

    return await _answer(request, body)
