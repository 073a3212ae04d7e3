"""Races of the backlog's state machine, driven deterministically (seams and ordering, no sleeps).

Real job store, parking queue and blobs (Azurite) and the real broker; the access layer is a
collaborator here (``StepGateway``): it can hold a call open, throttle or fail on command, and it
counts the model calls per job, which is what "a second copy never calls the model" is about.
Deliveries are built from the broker's own copies of the messages (message id, sequence number),
so a redelivery is the same delivery owner, as with Service Bus.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import time
from collections import Counter
from types import SimpleNamespace
from typing import Any

import pytest
from azure.core.exceptions import HttpResponseError, ServiceRequestError, ServiceResponseError

from shared.aoai import AllThrottled, Capacity, ManualClock, UnknownModel
from shared.jobs import Delivery, Outcome
from testpeers.gateway import RecordedSleeps

pytestmark = pytest.mark.timeout(90)


class StepGateway:
    """The access layer as the backlog sees it, steered by the test."""

    def __init__(self) -> None:
        self.calls: Counter[str] = Counter()
        self.throttle = 0
        self.fail = 0
        self.gate: asyncio.Event | None = None
        self.entered = asyncio.Event()
        self.capacity_error: Exception | None = None

    async def chat(self, request: Any, ctx: Any) -> Any:
        self.calls[ctx.correlation_id] += 1
        self.entered.set()
        if self.gate is not None:
            await self.gate.wait()
        if self.throttle > 0:
            self.throttle -= 1
            raise AllThrottled(request.model, retry_at=time.time(), now=time.time())
        if self.fail > 0:
            self.fail -= 1
            raise RuntimeError("upstream broke")
        return SimpleNamespace(
            response={"choices": [{"message": {"role": "assistant", "content": "ok"}}]},
            finish_reason="stop",
            region="eastus2",
            deployment="gpt-4o-prod",
            usage=None,
        )

    def estimate_cost(self, request: Any) -> int:
        return 100

    def capacity(self, alias: str) -> Capacity:
        if self.capacity_error is not None:
            raise self.capacity_error
        return Capacity(alias=alias, requests=100, tokens=1_000_000, deployments=1)

    async def probe_regions(self) -> dict[str, bool]:
        return {}


class SendHook:
    """The backlog's Service Bus sender, with a hook that runs right after a send to the backlog
    queue returns (before the sender's next step): where the race with a worker happens."""

    def __init__(self, bus: Any, queue: str) -> None:
        self._bus = bus
        self._queue = queue
        self.after_send: Any = None

    async def send(self, queue: str, message: Any) -> None:
        await self._bus.send(queue, message)
        if queue == self._queue and self.after_send is not None:
            hook, self.after_send = self.after_send, None
            await hook(message)

    async def aclose(self) -> None:
        await self._bus.aclose()


class ParkRecordFailsOnce:
    """The job store, except that the first write of ``parked`` fails (after the park itself)."""

    def __init__(self, store: Any) -> None:
        self._store = store
        self.failed = False

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)

    def _maybe_fail(self, status: str) -> None:
        if status == "parked" and not self.failed:
            self.failed = True
            raise ConnectionError("storage hiccup while recording the park")

    async def advance(self, job_id: str, status: str, **kw: Any) -> Any:
        self._maybe_fail(status)
        return await self._store.advance(job_id, status, **kw)

    async def progress(self, job_id: str, status: str, **kw: Any) -> Any:  # the old API
        self._maybe_fail(status)
        return await self._store.progress(job_id, status, **kw)


def deliveries(broker: Any, queue: str, *, dlq: bool = False) -> list[Delivery]:
    messages = broker.dlq_messages(queue) if dlq else broker.messages(queue)
    return [
        Delivery(
            body=m.body,
            message_id=m.message_id,
            delivery_count=m.delivery_count + 1,
            sequence_number=m.sequence_number,
            application_properties=dict(m.application_properties or {}),
            correlation_id=m.correlation_id,
            dead_letter_reason="MaxDeliveryCountExceeded" if dlq else None,
        )
        for m in messages
    ]


def delivery_for(message: Any, seq: int, **extra: Any) -> Delivery:
    """A delivery of an ``Outgoing`` the backlog just sent (sequence numbers are the broker's)."""
    return Delivery(
        body=message.body,
        message_id=message.message_id,
        sequence_number=seq,
        application_properties=dict(message.application_properties),
        **extra,
    )


def hooked(h: Any) -> SendHook:
    hook = SendHook(h.backlog.services.bus, h.backlog.settings.queue)
    h.backlog.services = dataclasses.replace(h.backlog.services, bus=hook)
    return hook


async def until(predicate: Any, within_s: float = 30.0) -> Any:
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        value = await predicate()
        if value:
            return value
        await asyncio.sleep(0.2)
    raise AssertionError("condition not met in time")


async def redrive_all(h: Any, expected: int) -> list[Any]:
    """Run the timer until ``expected`` parked copies were handled (they become visible after 1 s)."""
    reports: list[Any] = []

    async def step() -> bool:
        reports.append(await h.backlog.run_timer(probe=False))
        return sum(r.moved + r.dropped + r.poisoned for r in reports) >= expected

    await until(step)
    return reports


# -- 3. status never goes backwards ---------------------------------------------------------------


async def test_timer_redrive_never_overwrites_a_worker_that_already_set_running(
    harness_factory, sb_broker
):
    gw = StepGateway()
    h = harness_factory(sb_broker, gw, BACKLOG_MIN_PARK_S="0")
    gw.throttle = 1
    [job_id] = await h.submit(h.job())
    [first] = deliveries(sb_broker, h.backlog.settings.queue)
    assert await h.backlog.process(first) == Outcome.PARKED
    hook = hooked(h)
    gw.gate = asyncio.Event()
    gw.entered.clear()
    worker: list[asyncio.Task[str]] = []

    async def worker_takes_it(message: Any) -> None:
        # The re-driven message is received at once and the worker sets ``running`` before the
        # timer's next step; the model call is held open.
        worker.append(asyncio.create_task(h.backlog.process(delivery_for(message, 99))))
        await asyncio.wait_for(gw.entered.wait(), 20)

    hook.after_send = worker_takes_it
    reports = await redrive_all(h, 1)
    assert sum(r.moved for r in reports) == 1 and worker
    assert (await h.store.get(job_id)).status == "running"  # not set back to queued
    gw.gate.set()
    assert await worker[0] == Outcome.SUCCEEDED
    record = await h.store.get(job_id)
    assert record.status == "succeeded" and gw.calls[job_id] == 2


async def test_dead_letter_redrive_never_overwrites_a_worker_that_already_set_running(
    harness_factory, sb_broker
):
    gw = StepGateway()
    h = harness_factory(sb_broker, gw)
    gw.fail = 1
    [job_id] = await h.submit(h.job())
    [first] = deliveries(sb_broker, h.backlog.settings.queue)
    with pytest.raises(RuntimeError):
        await h.backlog.process(first)  # left to redelivery; say it ends in the dead-letter queue
    dead = dataclasses.replace(first, dead_letter_reason="MaxDeliveryCountExceeded")
    hook = hooked(h)
    gw.gate = asyncio.Event()
    gw.entered.clear()
    worker: list[asyncio.Task[str]] = []

    async def worker_takes_it(message: Any) -> None:
        worker.append(asyncio.create_task(h.backlog.process(delivery_for(message, 77))))
        await asyncio.wait_for(gw.entered.wait(), 20)

    hook.after_send = worker_takes_it
    assert await h.backlog.process_dead_letter(dead) == Outcome.REDRIVEN
    assert (await h.store.get(job_id)).status == "running"
    gw.gate.set()
    assert await worker[0] == Outcome.SUCCEEDED
    assert (await h.store.get(job_id)).status == "succeeded" and gw.calls[job_id] == 2


# -- 4. never two live copies that both call the model ---------------------------------------------


async def test_a_park_whose_record_failed_leaves_a_copy_that_is_dropped_before_the_model(
    harness_factory, sb_broker
):
    gw = StepGateway()
    h = harness_factory(sb_broker, gw, BACKLOG_MIN_PARK_S="0")
    flaky = ParkRecordFailsOnce(h.backlog.services.store)
    h.backlog.services = dataclasses.replace(h.backlog.services, store=flaky)
    gw.throttle = 2
    [job_id] = await h.submit(h.job())
    [first] = deliveries(sb_broker, h.backlog.settings.queue)
    with pytest.raises(ConnectionError):
        await h.backlog.process(first)  # parked, then the record failed: Service Bus redelivers
    assert flaky.failed
    redelivered = dataclasses.replace(first, delivery_count=2)
    assert await h.backlog.process(redelivered) == Outcome.PARKED  # parked again, recorded
    reports = await redrive_all(h, 2)  # both parked copies become visible
    assert sum(r.moved for r in reports) == 1 and sum(r.dropped for r in reports) == 1
    queue = h.backlog.settings.queue
    redriven = [d for d in deliveries(sb_broker, queue) if d.message_id != job_id]
    assert len(redriven) == 1
    assert await h.backlog.process(redriven[0]) == Outcome.SUCCEEDED
    assert gw.calls[job_id] == 3  # two throttled attempts, one run: the orphan never ran


async def test_a_redelivered_message_of_a_parked_job_is_dropped_before_the_model(
    harness_factory, sb_broker
):
    gw = StepGateway()
    h = harness_factory(sb_broker, gw)
    gw.throttle = 1
    [job_id] = await h.submit(h.job())
    [first] = deliveries(sb_broker, h.backlog.settings.queue)
    assert await h.backlog.process(first) == Outcome.PARKED
    # the completion was lost (host died after the function returned): the same message again
    again = dataclasses.replace(first, delivery_count=2)
    assert await h.backlog.process(again) == Outcome.STALE
    record = await h.store.get(job_id)
    assert record.status == "parked" and gw.calls[job_id] == 1
    # a re-submitted copy (same job id, a new message) is dropped the same way
    await h.submit(h.job(job_id=job_id))
    newest = deliveries(sb_broker, h.backlog.settings.queue)[-1]
    assert newest.sequence_number != first.sequence_number
    assert await h.backlog.process(newest) == Outcome.STALE and gw.calls[job_id] == 1


# -- 5. one reply per job, no forced lease ----------------------------------------------------------


async def test_poison_paths_never_take_a_live_reply_lease(harness_factory, sb_broker):
    gw = StepGateway()
    crash = {"after_finish"}

    async def checkpoint(stage: str, job_id: str) -> None:
        if stage in crash:
            crash.discard(stage)
            raise RuntimeError("worker died after the terminal write, before the reply")

    h = harness_factory(sb_broker, gw, checkpoint=checkpoint)
    job = h.job()
    [job_id] = await h.submit(job)
    await h.submit(job)  # a duplicate message of the same job (a client retry)
    first, duplicate = deliveries(sb_broker, h.backlog.settings.queue)
    with pytest.raises(RuntimeError):
        await h.backlog.process(first)
    record = await h.store.get(job_id)
    assert record.status == "succeeded" and record.reply_state == "pending"
    # the duplicate, dead-lettered, and a parking-poison copy both find the live lease
    dead = dataclasses.replace(duplicate, dead_letter_reason="MaxDeliveryCountExceeded")
    assert await h.backlog.process_dead_letter(dead) == Outcome.DUPLICATE
    poison = json.dumps(
        {
            "v": 1,
            "job_id": job_id,
            "model": "gpt-4o",
            "parks": 20,
            "retry_at": 0,
            "reason": "parked_too_often",
            "job": json.loads(job.to_body()),
        }
    )
    assert await h.backlog.process_parking_poison(poison) == Outcome.DUPLICATE
    assert sb_broker.messages(h.reply_queue) == []
    # the lease holder's own redelivery sends it: one reply, without any duplicate detection
    assert await h.backlog.process(dataclasses.replace(first, delivery_count=2)) == (
        Outcome.DUPLICATE
    )
    replies = sb_broker.messages(h.reply_queue)
    assert [m.message_id for m in replies] == [f"{job_id}:reply"]
    assert (await h.store.get(job_id)).reply_state == "sent"


async def test_a_dead_lettered_lease_holder_is_continued_by_its_dead_letter_delivery(
    harness_factory, sb_broker
):
    gw = StepGateway()
    crash = {"after_finish"}

    async def checkpoint(stage: str, job_id: str) -> None:
        if stage in crash:
            crash.discard(stage)
            raise RuntimeError("crash")

    h = harness_factory(sb_broker, gw, checkpoint=checkpoint)
    [job_id] = await h.submit(h.job())
    [first] = deliveries(sb_broker, h.backlog.settings.queue)
    with pytest.raises(RuntimeError):
        await h.backlog.process(first)
    dead = dataclasses.replace(first, dead_letter_reason="MaxDeliveryCountExceeded")
    assert await h.backlog.process_dead_letter(dead) == Outcome.DUPLICATE
    assert [m.message_id for m in sb_broker.messages(h.reply_queue)] == [f"{job_id}:reply"]


async def test_crash_between_reply_send_and_record_delivers_one_reply_with_duplicate_detection(
    harness_factory, sb_broker
):
    gw = StepGateway()
    crash = {"after_reply"}

    async def checkpoint(stage: str, job_id: str) -> None:
        if stage in crash:
            crash.discard(stage)
            raise RuntimeError("worker died after sending the reply, before recording it")

    h = harness_factory(sb_broker, gw, checkpoint=checkpoint)
    sb_broker.create_queue(h.reply_queue, duplicate_detection_window_s=600)
    [job_id] = await h.submit(h.job())
    [first] = deliveries(sb_broker, h.backlog.settings.queue)
    with pytest.raises(RuntimeError):
        await h.backlog.process(first)
    assert (await h.store.get(job_id)).reply_state == "pending"  # the mark was lost
    assert await h.backlog.process(dataclasses.replace(first, delivery_count=2)) == (
        Outcome.DUPLICATE
    )
    # sent twice with the same message id; the reply queue delivered one
    assert sb_broker.duplicates_dropped(h.reply_queue) == 1
    assert [m.message_id for m in sb_broker.messages(h.reply_queue)] == [f"{job_id}:reply"]
    assert (await h.store.get(job_id)).reply_state == "sent"


# -- 7. re-drive pacing never fails open ------------------------------------------------------------


async def test_a_failing_capacity_check_redrives_nothing_and_is_logged(
    harness_factory, sb_broker, caplog
):
    gw = StepGateway()
    h = harness_factory(sb_broker, gw, BACKLOG_MIN_PARK_S="0")
    gw.throttle = 1
    [job_id] = await h.submit(h.job())
    [first] = deliveries(sb_broker, h.backlog.settings.queue)
    assert await h.backlog.process(first) == Outcome.PARKED
    gw.capacity_error = RuntimeError("budget state corrupt")
    caplog.set_level(logging.ERROR, logger="shared.jobs._redrive")

    async def seen() -> Any:
        report = await h.backlog.run_timer(probe=False)
        return report if report.deferred or report.moved else None

    report = await until(seen)
    assert report.moved == 0 and report.deferred == 1
    assert (await h.store.get(job_id)).status == "parked"
    assert any("capacity(gpt-4o) failed" in r.getMessage() for r in caplog.records)
    # an unknown alias is the expected failure: sent on, for the worker to fail permanently
    gw.capacity_error = UnknownModel("gpt-4o", ("gpt-4o",))

    async def moved() -> Any:
        report = await h.backlog.run_timer(probe=False)
        return report if report.moved else None

    assert (await until(moved)).moved == 1


# -- 8. an answer the model gave is paid for once ----------------------------------------------------


class FinishFails:
    """The job store, except that ``finish`` fails ``times`` times with ``error``; with
    ``after_write`` the write lands first and only its answer is lost (a response timeout)."""

    def __init__(self, store: Any, error: Exception, times: int, after_write: bool = False) -> None:
        self._store = store
        self._error = error
        self.left = times
        self._after_write = after_write

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)

    async def finish(self, job_id: str, outcome: Any, **kw: Any) -> Any:
        if self.left <= 0:
            return await self._store.finish(job_id, outcome, **kw)
        self.left -= 1
        if self._after_write:
            await self._store.finish(job_id, outcome, **kw)
        raise self._error


def with_store(h: Any, store: Any, sleeps: RecordedSleeps) -> None:
    h.backlog.services = dataclasses.replace(h.backlog.services, store=store, sleep=sleeps)


@pytest.mark.parametrize(
    "error, after_write",
    [
        (ServiceRequestError("connection reset by the storage account"), False),
        (ServiceResponseError("read timed out; the write may have landed"), True),
        (HttpResponseError("503 Server Busy", response=None), False),
    ],
    ids=["connection-failed", "answer-lost-after-write", "server-busy"],
)
async def test_an_answer_is_recorded_through_a_storage_blip_without_a_second_model_call(
    harness_factory, sb_broker, error, after_write
):
    gw = StepGateway()
    h = harness_factory(sb_broker, gw)
    if isinstance(error, HttpResponseError):
        error.status_code = 503
    times = 1 if after_write else 2
    flaky = FinishFails(h.backlog.services.store, error, times=times, after_write=after_write)
    sleeps = RecordedSleeps(ManualClock())
    with_store(h, flaky, sleeps)
    [job_id] = await h.submit(h.job())
    [first] = deliveries(sb_broker, h.backlog.settings.queue)
    assert await h.backlog.process(first) == Outcome.SUCCEEDED
    assert gw.calls[job_id] == 1  # the answer was kept: no redelivery, no second call
    assert flaky.left == 0 and len(sleeps.waits) == times
    assert all(0 < w <= 5.0 for w in sleeps.waits)
    record = await h.store.get(job_id)
    assert record.status == "succeeded" and record.reply_state == "sent"
    assert [r["status"] for r in h.replies()] == ["succeeded"]


async def test_a_store_out_of_reach_past_the_limit_leaves_the_message_to_redelivery(
    harness_factory, sb_broker
):
    gw = StepGateway()
    h = harness_factory(sb_broker, gw, BACKLOG_RECORD_RETRY_S="3")
    flaky = FinishFails(h.backlog.services.store, ServiceRequestError("no route"), times=100)
    sleeps = RecordedSleeps(ManualClock())
    with_store(h, flaky, sleeps)
    [job_id] = await h.submit(h.job())
    [first] = deliveries(sb_broker, h.backlog.settings.queue)
    with pytest.raises(ServiceRequestError):
        await h.backlog.process(first)
    assert len(sleeps.waits) >= 2 and sum(sleeps.waits) <= 3.0  # bounded by the setting
    flaky.left = 0  # storage is back: the redelivery runs the job (and pays for it again)
    redelivered = dataclasses.replace(first, delivery_count=2)
    assert await h.backlog.process(redelivered) == Outcome.SUCCEEDED
    assert gw.calls[job_id] == 2
    assert (await h.store.get(job_id)).status == "succeeded"
    assert [r["status"] for r in h.replies()] == ["succeeded"]


async def test_an_error_that_is_not_a_peer_out_of_reach_is_not_retried(harness_factory, sb_broker):
    gw = StepGateway()
    h = harness_factory(sb_broker, gw)
    flaky = FinishFails(h.backlog.services.store, ValueError("a bug of ours"), times=1)
    sleeps = RecordedSleeps(ManualClock())
    with_store(h, flaky, sleeps)
    [_job_id] = await h.submit(h.job())
    [first] = deliveries(sb_broker, h.backlog.settings.queue)
    with pytest.raises(ValueError, match="a bug of ours"):
        await h.backlog.process(first)
    assert sleeps.waits == [] and gw.calls[_job_id] == 1
