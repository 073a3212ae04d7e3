"""The backlog's Done-when list, end to end: test broker, Azurite, simulator, queue side."""

from __future__ import annotations

import asyncio
import json
import time

import pytest

from shared.jobs import Delivery, JobIdConflict, JobMessage, Outcome, Outgoing

from .conftest import REGIONS

pytestmark = pytest.mark.timeout(60)


def sim_requests(sim) -> int:
    return sum(sim.region(r).stats()["requests"] for r in REGIONS)


async def test_success_stores_the_result_and_replies_once(
    e2e_sim, sb_broker, gateway_factory, harness_factory
):
    h = await harness_factory(sb_broker, gateway_factory(e2e_sim)).start(timer=False)
    chat = h.job("say hi")
    embed = h.job(request={"model": "text-embedding-3-small", "input": ["one", "two"]})
    await h.submit(chat, embed)
    done = await h.wait_terminal([chat.job_id, embed.job_id])
    assert {r.status for r in done.values()} == {"succeeded"}
    assert {r.reply_state for r in done.values()} == {"sent"}
    status = await h.backlog.status(chat.job_id, owner=None)
    assert status["status"] == "succeeded" and status["result"]["choices"][0]["message"]["content"]
    vectors = (await h.backlog.status(embed.job_id, owner=None))["result"]["data"]
    assert len(vectors) == 2
    replies = {r["job_id"]: r for r in h.replies()}
    assert set(replies) == {chat.job_id, embed.job_id}
    reply = replies[chat.job_id]
    assert (
        reply["_correlation_id"] == chat.job_id and reply["_message_id"] == f"{chat.job_id}:reply"
    )
    assert reply["status"] == "succeeded" and reply["result"]["object"] == "chat.completion"


async def test_throttled_job_is_parked_then_redriven_and_succeeds(
    e2e_sim, sb_broker, gateway_factory, harness_factory
):
    h = await harness_factory(sb_broker, gateway_factory(e2e_sim)).start()
    for region, deployment in (("eastus2", "gpt-4o-prod"), ("swedencentral", "gpt4o-sweden")):
        e2e_sim.region(region).fault("throttle", count=1, retry_after_s=2, deployment=deployment)
    job = h.job("throttled")
    started = time.time()
    await h.submit(job)
    record = (await h.wait_terminal([job.job_id], timeout=30))[job.job_id]
    assert record.status == "succeeded"
    assert record.parks == 1
    assert time.time() - started >= 1.5  # it waited in the parking queue, not in the function
    assert (
        h.calls["backlog_worker"] == 2
    )  # first delivery parked it (and completed), the re-drive ran it
    assert h.calls["backlog_timer"] >= 1
    assert [r["job_id"] for r in h.replies()] == [job.job_id]


async def test_content_filter_is_a_terminal_failure_without_retry(
    e2e_sim, sb_broker, gateway_factory, harness_factory
):
    h = await harness_factory(sb_broker, gateway_factory(e2e_sim)).start(timer=False)
    prompt = h.job("please SIM_FILTER_PROMPT now")
    completion = h.job("please SIM_FILTER_COMPLETION now")
    await h.submit(prompt, completion)
    done = await h.wait_terminal([prompt.job_id, completion.job_id])
    for record in done.values():
        assert record.status == "failed" and record.error["code"] == "content_filter"
    assert done[completion.job_id].finish_reason == "content_filter"
    await h.settled()  # both messages completed: no redelivery can follow
    assert h.calls["backlog_worker"] == 2  # one delivery each: no retry
    assert (
        sb_broker.queue_count(h.env["BACKLOG_QUEUE"]) == 0
        and sb_broker.dlq_count(h.env["BACKLOG_QUEUE"]) == 0
    )
    assert sim_requests(e2e_sim) == 2
    replies = h.replies()
    assert len(replies) == 2 and {r["error"]["code"] for r in replies} == {"content_filter"}


async def test_crash_mid_job_is_redelivered_and_yields_exactly_one_result(
    e2e_sim, sb_broker, gateway_factory, harness_factory
):
    stage_of: dict[str, str] = {}
    crashed: set[str] = set()

    async def crash_once(at: str, job_id: str) -> None:
        if stage_of.get(job_id) == at and job_id not in crashed:
            crashed.add(job_id)
            raise RuntimeError(f"simulated worker crash at {at}")

    h = await harness_factory(sb_broker, gateway_factory(e2e_sim), checkpoint=crash_once).start(
        timer=False
    )
    before_store = h.job(
        "crash after the model call"
    )  # result computed, not stored: recomputed once
    after_store = h.job(
        "crash after the result is stored"
    )  # stored, reply not sent: reply sent by the redelivery
    stage_of.update({before_store.job_id: "after_call", after_store.job_id: "after_finish"})
    await h.submit(before_store, after_store)
    done = await h.wait_terminal([before_store.job_id, after_store.job_id])
    assert crashed == set(stage_of)
    assert {r.status for r in done.values()} == {"succeeded"}
    assert h.calls["backlog_worker"] == 4
    assert h.side is not None and sum(getattr(p, "abandoned", 0) for p in h.side.pumps) == 2
    assert sim_requests(e2e_sim) == 3  # the after_finish job's stored result was reused
    assert sorted(r["job_id"] for r in h.replies()) == sorted(stage_of)


async def test_dead_lettered_job_is_redriven_then_failed_by_the_poison_handler(
    e2e_sim, sb_broker_factory, gateway_factory, harness_factory
):
    broker = sb_broker_factory(max_delivery_count=2)
    for region in REGIONS:
        e2e_sim.region(region).fault("error", count=1000, status=500)
    h = await harness_factory(broker, gateway_factory(e2e_sim), BACKLOG_MAX_DLQ_REDRIVES="1").start(
        timer=False
    )
    job = h.job("always failing")
    await h.submit(job)
    record = (await h.wait_terminal([job.job_id], timeout=40))[job.job_id]
    assert record.status == "failed"
    assert record.error["code"] == "dead_lettered"
    assert record.error["details"]["dead_letter_reason"] == "MaxDeliveryCountExceeded"
    assert record.error["details"]["redrives"] == 1 and record.redrives == 1
    assert h.calls["backlog_worker"] == 4  # 2 deliveries, re-driven once, 2 more deliveries
    assert h.calls["backlog_dead_letters"] == 2
    replies = h.replies()
    assert len(replies) == 1 and replies[0]["error"]["code"] == "dead_lettered"


async def test_duplicates_and_invalid_messages(
    e2e_sim, sb_broker, gateway_factory, harness_factory
):
    """Duplicate deliveries give exactly one reply; an invalid message fails once, without retry."""
    h = await harness_factory(sb_broker, gateway_factory(e2e_sim)).start(timer=False)
    queue = h.env["BACKLOG_QUEUE"]
    jobs = [h.job(f"dup {i}") for i in range(5)]
    for job in jobs:
        for _ in range(3):  # the same job three times (the test broker has no duplicate detection)
            await h.backlog.services.bus.send(
                queue, Outgoing(body=job.to_body(), message_id=job.job_id)
            )
    body = (
        b'{"schema_version": 1, "job_id": "job-bad-1", "reply_to": "%s", "request": {"model": "gpt-4o"}}'
        % h.reply_queue.encode()
    )
    await h.backlog.services.bus.send(queue, Outgoing(body=body, message_id="job-bad-1"))
    await h.backlog.services.bus.send(queue, Outgoing(body=b"not json", message_id="nobody"))
    done = await h.wait_terminal([j.job_id for j in jobs] + ["job-bad-1"])
    await h.settled()  # every copy delivered and completed: the count below is final
    assert h.calls["backlog_worker"] == 17
    assert sim_requests(e2e_sim) >= 5
    bad = done["job-bad-1"]
    assert (
        bad.status == "failed"
        and bad.error["code"] == "invalid_message"
        and "messages" in bad.error["message"]
    )
    replies = h.replies()
    assert sorted(r["job_id"] for r in replies) == sorted([j.job_id for j in jobs] + ["job-bad-1"])
    assert sb_broker.queue_count(queue) == 0 and sb_broker.dlq_count(queue) == 0
    assert (
        await h.store.get("nobody") is not None
    )  # no job id in the body: the message id names the job


async def test_same_job_id_with_another_payload_never_touches_the_job(
    e2e_sim, sb_broker, gateway_factory, harness_factory
):
    """Job ids are idempotency keys: a message reusing one for other work ends as its own terminal
    failure (a conflict row beside the job's, a job_id_conflict reply to *its* reply_to under a
    message id of its own, an alert) and completes; the job runs once, on its own payload."""
    h = harness_factory(sb_broker, gateway_factory(e2e_sim))
    queue = h.env["BACKLOG_QUEUE"]
    other_replies = h.reply_queue + "-other"
    sb_broker.create_queue(other_replies)
    original = h.job("the real work")
    impostor = JobMessage(
        job_id=original.job_id,
        request={**original.request.model_dump(exclude_none=True), "max_tokens": 99},
        reply_to=other_replies,
    )
    assert impostor.payload_hash() != original.payload_hash()

    # The job is known (queued, not yet enqueued) when the conflicting message arrives, twice.
    await h.store.ensure(original)
    before = await h.store.get(original.job_id)
    for _ in range(2):
        await h.backlog.services.bus.send(
            queue, Outgoing(body=impostor.to_body(), message_id=impostor.job_id)
        )
    await h.start(timer=False)
    deadline = time.monotonic() + 15
    while len(sb_broker.messages(other_replies)) < 2 and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
    untouched = await h.store.get(original.job_id)
    assert untouched == before and untouched.etag == before.etag and untouched.status == "queued"
    assert sim_requests(e2e_sim) == 0

    conflict_replies = sb_broker.messages(other_replies)
    assert (
        len(conflict_replies) == 2
    )  # one per delivery; the same message id, so duplicate detection keeps one
    assert {m.message_id for m in conflict_replies} == {
        f"{original.job_id}:conflict:{impostor.payload_hash()[7:39]}"
    }
    assert {m.correlation_id for m in conflict_replies} == {original.job_id}
    body = json.loads(conflict_replies[0].body)
    assert body["status"] == "failed" and body["error"]["code"] == "job_id_conflict"
    assert original.job_id in body["error"]["message"]
    rows = [e async for e in h.store._table.query_entities(f"PartitionKey eq '{original.job_id}'")]
    conflicts = [e for e in rows if e["RowKey"].startswith("conflict-")]
    assert (
        len(conflicts) == 1
        and conflicts[0]["status"] == "failed"
        and conflicts[0]["payload_hash"] == impostor.payload_hash()
    )
    assert json.loads(conflicts[0]["error"])["code"] == "job_id_conflict"

    # The real job then runs once on its own payload and replies once, to its own reply queue.
    await h.submit(original)
    done = await h.wait_terminal([original.job_id])
    assert done[original.job_id].status == "succeeded"
    replies = h.replies()
    assert [r["_message_id"] for r in replies] == [f"{original.job_id}:reply"] and replies[0][
        "status"
    ] == "succeeded"

    # A conflicting message that reaches the dead-letter handler neither ends nor re-drives the job.
    outcome = await h.backlog.process_dead_letter(
        Delivery(
            body=impostor.to_body(),
            message_id=impostor.job_id,
            dead_letter_reason="MaxDeliveryCountExceeded",
        )
    )
    assert outcome == Outcome.CONFLICT
    assert await h.store.get(original.job_id) == done[original.job_id]
    await h.settled()
    assert sb_broker.queue_count(queue) == 0 and sb_broker.dlq_count(queue) == 0
    assert len(h.replies()) == 1 and len(sb_broker.messages(other_replies)) == 3

    # Through the submit path (what POST /api/v1/jobs calls) the conflict is refused before any write.
    with pytest.raises(JobIdConflict) as info:
        await h.backlog.submit(impostor)
    assert (
        info.value.job_id == original.job_id and info.value.existing_hash == original.payload_hash()
    )
    assert await h.submit(original) == [original.job_id]  # the same payload: idempotent, no error


async def test_a_5xx_everywhere_is_retried_never_a_first_delivery_failure(
    e2e_sim, sb_broker_factory, gateway_factory, harness_factory
):
    """A job whose request every region answers with 500 while they serve others (the gateway's
    "the request's own fault") is parked and tried again, not failed on its first delivery: the
    first moments of a real outage look the same. A request that keeps failing ends failed
    (upstream_request_failed), once, replied once, and its retries open no circuit."""
    h = await harness_factory(
        sb_broker_factory(),
        gateway_factory(e2e_sim),
        BACKLOG_SUSPECT_PARK_S="1",
        BACKLOG_SUSPECT_PARKS="2",
    ).start(timer=True)
    warm = h.job("the regions serve others")
    await h.submit(warm)
    assert (await h.wait_terminal([warm.job_id]))[warm.job_id].status == "succeeded"
    for name in REGIONS:
        e2e_sim.region(name).fault("error", status=500, match="content_parts")
    parts = h.job(
        request={
            "model": "gpt-4o",
            "max_tokens": 8,
            "messages": [{"role": "user", "content": [{"type": "text", "text": "parts"}]}],
        }
    )
    await h.submit(parts)
    done = await h.wait_terminal([parts.job_id], timeout=60)
    record = done[parts.job_id]
    assert record.status == "failed" and record.error["code"] == "upstream_request_failed"
    assert record.parks == 2  # tried three times before it failed
    assert [r["job_id"] for r in h.replies()].count(parts.job_id) == 1
    circuits = {
        name: r["circuit"]["state"]
        for name, r in h.backlog.services.gateway.health_report()["regions"].items()
    }
    assert set(circuits.values()) == {"closed"}  # one request's fault opened no circuit
