"""The job endpoints: ``POST /api/v1/jobs`` (validate, record, enqueue; 202 + status URL) and
``GET /api/v1/jobs/{id}`` (status, then result or failure) and ``POST /api/v1/jobs/{id}/cancel``
(a waiting job ends ``cancelled``: 200 with its status; 409 ``job_not_cancellable`` while it runs,
``job_already_finished`` once it succeeded or failed; OpenAI's ``POST /batches/{id}/cancel`` style).
A job is its submitter's: another caller's id answers 404 ``job_not_found`` exactly as an unknown
one (operators use ``/api/ops/jobs/{id}``). Job ids live in their caller's namespace: the id a
caller chooses (or the one generated for it) is stored as ``<scope>~<id>`` (``scoped_job_id``,
the ``id`` the 202 returns), so two callers may use the same id and none can take or probe
another's; the status and cancel routes take either form. Parsing and errors are the API's
own.

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

from shared.aoai import UnknownModel
from shared.telemetry import invocation_context

from ._context import request_info
from ._errors import ApiError, error_response
from ._parse import parse_body, read_body

if TYPE_CHECKING:
    from shared.jobs import Backlog
    from shared.settings import GatewaySettings

__all__ = ["JobEndpointServices", "cancel_job", "job_status", "submit_job"]

logger = logging.getLogger(__name__)


class JobEndpointServices(Protocol):
    """What the job endpoints need from the composition root (``shared.runtime``)."""

    def settings(self) -> GatewaySettings: ...

    def backlog(self) -> Backlog: ...


async def submit_job(request: Request, services: JobEndpointServices) -> Response:
    from shared.jobs import (  # lazy: cold start (model routes never load the backlog)
        JobIdConflict,
        JobMessage,
        JobTooLarge,
        reply_to_refusal,
    )

    info = request_info(request, services)
    try:
        settings = services.settings()
        raw = await read_body(request, settings.max_body_bytes)
        parsed = parse_body(raw, JobMessage)
        if parsed.model not in settings.aliases:
            raise UnknownModel(
                parsed.model, settings.aliases
            )  # 404 listing the known aliases, as on every route
        job = parsed.model_copy(
            update={
                "caller": info.caller,
                "submitted_at": datetime.now(UTC),
                "job_id": _own_id(parsed.job_id, info.caller),
            }
        )
        backlog = services.backlog()
        if job.reply_to and not backlog.settings.reply_allowed(job.caller, job.reply_to):
            raise ApiError(
                400,
                "reply_to_not_allowed",
                reply_to_refusal(job.reply_to, job.caller),
                param="reply_to",
            )
        try:
            with invocation_context(request):  # the job's trace starts under the invocation
                submission = await backlog.submit(job)
        except JobIdConflict as exc:
            raise ApiError(409, exc.code, exc.message, param="job_id") from None
        except JobTooLarge as exc:
            raise ApiError(413, exc.code, str(exc), param="request") from None
    except Exception as exc:  # noqa: BLE001 - every failure becomes OpenAI's error shape
        return _error(exc, info, services)
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
    info = request_info(request, services)
    # The host proxies the raw request to the worker: take the id from the path if no router set it.
    job_id = str(
        request.path_params.get("job_id") or request.url.path.rstrip("/").rsplit("/", 1)[-1]
    )
    try:
        status = None
        for candidate in _ids(job_id, info.caller):
            status = await services.backlog().status(candidate, owner=info.caller)
            if status is not None:
                break
        if status is None:
            raise ApiError(404, "job_not_found", f"No job with id '{job_id[:100]}'.", param="id")
    except Exception as exc:  # noqa: BLE001
        return _error(exc, info, services)
    return JSONResponse(status, status_code=200, headers=info.headers())


async def cancel_job(request: Request, services: JobEndpointServices) -> Response:
    from shared.jobs import (
        JobNotCancellable,  # lazy: cold start (model routes never load the backlog)
    )

    info = request_info(request, services)
    job_id = str(
        request.path_params.get("job_id")
        or request.url.path.rstrip("/").removesuffix("/cancel").rsplit("/", 1)[-1]
    )
    try:
        try:
            status = None
            for candidate in _ids(job_id, info.caller):
                status = await services.backlog().cancel(
                    candidate, by=info.caller, owner=info.caller
                )
                if status is not None:
                    break
        except JobNotCancellable as exc:
            raise ApiError(409, exc.code, str(exc), param="id") from None
        if status is None:
            raise ApiError(404, "job_not_found", f"No job with id '{job_id[:100]}'.", param="id")
    except Exception as exc:  # noqa: BLE001
        return _error(exc, info, services)
    logger.info(
        "job %s cancel by %s: %s",
        job_id,
        info.caller,
        status["status"],
        extra={"correlation_id": job_id},
    )
    return JSONResponse(status, status_code=200, headers=info.headers())


def _own_id(job_id: str, caller: str) -> str:
    """``job_id`` (chosen by the caller, or generated) in the caller's namespace; an id already
    in it (the ``id`` a 202 returned, posted again to retry) as it is."""
    from shared.jobs import (  # lazy: cold start (model routes never load the backlog)
        SCOPE_SEPARATOR,
        scoped_job_id,
        valid_job_id,
    )

    if SCOPE_SEPARATOR not in job_id:
        return scoped_job_id(caller, job_id)
    if job_id.startswith(scoped_job_id(caller, "")) and valid_job_id(job_id):
        return job_id
    raise ApiError(
        400,
        "invalid_request",
        f"job_id: '{SCOPE_SEPARATOR}' may only follow your own scope, as in the id a 202 "
        "returned; choose an id without it.",
        param="job_id",
    )


def _ids(job_id: str, caller: str) -> list[str]:
    """Where the caller's ``job_id`` may be: the id it chose, in its own namespace, first (the
    202's ``id`` is that full form already), then as given (ids the gateway generated)."""
    from shared.jobs import (  # lazy: cold start (model routes never load the backlog)
        SCOPE_SEPARATOR,
        scoped_job_id,
    )

    if not job_id:
        return []
    if SCOPE_SEPARATOR in job_id:
        return [job_id]
    return [scoped_job_id(caller, job_id), job_id]


def _error(exc: Exception, info: Any, services: JobEndpointServices) -> Response:
    """The one error mapping of the job endpoints: storage or Service Bus out of reach is a 503
    with a stable code and Retry-After (a submission then left nothing behind); the rest as
    every route maps it."""
    from shared.jobs import unreachable  # lazy: cold start (model routes never load the backlog)

    code = unreachable(exc)
    if code is None:
        return error_response(exc, info.correlation_id, headers=info.headers())
    try:
        retry_s = services.backlog().settings.storage_unavailable_retry_s
    except Exception:  # noqa: BLE001 - settings are valid here, or the first error says so
        retry_s = 10
    what = "job store (Azure Storage)" if code == "job_store_unavailable" else "backlog queue"
    logger.warning(
        "jobs endpoint: the %s is unreachable: %s",
        what,
        exc.__class__.__name__,
        extra={"correlation_id": info.correlation_id},
    )
    api = ApiError(
        503,
        code,
        f"The {what} is unreachable right now; nothing was recorded. Retry in {retry_s} s.",
        type_="service_unavailable",
    )
    return error_response(
        api, info.correlation_id, headers={**info.headers(), "retry-after": str(retry_s)}
    )
