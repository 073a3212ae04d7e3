"""The job endpoints: ``POST /api/v1/jobs`` (validate, record, enqueue; 202 + status URL) and
``GET /api/v1/jobs/{id}`` (status, then result or failure). Parsing and errors reuse ``shared.api``.

POST body: the job contract's fields (``request`` required; ``job_id``, ``kind``, ``reply_to``,
``priority``, ``deadline`` optional). ``caller`` and ``submitted_at`` are set by the gateway.
Re-posting a job id is idempotent when the job payload is the same (``payload_hash``: kind, model,
request, reply_to, priority, deadline): 202 with the existing job, enqueued again only while
unfinished. The same job id with a different payload is 409 ``job_id_conflict``; the job is untouched.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Protocol

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from ..aoai import UnknownModel
from ..api import ApiError, error_response, parse_body, read_body, request_info
from ._contract import JobIdConflict, JobMessage

if TYPE_CHECKING:
    from ..settings import GatewaySettings
    from ._service import Backlog

__all__ = ["JobEndpointServices", "job_status", "submit_job"]

logger = logging.getLogger(__name__)


class JobEndpointServices(Protocol):
    """What the job endpoints need from the composition root (``shared.runtime``)."""

    def settings(self) -> GatewaySettings: ...

    def backlog(self) -> Backlog: ...


async def submit_job(request: Request, services: JobEndpointServices) -> Response:
    info = request_info(request)
    try:
        settings = services.settings()
        raw = await read_body(request, settings.max_body_bytes)
        parsed = parse_body(raw, JobMessage)
        if parsed.model not in settings.aliases:
            raise UnknownModel(
                parsed.model, settings.aliases
            )  # 404 listing the known aliases, as on every route
        job = parsed.model_copy(update={"caller": info.caller, "submitted_at": datetime.now(UTC)})
        backlog = services.backlog()
        try:
            submission = await backlog.submit(job)
        except JobIdConflict as exc:
            raise ApiError(409, exc.code, exc.message, param="job_id") from None
    except Exception as exc:  # noqa: BLE001 - every failure becomes OpenAI's error shape
        return error_response(exc, info.correlation_id, headers=info.headers())
    url = f"{backlog.settings.status_route.rstrip('/')}/{job.job_id}"
    record = submission.record
    logger.info(
        "job %s submitted by %s (model %s, kind %s, new %s)",
        job.job_id,
        info.caller,
        job.model,
        job.kind,
        submission.created,
        extra={"correlation_id": job.job_id},
    )
    body: dict[str, Any] = {
        "id": job.job_id,
        "object": "job",
        "status": record.status,
        "status_url": url,
    }
    return JSONResponse(body, status_code=202, headers={**info.headers(), "location": url})


async def job_status(request: Request, services: JobEndpointServices) -> Response:
    info = request_info(request)
    # The host proxies the raw request to the worker: take the id from the path if no router set it.
    job_id = str(
        request.path_params.get("job_id") or request.url.path.rstrip("/").rsplit("/", 1)[-1]
    )
    try:
        status = await services.backlog().status(job_id) if job_id else None
        if status is None:
            raise ApiError(404, "job_not_found", f"No job with id '{job_id[:100]}'.", param="id")
    except Exception as exc:  # noqa: BLE001
        return error_response(exc, info.correlation_id, headers=info.headers())
    return JSONResponse(status, status_code=200, headers=info.headers())
