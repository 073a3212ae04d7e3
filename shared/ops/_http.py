"""The operations routes (``/api/ops/...``, the host's master key): each takes a Starlette
``Request`` and the composition root, and answers JSON; failures in OpenAI's error shape.

* ``GET  ops/state``          this instance's view plus every instance's shared health records
* ``POST ops/clear``          ``{"region": "eastus2"}`` or ``{"deployment": "eastus2/gpt-4o-prod"}``
* ``GET  ops/parked``         parked jobs (from the job store)
* ``POST ops/parked/redrive`` ``{"job_ids": [...]}`` or ``{"all": true, "limit": N}``: send parked
  jobs to the backlog now, before their retry time (per job: re-driven or why not)
* ``GET  ops/deadletters``    peek the backlog's dead-letter queue (``?limit=``)
* ``POST ops/deadletters/redrive`` ``{"sequence_numbers": [...]}``: send those back to the backlog
* ``GET  ops/callers``        caller limits in force and each caller's use against them
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from shared.api import ApiError, error_response, request_info

__all__ = [
    "ops_callers",
    "ops_clear",
    "ops_dead_letters",
    "ops_parked",
    "ops_parked_redrive",
    "ops_redrive",
    "ops_state",
]

logger = logging.getLogger(__name__)


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


def _health_store(services: Any) -> Any:
    from shared.aoai import TableHealthStore

    settings = services.settings()
    if not settings.storage_connection:
        return None
    return TableHealthStore(settings.storage_connection, settings.health_table)


def _regions(services: Any) -> dict[str, list[str]]:
    return {
        r.name: sorted(d.deployment for d in r.models.values()) for r in services.settings().regions
    }


async def ops_state(request: Request, services: Any) -> Response:
    """This instance's circuits, cooldowns and budgets, and every instance's shared records."""

    async def body() -> dict[str, Any]:
        from ._health import shared_state

        store = _health_store(services)
        try:
            records = await shared_state(store)
        finally:
            if store is not None:
                await store.aclose()
        return {
            "instance": services.gateway().health_report(),
            "shared": records,
            "shared_store": "table" if store is not None else None,
        }

    return await _answer(request, body)


async def ops_clear(request: Request, services: Any) -> Response:
    """Clear a region's or a deployment's state on every instance (through the shared table)."""

    async def body() -> dict[str, Any]:
        from ._health import UnknownTarget, clear

        wanted = await _json(request)
        store = _health_store(services)
        if store is None:
            raise ApiError(
                409,
                "no_shared_health",
                "No shared health table is configured (AzureWebJobsStorage).",
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
        finally:
            await store.aclose()
        logger.warning("ops: cleared %s", ", ".join(keys))
        cache_s = services.settings().health_cache_s
        return {"cleared": keys, "effective_within_s": cache_s}

    return await _answer(request, body)


async def ops_parked(request: Request, services: Any) -> Response:
    async def body() -> dict[str, Any]:
        from ._parked import parked_jobs

        async with _jobs_table(services) as table:
            jobs = await parked_jobs(table)
        return {"object": "list", "data": jobs}

    return await _answer(request, body)


_MAX_PARKED_REDRIVE = 500


@asynccontextmanager
async def _jobs_table(services: Any) -> AsyncIterator[Any]:
    """The job store's table for one request, reached as the job store reaches it; its client
    and credentials closed after. 409 ``no_job_store`` without storage."""
    from shared.storage import table_target

    settings = services.backlog_settings()
    target = table_target(settings, settings.jobs_table)
    if target is None:
        raise ApiError(409, "no_job_store", "No job store is configured.")
    table = target.client()
    try:
        yield table
    finally:
        await table.close()
        await target.aclose()


async def ops_parked_redrive(request: Request, services: Any) -> Response:
    """Re-drive parked jobs now: ``{"job_ids": [...]}``, or ``{"all": true, "limit": N}`` (the
    ``N`` parked jobs due soonest, at most 500, 200 by default)."""

    async def body() -> dict[str, Any]:
        from ._parked import parked_jobs

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
            async with _jobs_table(services) as table:
                job_ids = [j["job_id"] for j in await parked_jobs(table, limit=limit)]
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


async def _with_bus(services: Any, work: Callable[[Any, str], Awaitable[Any]]) -> Any:
    from shared.credentials import CredentialPool, close_all
    from shared.jobs import connect_service_bus

    settings = services.backlog_settings()
    credentials = CredentialPool()  # the app's one credential policy; closed with the client
    client = connect_service_bus(settings, credentials)
    try:
        return await work(client, settings.queue)
    finally:
        await close_all([client.close, credentials.aclose])


async def ops_dead_letters(request: Request, services: Any) -> Response:
    async def body() -> dict[str, Any]:
        from ._deadletters import peek_dead_letters

        try:
            limit = max(1, min(250, int(request.query_params.get("limit", "50"))))
        except ValueError:
            raise ApiError(
                400, "invalid_parameter", "'limit' must be a number.", param="limit"
            ) from None
        rows = await _with_bus(services, lambda c, q: peek_dead_letters(c, q, limit=limit))
        return {"object": "list", "data": rows}

    return await _answer(request, body)


async def ops_redrive(request: Request, services: Any) -> Response:
    async def body() -> dict[str, Any]:
        from ._deadletters import redrive_dead_letters

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


async def ops_callers(request: Request, services: Any) -> Response:
    """Caller limits in force and each caller's use against them (this month, this window)."""

    async def body() -> dict[str, Any]:
        quotas = services.caller_quotas()
        if quotas is None:
            return {"limits": None, "data": []}
        rows = await quotas.report()
        return {
            "limits": {
                "default": quotas.limits.default.model_dump(),
                "window_s": quotas.limits.window_s,
            },
            "data": rows,
        }

    return await _answer(request, body)
