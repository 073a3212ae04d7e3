"""The Service Bus queue trigger's logic: run one job through the access layer.

| outcome                               | what happens                                               |
|---------------------------------------|------------------------------------------------------------|
| success                               | result stored, reply (correlation id = job id)             |
| AllThrottled                          | parked until retry_at (Storage queue), message completes   |
| ContentFiltered (or finish_reason     | terminal failure recorded and replied, no retry            |
|  content_filter), BadRequest,         |                                                            |
|  UnknownModel, invalid, deadline past |                                                            |
| job id known with another payload     | job untouched; conflict recorded apart, failure replied to |
|  (JobIdConflict)                      |  this message's reply_to, alert logged, message completes  |
| other UpstreamUnavailable,            | raised: Service Bus redelivers, then dead-letters after    |
|  ConfigurationError, anything else    |  MaxDeliveryCount (the DLQ handler takes over)             |
| UpstreamRequestFailed (a 5xx at every | parked (BACKLOG_SUSPECT_PARK_S, doubling) and tried again: |
|  region while they serve others)      |  an outage's first moments look the same; then failed      |
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ..aoai import (
    AllThrottled,
    CallContext,
    ChatRequest,
    DeadlineExceeded,
    RequestRejected,
    UpstreamRequestFailed,
)
from ..responses import ResponsesRequest, create_response
from ._bus import Outgoing, QueueUnusable
from ._conclude import JobServices, conclude, deliver_reply
from ._contract import (
    InvalidJobMessage,
    JobIdConflict,
    JobMessage,
    JobReply,
    parse_job_message,
    reply_to_refusal,
)
from ._delivery import PROP_REDRIVES, Delivery, Outcome
from ._outcome_retry import keep_outcome
from ._records import JobRecord, Terminal
from ._store import FinishResult

if TYPE_CHECKING:
    from ..settings import BacklogSettings

__all__ = [
    "conflict_reply_message_id",
    "may_start",
    "process_delivery",
    "refuse_reply_to",
    "reject_conflict",
    "run_job",
]

logger = logging.getLogger(__name__)


async def process_delivery(svc: JobServices, delivery: Delivery) -> str:
    """Handle one delivery from the backlog queue; returns an Outcome, or raises to get redelivered."""
    owner = delivery.owner
    body = await svc.incoming_body(delivery.body)
    try:
        job = parse_job_message(body, fallback_job_id=delivery.message_id)
        refuse_reply_to(svc.settings, job)
    except InvalidJobMessage as exc:
        return await reject_invalid(svc, exc, owner=owner, source="backlog")
    log = {"correlation_id": job.job_id}
    try:
        record, _ = await svc.store.ensure(job)
    except JobIdConflict as exc:
        return await reject_conflict(svc, job, exc, owner=owner, source="backlog")
    if record.terminal:
        sent = await deliver_reply(svc, record, owner=owner)
        logger.info(
            "job %s already %s (delivery %d); reply re-sent: %s",
            job.job_id,
            record.status,
            delivery.delivery_count,
            sent,
            extra=log,
        )
        return Outcome.DUPLICATE
    now = svc.clock()
    if job.deadline_passed(now):
        ended = await conclude(
            svc,
            job.job_id,
            _deadline_failure(job),
            owner=owner,
            job=job,
            current=record,
            allow=may_start(owner),
        )
        return Outcome.FAILED if ended.won else _not_ours(job.job_id, ended.record, delivery)
    if svc.batch_lane is not None and svc.batch_lane.wants(job, now):  # the batch lane's hook
        await svc.batch_lane.accept(svc, job, record)
        return Outcome.BATCHED
    step = await svc.store.advance(
        job.job_id,
        "running",
        current=record,
        allow=may_start(owner),
        runner=owner,
        deliveries=("+", 1),
        lane="standard",
    )
    if not step.moved:  # finished meanwhile, or another copy is the live one: no model call
        if step.record is not None and step.record.terminal:
            await deliver_reply(svc, step.record, owner=owner)
            return Outcome.DUPLICATE
        return _not_ours(job.job_id, step.record, delivery)
    assert step.record is not None  # moved: the row as written
    record = step.record
    ours = _runs(owner)
    await svc.checkpoint("before_call", job.job_id)
    try:
        outcome = await run_job(svc, job)
    except AllThrottled as exc:
        return await _park(svc, job, record, delivery, exc.retry_at, "throttled everywhere")
    except UpstreamRequestFailed as exc:
        # Every region answered this request with a 5xx while they served others: likely the
        # request's own fault, but the first moments of a real outage look the same, and a job
        # must not fail for good on an outage. Parked (not redelivered at once, which would
        # count against the circuits as other requests) and tried again later, a few times.
        if record.parks >= svc.settings.suspect_parks:
            failure = Terminal.failure(exc.code, exc.message, exc.details())
            await _keep(svc, job, failure, record, owner)
            return Outcome.FAILED
        retry_at = svc.clock() + svc.settings.suspect_park_s * 2**record.parks
        return await _park(svc, job, record, delivery, retry_at, "failed by every region")
    except RequestRejected as exc:
        await _keep(svc, job, Terminal.failure(exc.code, exc.message, exc.details()), record, owner)
        return Outcome.FAILED
    except DeadlineExceeded:
        if job.deadline_passed(svc.clock()):
            await conclude(
                svc, job.job_id, _deadline_failure(job), owner=owner, job=job, allow=ours
            )
            return Outcome.FAILED
        logger.warning(
            "job %s: call deadline exceeded (delivery %d); redelivery",
            job.job_id,
            delivery.delivery_count,
            extra=log,
        )
        raise
    except Exception as exc:
        logger.warning(
            "job %s: %s (delivery %d); left to Service Bus redelivery",
            job.job_id,
            getattr(exc, "code", exc.__class__.__name__),
            delivery.delivery_count,
            extra=log,
        )
        raise
    await svc.checkpoint("after_call", job.job_id)
    result = await _keep(svc, job, outcome, record, owner)
    return Outcome.SUCCEEDED if result.record.status == "succeeded" else Outcome.FAILED


async def _keep(
    svc: JobServices, job: JobMessage, outcome: Terminal, record: JobRecord, owner: str
) -> FinishResult:
    """Record an outcome the model has answered (``conclude``), trying again while storage or
    Service Bus is out of reach (``keep_outcome``): a redelivery would call the model again."""

    async def step(attempt: int) -> FinishResult:
        return await conclude(
            svc,
            job.job_id,
            outcome,
            owner=owner,
            job=job,
            current=record if attempt == 0 else None,  # after a failure: the row as it is now
            allow=_runs(owner),
        )

    return await keep_outcome(
        step,
        job_id=job.job_id,
        budget_s=svc.settings.record_retry_s,
        clock=svc.clock,
        sleep=svc.sleep,
    )


def may_start(owner: str) -> Callable[[JobRecord], bool]:
    """A delivery may run (or end) the job when the row is ``queued``, or ``running`` by this same
    delivery (a redelivery after a crash). Any other copy is a duplicate and never calls the model."""

    def check(record: JobRecord) -> bool:
        return record.status == "queued" or (
            record.status == "running" and (record.runner or owner) == owner
        )

    return check


def _runs(owner: str) -> Callable[[JobRecord], bool]:
    def check(record: JobRecord) -> bool:
        return record.status == "running" and (record.runner or owner) == owner

    return check


def _not_ours(job_id: str, record: JobRecord | None, delivery: Delivery) -> str:
    logger.info(
        "job %s: delivery %s is not the job's live copy (row %s, runner %s); dropped",
        job_id,
        delivery.owner,
        record.status if record else None,
        record.runner if record else None,
        extra={"correlation_id": job_id},
    )
    return Outcome.DUPLICATE if record is not None and record.terminal else Outcome.STALE


async def run_job(svc: JobServices, job: JobMessage) -> Terminal:
    """Call the access layer; a filtered completion is a terminal failure, anything else a result."""
    timeout = svc.settings.job_timeout_s
    if job.deadline is not None:
        timeout = max(0.1, min(timeout, job.deadline.timestamp() - svc.clock()))
    ctx = CallContext(
        correlation_id=job.job_id, caller=job.caller, timeout_s=timeout, lane="backlog"
    )
    if isinstance(job.request, ChatRequest):
        result = await svc.gateway.chat(job.request, ctx)  # the contract refuses stream=true
    elif isinstance(job.request, ResponsesRequest):  # the contract refuses stream, background
        result = await create_response(
            svc.gateway,
            svc.responses,
            job.request,
            ctx,
            default_max_tokens=svc.gateway.estimate_cost(None),
        )
    else:
        result = await svc.gateway.embeddings(job.request, ctx)
    meta: dict[str, Any] = {
        "finish_reason": result.finish_reason,
        "region": result.region,
        "deployment": result.deployment,
        "usage": _usage(result.usage),
    }
    if result.finish_reason == "content_filter":
        if isinstance(job.request, ResponsesRequest):
            return Terminal.failure(
                "content_filter",
                "The response was filtered by the content filter (incomplete_details.reason "
                "content_filter).",
                {"param": "output", "response_id": (result.response or {}).get("id")},
                **meta,
            )
        choices = (result.response or {}).get("choices") or [{}]
        return Terminal.failure(
            "content_filter",
            "The completion was filtered by the content filter (finish_reason content_filter).",
            {
                "param": "completion",
                "content_filter_results": choices[0].get("content_filter_results"),
            },
            **meta,
        )
    return Terminal.success(result.response or {}, **meta)


async def reject_invalid(
    svc: JobServices, exc: InvalidJobMessage, *, owner: str, source: str
) -> str:
    """An invalid message is a permanent failure: recorded and replied when it names a job, else alerted."""
    alert = {
        "kind": "invalid_job_message",
        "source": source,
        "job_id": exc.job_id,
        "reason": exc.message,
    }
    if exc.job_id is None:
        logger.error(
            "invalid job message without a job id: %s", exc.message, extra={"alert": alert}
        )
        return Outcome.IGNORED
    logger.warning(
        "job %s: invalid message: %s",
        exc.job_id,
        exc.message,
        extra={"correlation_id": exc.job_id, "alert": alert},
    )
    reply_to = exc.reply_to  # what could be salvaged: replied to only where its caller may
    if reply_to and not svc.settings.reply_allowed(exc.caller, reply_to):
        reply_to = None
    await conclude(
        svc,
        exc.job_id,
        Terminal.failure(exc.code, exc.message),
        owner=owner,
        reply_to=reply_to,
    )
    return Outcome.FAILED


async def _park(
    svc: JobServices,
    job: JobMessage,
    record: JobRecord,
    delivery: Delivery,
    retry_at: float,
    why: str,
) -> str:
    """Park the running ``job`` until ``retry_at`` (the timer re-drives it) and record it."""
    parks = record.parks + 1
    park_id = uuid.uuid4().hex[:16]
    visibility = await svc.parking.park(
        job,
        retry_at=retry_at,
        parks=parks,
        redrives=delivery.int_property(PROP_REDRIVES),
        cost=_cost(svc, job),
        park_id=park_id,
    )
    await svc.checkpoint("after_park", job.job_id)
    # Parked first, recorded second: a copy whose record is lost is not named by the row,
    # and the timer drops it (the redelivered message runs the job instead).
    parked = await svc.store.advance(
        job.job_id,
        "parked",
        current=record,
        allow=_runs(delivery.owner),
        parks=("+", 1),
        retry_at=retry_at,
        park_id=park_id,
        runner="",
    )
    if not parked.moved:
        return _not_ours(job.job_id, parked.record, delivery)
    logger.info(
        "job %s %s: parked for %ds (park %d)",
        job.job_id,
        why,
        visibility,
        parks,
        extra={"correlation_id": job.job_id},
    )
    return Outcome.PARKED


def refuse_reply_to(settings: BacklogSettings, job: JobMessage) -> None:
    """Raise (a permanent failure, replied nowhere) when ``job.reply_to`` is not a queue its
    caller may have replies sent to (``BACKLOG_REPLY_QUEUES``): a direct sender cannot point
    replies with content it controls at another team's queue or at the backlog itself."""
    if job.reply_to and not settings.reply_allowed(job.caller, job.reply_to):
        raise InvalidJobMessage(
            reply_to_refusal(job.reply_to, job.caller),
            job_id=job.job_id,
            caller=job.caller,
            code="reply_to_not_allowed",
        )


def conflict_reply_message_id(job_id: str, digest: str) -> str:
    """Distinct from the job's own reply (``<job>:reply``); the same for every redelivery."""
    return f"{job_id}:conflict:{digest.removeprefix('sha256:')[:32]}"


async def reject_conflict(
    svc: JobServices, job: JobMessage, exc: JobIdConflict, *, owner: str, source: str
) -> str:
    """A message reusing a known job id for other work. The job belongs to the first payload and is
    not touched; this message ends as a terminal failure recorded beside the job (its own row),
    replied to *its* ``reply_to`` with a message id of its own, and alerted. The message completes:
    retrying cannot help."""
    error = exc.error()
    alert = {
        "kind": "job_id_conflict",
        "source": source,
        "job_id": job.job_id,
        "reply_to": job.reply_to,
        "payload_hash": exc.submitted_hash,
        "existing_payload_hash": exc.existing_hash,
    }
    logger.error(
        "job %s: a message reuses the job id with a different payload; the job is left as it is, the message fails",
        job.job_id,
        extra={"correlation_id": job.job_id, "alert": alert},
    )
    await svc.store.record_conflict(job, error, owner=owner)
    if job.reply_to:
        reply = JobReply(job_id=job.job_id, status="failed", error=error)
        try:
            await svc.bus.send(
                job.reply_to,
                Outgoing(
                    body=reply.model_dump_json(exclude_none=True).encode("utf-8"),
                    message_id=conflict_reply_message_id(job.job_id, exc.submitted_hash),
                    correlation_id=job.job_id,
                    subject="failed",
                    application_properties={
                        "job_id": job.job_id,
                        "status": "failed",
                        "error_code": exc.code,
                    },
                ),
            )
        except QueueUnusable as exc:
            logger.error(
                "job %s: conflict reply undeliverable (%s); it is dropped",
                job.job_id,
                exc,
                extra={
                    "correlation_id": job.job_id,
                    "alert": {
                        "kind": "reply_undeliverable",
                        "job_id": job.job_id,
                        "reply_to": job.reply_to,
                    },
                },
            )
    return Outcome.CONFLICT


def _deadline_failure(job: JobMessage) -> Terminal:
    return Terminal.failure(
        "deadline_exceeded",
        "The job's deadline passed before it could run.",
        {"deadline": job.deadline.isoformat() if job.deadline else None},
    )


def _cost(svc: JobServices, job: JobMessage) -> int:
    """The tokens the access layer charges the job (the re-drive plan spends them)."""
    if isinstance(job.request, ResponsesRequest):
        return job.request.cost(svc.gateway.estimate_cost(None))
    return svc.gateway.estimate_cost(job.request)


def _usage(usage: Any) -> dict[str, int] | None:
    if usage is None:
        return None
    return {
        "prompt_tokens": usage.prompt_tokens,
        "completion_tokens": usage.completion_tokens,
        "total_tokens": usage.total_tokens,
    }
