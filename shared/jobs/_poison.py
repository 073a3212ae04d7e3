"""The two poison handlers: the Service Bus dead-letter queue and the parking queue's ``-poison``.

Each turns the message into a terminal failure carrying the dead-letter reason, replies, and
logs a structured alert (``extra={"alert": {...}}``). A message dead-lettered for a transient
reason (``MaxDeliveryCountExceeded``) is first sent back to the backlog, scheduled with a
doubling delay, at most ``max_dlq_redrives`` times (counted in an application property).
"""

from __future__ import annotations

import logging

from ._bus import Outgoing
from ._conclude import JobServices, conclude, deliver_reply
from ._contract import InvalidJobMessage, JobIdConflict, parse_job_message
from ._delivery import PROP_PARKS, PROP_PRIORITY, PROP_REDRIVES, Delivery, Outcome
from ._parking import decode_envelope
from ._records import Terminal
from ._redrive import is_live_copy
from ._worker import may_start, reject_conflict

__all__ = ["TRANSIENT_DEAD_LETTER_REASONS", "process_dead_letter", "process_parking_poison"]

logger = logging.getLogger(__name__)

# Reasons that say "it kept failing", not "it is wrong": worth another try later.
TRANSIENT_DEAD_LETTER_REASONS = frozenset(
    {"MaxDeliveryCountExceeded", "MaxTransferHopCountExceeded"}
)


async def process_dead_letter(svc: JobServices, delivery: Delivery) -> str:
    props = delivery.application_properties
    reason = delivery.dead_letter_reason or str(props.get("DeadLetterReason") or "unknown")
    description = delivery.dead_letter_description or str(
        props.get("DeadLetterErrorDescription") or ""
    )
    # The same owner as the worker's deliveries of this message (message id and sequence number
    # survive dead-lettering): a dead-lettered message has no live delivery left, so its reply
    # lease and its ``running`` row are this handler's to continue, and nobody else's.
    owner = delivery.owner
    try:
        parsed = parse_job_message(
            await svc.incoming_body(delivery.body), fallback_job_id=delivery.message_id
        )
    except InvalidJobMessage as exc:
        job, job_id, reply_to = None, exc.job_id, exc.reply_to
    else:
        job, job_id, reply_to = parsed, parsed.job_id, parsed.reply_to
    alert = {
        "kind": "dead_lettered",
        "source": svc.settings.dead_letter_queue,
        "job_id": job_id,
        "reason": reason,
        "description": description,
    }
    if job_id is None:
        logger.error(
            "dead-lettered message names no job (reason %s)", reason, extra={"alert": alert}
        )
        return Outcome.IGNORED
    log = {"correlation_id": job_id}
    record = await svc.store.get(job_id)
    if (
        job is not None
        and record is not None
        and record.payload_hash
        and record.payload_hash != job.payload_hash()
    ):
        # Another payload under a known job id: never end (or re-drive) the job on its account.
        conflict = JobIdConflict(
            job_id, existing_hash=record.payload_hash, submitted_hash=job.payload_hash()
        )
        return await reject_conflict(
            svc, job, conflict, owner=owner, source=svc.settings.dead_letter_queue
        )
    if record is not None and record.terminal:
        await deliver_reply(svc, record, owner=owner)
        logger.info("dead-lettered job %s was already %s", job_id, record.status, extra=log)
        return Outcome.DUPLICATE
    if record is not None and not may_start(owner)(record):
        # The job is parked, or another delivery runs it: this copy is not the live one.
        logger.info(
            "dead-lettered copy of job %s dropped: the job is %s elsewhere",
            job_id,
            record.status,
            extra=log,
        )
        return Outcome.STALE

    redrives = delivery.int_property(PROP_REDRIVES)
    now = svc.clock()
    if (
        job is not None
        and reason in TRANSIENT_DEAD_LETTER_REASONS
        and redrives < svc.settings.max_dlq_redrives
        and not job.deadline_passed(now)
    ):
        delay = svc.settings.dlq_redrive_delay_s * (2**redrives)
        # Recorded first (conditional, only while this copy may run the job), sent second, so a
        # worker that already took the re-driven message is never set back to queued.
        step = await svc.store.advance(
            job_id,
            "queued",
            current=record,
            allow=may_start(owner),
            runner="",
            redrives=("+", 1),
        )
        if not step.moved and step.record is not None:
            if step.record.terminal:
                await deliver_reply(svc, step.record, owner=owner)
                return Outcome.DUPLICATE
            return Outcome.STALE
        await svc.bus.send(
            svc.settings.queue,
            Outgoing(
                body=await svc.outgoing_body(job_id, job.to_body(), job.reply_to),
                message_id=f"{job_id}.d{redrives + 1}",
                correlation_id=job_id,
                subject=job.kind,
                application_properties={
                    PROP_PRIORITY: job.priority,
                    PROP_REDRIVES: redrives + 1,
                    PROP_PARKS: delivery.int_property(PROP_PARKS),
                },
                scheduled_at=now + delay if delay > 0 else None,
            ),
        )
        logger.warning(
            "job %s dead-lettered (%s); re-driven %d/%d in %.0fs",
            job_id,
            reason,
            redrives + 1,
            svc.settings.max_dlq_redrives,
            delay,
            extra=log,
        )
        return Outcome.REDRIVEN

    await conclude(
        svc,
        job_id,
        Terminal.failure(
            "dead_lettered",
            f"The job was dead-lettered: {reason}.",
            {
                "dead_letter_reason": reason,
                "dead_letter_description": description,
                "redrives": redrives,
            },
        ),
        owner=owner,
        job=job,
        reply_to=reply_to,
        allow=may_start(owner),
    )
    logger.error(
        "job %s dead-lettered: %s",
        job_id,
        reason,
        extra={**log, "alert": {**alert, "redrives": redrives}},
    )
    return Outcome.FAILED


async def process_parking_poison(
    svc: JobServices, text: str, *, dequeue_count: int | None = None
) -> str:
    """A parked job the timer gave up on (parked too often, past its deadline, unreadable)."""
    source = svc.settings.parking_poison_queue
    try:
        parked = decode_envelope(text)
    except (ValueError, TypeError):
        logger.error(
            "unreadable message on %s",
            source,
            extra={"alert": {"kind": "parking_poison_unreadable", "source": source}},
        )
        return Outcome.IGNORED
    reason = parked.reason or "parking_poisoned"
    job = None
    try:
        job = await svc.parking.job_of(parked)
    except Exception as exc:  # noqa: BLE001 - a corrupt or lost body still ends the job
        logger.warning(
            "job %s: parked body unreadable: %s",
            parked.job_id,
            exc.__class__.__name__,
            extra={"correlation_id": parked.job_id},
        )
    owner = f"parking:{parked.job_id}"
    code = "deadline_exceeded" if reason == "deadline_exceeded" else "throttled_too_long"
    alert = {
        "kind": "parking_poisoned",
        "source": source,
        "job_id": parked.job_id,
        "reason": reason,
        "parks": parked.parks,
    }
    record = await svc.store.get(parked.job_id)
    if record is not None and record.terminal:
        await deliver_reply(svc, record, owner=owner)
        await svc.parking.forget_blob(parked)
        return Outcome.DUPLICATE
    live = is_live_copy(parked)
    if record is not None and not live(record):
        # The job moved on (re-driven from another copy, running, parked again): not ours to end.
        await svc.parking.forget_blob(parked)
        logger.info(
            "parking poison: copy %s of job %s is not the live one (%s); dropped",
            parked.park_id,
            parked.job_id,
            record.status,
            extra={"correlation_id": parked.job_id},
        )
        return Outcome.STALE
    ended = await conclude(
        svc,
        parked.job_id,
        Terminal.failure(
            code,
            f"The job could not run: {reason} (parked {parked.parks} times).",
            {"dead_letter_reason": reason, "parks": parked.parks, "retry_at": parked.retry_at},
        ),
        owner=owner,
        job=job,
        current=record,
        allow=live,
    )
    await svc.parking.forget_blob(parked)
    if not ended.won:
        return Outcome.DUPLICATE if ended.record.terminal else Outcome.STALE
    logger.error(
        "job %s moved to %s: %s",
        parked.job_id,
        source,
        reason,
        extra={"correlation_id": parked.job_id, "alert": alert},
    )
    return Outcome.FAILED
