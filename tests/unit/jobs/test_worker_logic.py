"""The backlog worker's decisions (``process_delivery``) on the in-memory job store, no Azurite:
each outcome of a model call, redeliveries and duplicate copies, conflicting and invalid
messages, replies and their crash window; the dead-letter and parking poison handlers. The store is ``InMemoryJobStore`` (it passes the table
store's contract suite, tests/functional/jobs/test_store.py); the model, Service Bus and the
parking queue are fakes that record what they are asked."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pytest

from shared.aoai import AllThrottled, BadRequest, CallResult, UpstreamRequestFailed, Usage
from shared.jobs import (
    Delivery,
    InMemoryJobStore,
    JobMessage,
    JobServices,
    Outcome,
    Outgoing,
    QueueNotFound,
    parse_job_message,
)
from shared.jobs._worker import conflict_reply_message_id, process_delivery
from shared.settings import BacklogSettings

NOW = 1_800_000_000.0
CHAT = {"model": "gpt-4o", "messages": [{"role": "user", "content": "hello"}], "max_tokens": 16}


def answer(**changes: Any) -> CallResult:
    fields: dict[str, Any] = {
        "alias": "gpt-4o",
        "region": "eastus2",
        "deployment": "gpt-4o-prod",
        "attempts": (),
        "latency_ms": 12.0,
        "response": {"id": "chatcmpl-1", "choices": [{"message": {"content": "hi"}}]},
        "usage": Usage(5, 2, 7),
        "finish_reason": "stop",
    }
    fields.update(changes)
    return CallResult(**fields)


class Model:
    """The access layer: answers each call with the next of ``answers`` (raised if an error)."""

    def __init__(self, *answers: Any) -> None:
        self.answers = list(answers)
        self.calls: list[Any] = []

    async def chat(self, request: Any, ctx: Any) -> CallResult:
        self.calls.append((request, ctx))
        found = self.answers.pop(0)
        if isinstance(found, Exception):
            raise found
        return found

    embeddings = chat

    def estimate_cost(self, request: Any) -> int:
        return 21


class Bus:
    def __init__(self, *, missing: tuple[str, ...] = (), fail_once: bool = False) -> None:
        self.sent: list[tuple[str, Outgoing]] = []
        self.missing = missing
        self.fail_once = fail_once

    async def send(self, queue: str, message: Outgoing) -> None:
        if queue in self.missing:
            raise QueueNotFound(queue)
        if self.fail_once:
            self.fail_once = False
            raise ConnectionError("link lost")  # the instance dies before the reply went out
        self.sent.append((queue, message))


@dataclass
class Parking:
    parked: list[dict[str, Any]] = field(default_factory=list)
    forgotten: list[str] = field(default_factory=list)

    async def park(self, job: JobMessage, **where: Any) -> int:
        self.parked.append({"job_id": job.job_id, "job": job, **where})
        return int(where["retry_at"] - NOW)

    async def job_of(self, parked: Any) -> JobMessage:
        return parse_job_message(json.dumps(parked.job).encode(), fallback_job_id=parked.job_id)

    async def forget_blob(self, parked: Any) -> None:
        self.forgotten.append(parked.park_id)


def services(model: Model, *, bus: Bus | None = None, **settings: Any) -> JobServices:
    async def no_sleep(_: float) -> None:
        return None

    return JobServices(
        settings=BacklogSettings(servicebus_connection="x", storage_connection="y", **settings),
        gateway=model,  # type: ignore[arg-type]
        store=InMemoryJobStore(clock=lambda: NOW),
        bus=bus or Bus(),  # type: ignore[arg-type]
        parking=Parking(),  # type: ignore[arg-type]
        clock=lambda: NOW,
        sleep=no_sleep,
    )


def delivery(job: JobMessage | bytes, *, seq: int = 1, count: int = 1, mid: str | None = None):
    body = job if isinstance(job, bytes) else job.to_body()
    message_id = mid if mid is not None or isinstance(job, bytes) else job.job_id
    return Delivery(body=body, message_id=message_id, sequence_number=seq, delivery_count=count)


def make(**fields: Any) -> JobMessage:
    fields.setdefault("request", CHAT)
    fields.setdefault("reply_to", "replies")
    return JobMessage(**fields)


def replies(svc: JobServices) -> list[dict[str, Any]]:
    return [json.loads(m.body) for _, m in svc.bus.sent]  # type: ignore[attr-defined]


async def test_a_job_runs_once_is_stored_and_replied_once():
    model = Model(answer())
    svc = services(model)
    job = make(caller="key:a")
    assert await process_delivery(svc, delivery(job)) == Outcome.SUCCEEDED
    record = await svc.store.get(job.job_id)
    assert record.status == "succeeded" and record.reply_state == "sent"
    assert record.deliveries == 1 and record.region == "eastus2" and record.lane == "standard"
    assert record.usage == {"prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7}
    ((queue, message),) = svc.bus.sent  # type: ignore[attr-defined]
    assert queue == "replies" and message.message_id == f"{job.job_id}:reply"
    assert json.loads(message.body)["result"]["id"] == "chatcmpl-1"
    ((_, ctx),) = model.calls
    assert ctx.lane == "backlog" and ctx.caller == "key:a" and ctx.correlation_id == job.job_id
    # the same message again: no second call, no second reply
    assert await process_delivery(svc, delivery(job, count=2)) == Outcome.DUPLICATE
    assert len(model.calls) == 1 and len(svc.bus.sent) == 1  # type: ignore[attr-defined]
    assert await svc.store.terminal_writes(job.job_id) == 1


async def test_a_reply_lost_with_the_instance_is_sent_by_the_redelivery_without_a_second_call():
    model = Model(answer())
    svc = services(model, bus=Bus(fail_once=True))
    job = make()
    with pytest.raises(ConnectionError):
        await process_delivery(svc, delivery(job))
    assert (await svc.store.get(job.job_id)).reply_state == "pending"  # stored, not replied
    assert await process_delivery(svc, delivery(job, count=2)) == Outcome.DUPLICATE
    assert len(model.calls) == 1
    assert [r["status"] for r in replies(svc)] == ["succeeded"]
    assert (await svc.store.get(job.job_id)).reply_state == "sent"


async def test_a_second_copy_of_a_running_job_never_calls_the_model():
    svc = services(Model())
    job = make()
    record, _ = await svc.store.ensure(job)
    await svc.store.advance(job.job_id, "running", current=record, runner="sb:other:7")
    assert await process_delivery(svc, delivery(job, seq=8)) == Outcome.STALE
    assert (await svc.store.get(job.job_id)).runner == "sb:other:7"


async def test_throttled_everywhere_parks_the_job_until_the_retry_time():
    svc = services(Model(AllThrottled("gpt-4o", retry_at=NOW + 40, now=NOW)))
    job = make()
    assert await process_delivery(svc, delivery(job)) == Outcome.PARKED
    (parked,) = svc.parking.parked  # type: ignore[attr-defined]
    assert parked["retry_at"] == NOW + 40 and parked["parks"] == 1 and parked["cost"] == 21
    record = await svc.store.get(job.job_id)
    assert record.status == "parked" and record.parks == 1 and record.runner == ""
    assert record.park_id == parked["park_id"] and record.retry_at == NOW + 40
    assert svc.bus.sent == []  # type: ignore[attr-defined]  # no reply: not finished


async def test_a_request_every_region_fails_is_parked_a_few_times_then_failed():
    failed = UpstreamRequestFailed("boom", upstream_status=500)
    svc = services(Model(failed), suspect_park_s=60, suspect_parks=3)
    job = make()
    assert await process_delivery(svc, delivery(job)) == Outcome.PARKED
    assert svc.parking.parked[0]["retry_at"] == NOW + 60  # type: ignore[attr-defined]
    again = services(Model(failed), suspect_parks=0)
    assert await process_delivery(again, delivery(job)) == Outcome.FAILED
    record = await again.store.get(job.job_id)
    assert record.status == "failed" and record.error["code"] == "upstream_request_failed"
    assert replies(again)[0]["error"]["code"] == "upstream_request_failed"


async def test_a_rejected_request_and_a_filtered_completion_are_terminal_failures():
    svc = services(Model(BadRequest("no such parameter")))
    job = make()
    assert await process_delivery(svc, delivery(job)) == Outcome.FAILED
    assert (await svc.store.get(job.job_id)).error["code"] == "bad_request"
    filtered = answer(
        finish_reason="content_filter",
        response={"choices": [{"content_filter_results": {"hate": {"filtered": True}}}]},
    )
    svc = services(Model(filtered))
    assert await process_delivery(svc, delivery(job)) == Outcome.FAILED
    error = (await svc.store.get(job.job_id)).error
    assert error["code"] == "content_filter" and error["details"]["param"] == "completion"


async def test_a_passed_deadline_fails_the_job_without_a_call():
    model = Model()
    svc = services(model)
    job = make(deadline=datetime.fromtimestamp(NOW - 1, UTC))
    assert await process_delivery(svc, delivery(job)) == Outcome.FAILED
    assert model.calls == []
    assert (await svc.store.get(job.job_id)).error["code"] == "deadline_exceeded"


async def test_a_conflicting_payload_leaves_the_job_and_fails_the_message_apart():
    model = Model(answer())
    svc = services(model)
    first = make(job_id="job-x")
    await svc.store.ensure(first)
    before = await svc.store.get("job-x")
    other = make(job_id="job-x", request={**CHAT, "max_tokens": 99})
    assert await process_delivery(svc, delivery(other, seq=2)) == Outcome.CONFLICT
    assert await svc.store.get("job-x") == before and model.calls == []
    assert len(svc.store.conflicts("job-x")) == 1  # type: ignore[attr-defined]
    ((queue, message),) = svc.bus.sent  # type: ignore[attr-defined]
    assert queue == "replies"
    assert message.message_id == conflict_reply_message_id("job-x", other.payload_hash())
    # its redelivery records nothing new and replies with the same message id (deduplicated)
    assert await process_delivery(svc, delivery(other, seq=2, count=2)) == Outcome.CONFLICT
    assert len(svc.store.conflicts("job-x")) == 1  # type: ignore[attr-defined]
    assert svc.bus.sent[1][1].message_id == message.message_id  # type: ignore[attr-defined]


async def test_invalid_messages_fail_when_they_name_a_job_and_are_alerted_otherwise():
    svc = services(Model())
    named = json.dumps({"job_id": "job-bad", "request": {"model": "gpt-4o"}}).encode()
    assert await process_delivery(svc, delivery(named, mid="job-bad")) == Outcome.FAILED
    record = await svc.store.get("job-bad")
    assert record.status == "failed" and record.error["code"] == "invalid_message"
    assert await process_delivery(svc, delivery(b"not json")) == Outcome.IGNORED


async def test_a_reply_queue_the_caller_may_not_use_is_refused_and_replied_nowhere():
    model = Model()
    svc = services(model)
    job = make(reply_to="someone-elses-queue")
    assert await process_delivery(svc, delivery(job)) == Outcome.FAILED
    record = await svc.store.get(job.job_id)
    assert record.error["code"] == "reply_to_not_allowed" and record.reply_state == "none"
    assert model.calls == [] and svc.bus.sent == []  # type: ignore[attr-defined]


async def test_a_missing_reply_queue_marks_the_reply_undeliverable():
    svc = services(Model(answer()), bus=Bus(missing=("replies",)))
    job = make()
    assert await process_delivery(svc, delivery(job)) == Outcome.SUCCEEDED
    assert (await svc.store.get(job.job_id)).reply_state == "undeliverable"


# ---------------------------------------------------------------- the dead-letter handler


def dead(job: JobMessage, reason: str, *, redrives: int = 0, seq: int = 1) -> Delivery:
    return Delivery(
        body=job.to_body(),
        message_id=job.job_id,
        sequence_number=seq,
        application_properties={"backlog_redrives": redrives} if redrives else {},
        dead_letter_reason=reason,
        dead_letter_description="why",
    )


async def test_a_job_dead_lettered_for_a_transient_reason_is_sent_back_later():
    from shared.jobs._poison import process_dead_letter

    svc = services(Model(), max_dlq_redrives=2, dlq_redrive_delay_s=30)
    job = make()
    record, _ = await svc.store.ensure(job)
    await svc.store.advance(job.job_id, "running", current=record, runner="sb:%s:1" % job.job_id)
    outcome = await process_dead_letter(svc, dead(job, "MaxDeliveryCountExceeded", redrives=1))
    assert outcome == Outcome.REDRIVEN
    ((queue, message),) = svc.bus.sent  # type: ignore[attr-defined]
    assert queue == svc.settings.queue and message.message_id == f"{job.job_id}.d2"
    assert message.scheduled_at == NOW + 60  # doubling: 30 s * 2**1
    assert message.application_properties["backlog_redrives"] == 2
    stored = await svc.store.get(job.job_id)
    assert stored.status == "queued" and stored.redrives == 1 and stored.runner == ""


async def test_a_job_dead_lettered_too_often_or_for_a_bad_message_fails_with_the_reason():
    from shared.jobs._poison import process_dead_letter

    for reason, redrives in (("MaxDeliveryCountExceeded", 2), ("SessionIdIsMissing", 0)):
        svc = services(Model(), max_dlq_redrives=2)
        job = make()
        assert await process_dead_letter(svc, dead(job, reason, redrives=redrives)) == "failed"
        record = await svc.store.get(job.job_id)
        assert record.status == "failed" and record.error["code"] == "dead_lettered"
        assert record.error["details"]["dead_letter_reason"] == reason
        assert [r["error"]["code"] for r in replies(svc)] == ["dead_lettered"]


async def test_a_dead_lettered_copy_of_a_finished_or_parked_job_changes_nothing():
    from shared.jobs._poison import process_dead_letter

    svc = services(Model(answer()))
    job = make()
    assert await process_delivery(svc, delivery(job)) == Outcome.SUCCEEDED
    again = await process_dead_letter(svc, dead(job, "MaxDeliveryCountExceeded"))
    assert again == Outcome.DUPLICATE and len(svc.bus.sent) == 1  # type: ignore[attr-defined]
    parked = services(Model(AllThrottled("gpt-4o", retry_at=NOW + 5, now=NOW)))
    assert await process_delivery(parked, delivery(job)) == Outcome.PARKED
    assert await process_dead_letter(parked, dead(job, "MaxDeliveryCountExceeded")) == "stale"
    assert (await parked.store.get(job.job_id)).status == "parked"


# ---------------------------------------------------------------- the parking poison handler


def poisoned(svc: JobServices, *, park_id: str | None = None, reason: str = "parked_too_often"):
    """The envelope the timer moves to the parking poison queue for the job parked last."""
    parked = svc.parking.parked[-1]  # type: ignore[attr-defined]
    job: JobMessage = parked["job"]
    return json.dumps(
        {
            "v": 1,
            "job_id": job.job_id,
            "model": job.model,
            "priority": job.priority,
            "parks": parked["parks"],
            "redrives": 0,
            "retry_at": parked["retry_at"],
            "deadline": None,
            "park_id": park_id or parked["park_id"],
            "job": json.loads(job.to_body()),
            "reason": reason,
        }
    )


async def test_a_poisoned_parked_job_fails_once_and_a_stale_copy_changes_nothing():
    from shared.jobs._poison import process_parking_poison

    svc = services(Model(AllThrottled("gpt-4o", retry_at=NOW + 5, now=NOW)))
    job = make()
    assert await process_delivery(svc, delivery(job)) == Outcome.PARKED
    stale = poisoned(svc, park_id="an-older-copy")
    assert await process_parking_poison(svc, stale) == Outcome.STALE
    assert (await svc.store.get(job.job_id)).status == "parked"
    assert await process_parking_poison(svc, poisoned(svc)) == Outcome.FAILED
    record = await svc.store.get(job.job_id)
    assert record.status == "failed" and record.error["code"] == "throttled_too_long"
    assert record.error["details"]["parks"] == 1
    assert [r["error"]["code"] for r in replies(svc)] == ["throttled_too_long"]
    # the same envelope again (the poison queue redelivers): nothing new
    assert await process_parking_poison(svc, poisoned(svc)) == Outcome.DUPLICATE
    assert len(replies(svc)) == 1 and await svc.store.terminal_writes(job.job_id) == 1
    assert await process_parking_poison(svc, "not an envelope") == Outcome.IGNORED


async def test_a_parked_job_past_its_deadline_fails_with_that_code():
    from shared.jobs._poison import process_parking_poison

    svc = services(Model(AllThrottled("gpt-4o", retry_at=NOW + 5, now=NOW)))
    job = make()
    assert await process_delivery(svc, delivery(job)) == Outcome.PARKED
    text = poisoned(svc, reason="deadline_exceeded")
    assert await process_parking_poison(svc, text) == Outcome.FAILED
    assert (await svc.store.get(job.job_id)).error["code"] == "deadline_exceeded"
