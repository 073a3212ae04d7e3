"""Cancelling jobs end to end (test broker, Azurite, the simulator's Batch API, the queue side's
pumps): a job in a submitted batch, a job waiting for a batch file, a queued standard job. Each
ends ``cancelled`` exactly once, is replied to once, and a later batch line never overwrites it."""

from __future__ import annotations

import asyncio
import time
from collections import Counter

import pytest

from shared.jobs import JobNotCancellable

from .batchlane_support import SIM_BATCH_CLOCK, batch_regions, lane_harness, sim_batches

pytestmark = [pytest.mark.timeout(150)]

# The batch stays in_progress long enough for the cancel to land while it is submitted.
SLOW_BATCH = {**SIM_BATCH_CLOCK, "in_progress_s": 6, "window_s": 60}


async def _wait_for(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while True:
        value = await predicate()
        if value:
            return value
        assert time.monotonic() < deadline, f"{what} not seen after {timeout}s"
        await asyncio.sleep(0.1)


def _replies(h) -> Counter:
    return Counter((r["job_id"], r["status"]) for r in h.replies())


async def test_a_job_cancelled_in_a_submitted_batch_stays_cancelled_when_its_line_arrives(
    sim_factory, sb_broker, azurite, unique_name, gateway_factory, gateway_settings_factory
):
    sim = sim_factory(batch_regions(), batch=SLOW_BATCH)
    settings = gateway_settings_factory(sim)
    h = await lane_harness(
        sb_broker,
        azurite,
        unique_name,
        gateway_factory(settings),
        settings,
        env={"BACKLOG_BATCH_MAX_REQUESTS": "4", "BACKLOG_BATCH_MAX_WAIT_S": "600"},
    ).start()
    try:
        jobs = [h.job(f"cancel me {i}", lane="batch") for i in range(4)]
        await h.submit(*jobs)
        cancelled, kept = jobs[:2], jobs[2:]

        async def submitted():
            status = await h.backlog.status(cancelled[0].job_id, owner=None)
            batch = status.get("batch") or {}
            return batch.get("status") in ("validating", "in_progress") and status

        before = await _wait_for(submitted, 60, "the batch submitted")
        assert before["status"] == "batched"
        for job in cancelled:
            status = await h.backlog.cancel(job.job_id, by="tester", owner=None)
            assert status["status"] == "cancelled"
            assert status["error"]["code"] == "job_cancelled"
            assert status["batch"]["batch_id"].startswith("batch_")  # it was in this batch
        again = await h.backlog.cancel(cancelled[0].job_id, by="tester", owner=None)  # idempotent
        assert again["status"] == "cancelled"

        done = await h.wait_terminal([j.job_id for j in jobs], timeout=90)
        lane = h.backlog.services.batch_lane

        async def applied():
            rows = await lane.store.batches(open_only=False)
            return rows and all(r.state == "done" for r in rows)

        await _wait_for(applied, 60, "the batch applied")  # its lines came back after the cancel
        batches = sim_batches(sim)
        assert len(batches) == 1 and batches[0]["status"] == "completed"
        assert batches[0]["request_counts"]["completed"] == 4  # the cancelled lines ran too
        for job in cancelled:
            record = await h.store.get(job.job_id)
            assert record.status == "cancelled" and record.inline_result is None
            assert await h.store.terminal_writes(job.job_id) == 1
        for job in kept:
            assert done[job.job_id].status == "succeeded"
            assert await h.store.terminal_writes(job.job_id) == 1
        with pytest.raises(JobNotCancellable) as refused:
            await h.backlog.cancel(kept[0].job_id, owner=None)
        assert refused.value.code == "job_already_finished"
        assert await h.backlog.cancel("no-such-job", owner=None) is None
        assert _replies(h) == Counter(
            {
                **{(j.job_id, "cancelled"): 1 for j in cancelled},
                **{(j.job_id, "succeeded"): 1 for j in kept},
            }
        )
    finally:
        await h.aclose()


async def test_a_job_waiting_for_a_batch_file_is_cancelled_and_left_out_of_the_file(
    sim_factory, sb_broker, azurite, unique_name, gateway_factory, gateway_settings_factory
):
    sim = sim_factory(batch_regions(), batch=SIM_BATCH_CLOCK)
    settings = gateway_settings_factory(sim)
    h = await lane_harness(
        sb_broker,
        azurite,
        unique_name,
        gateway_factory(settings),
        settings,
        env={"BACKLOG_BATCH_MAX_REQUESTS": "4", "BACKLOG_BATCH_MAX_WAIT_S": "600"},
    ).start()
    try:
        first = h.job("waiting", lane="batch")
        await h.submit(first)

        async def waiting():
            record = await h.store.get(first.job_id)
            return record is not None and record.status == "batched" and not record.batch_id

        await _wait_for(waiting, 30, "the job waiting for a batch file")
        status = await h.backlog.cancel(first.job_id, by="tester", owner=None)
        assert status["status"] == "cancelled"
        rest = [h.job(f"next {i}", lane="batch") for i in range(4)]
        await h.submit(*rest)
        done = await h.wait_terminal([j.job_id for j in rest], timeout=60)
        assert {r.status for r in done.values()} == {"succeeded"}
        batches = sim_batches(sim)
        assert [b["request_counts"]["total"] for b in batches] == [4]  # without the cancelled job
        assert await h.store.terminal_writes(first.job_id) == 1
        assert _replies(h)[(first.job_id, "cancelled")] == 1
    finally:
        await h.aclose()


async def test_a_queued_job_is_cancelled_and_the_worker_drops_its_message(
    sim_factory, sb_broker, azurite, unique_name, gateway_factory, gateway_settings_factory
):
    sim = sim_factory(batch_regions(), batch=SIM_BATCH_CLOCK)
    settings = gateway_settings_factory(sim)
    h = lane_harness(sb_broker, azurite, unique_name, gateway_factory(settings), settings)
    try:
        job = h.job("queued, not yet picked up")
        await h.submit(job)  # the pumps are not running: the job stays queued
        assert (await h.store.get(job.job_id)).status == "queued"
        status = await h.backlog.cancel(job.job_id, by="tester", owner=None)
        assert status["status"] == "cancelled" and status["lane"] == "standard"
        await h.start()
        await h.settled()  # the worker got the message and completed it without running it
        assert h.calls["backlog_worker"] >= 1
        record = await h.store.get(job.job_id)
        assert record.status == "cancelled" and record.deployment is None
        assert await h.store.terminal_writes(job.job_id) == 1
        assert _replies(h) == Counter({(job.job_id, "cancelled"): 1})
        assert sim.region("eastus2").stats()["deployments"]["gpt-4o-prod"]["requests"] == 0
    finally:
        await h.aclose()
