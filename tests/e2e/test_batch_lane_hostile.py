"""The batch lane against hostile content and a misbehaving upstream, end to end (test broker,
Azurite, the simulator's Batch API, the queue side's pumps with the timer on its schedule):

- text with U+2028 / U+2029 / U+0085 (pasted from PDFs and word processors) goes through the lane,
  and a plain job beside it is not held up;
- a malformed line in the Batch API's output file fails that one job (with a reason), the rest apply;
- a job whose body is larger than a Table property (64 KiB) goes through the lane;
- a batch the upstream answers 404 for (deleted, purged, a restarted endpoint) is a failed batch:
  its jobs are re-routed to the standard lane;
- a step that keeps failing after the batch row was written does not build another batch (row and
  blobs) of the same pending jobs on every tick.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from .batchlane_support import (
    BATCH_DEP,
    SIM_BATCH_CLOCK,
    batch_regions,
    lane_harness,
    replies_per_job,
    sim_batches,
)

pytestmark = [pytest.mark.timeout(180)]


def full_files_of(n: int) -> dict[str, str]:
    """Files of exactly ``n`` jobs (never flushed part-full): every test's jobs share one batch."""
    return {"BACKLOG_BATCH_MAX_REQUESTS": str(n), "BACKLOG_BATCH_MAX_WAIT_S": "600"}


async def _until(check: Callable[[], Awaitable[Any]], what: str, timeout: float = 60.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = await check()
        if value:
            return value
        assert time.monotonic() < deadline, f"not reached within {timeout}s: {what}"
        await asyncio.sleep(0.1)


def _harness(
    sim, sb_broker, azurite, unique_name, gateway_factory, settings_factory, files_of=0, **kw
):
    if files_of:
        kw["env"] = full_files_of(files_of)
    settings = settings_factory(sim)
    return lane_harness(sb_broker, azurite, unique_name, gateway_factory(settings), settings, **kw)


async def test_paragraph_separators_go_through_the_lane_and_hold_up_no_other_job(
    sim_factory, sb_broker, azurite, unique_name, gateway_factory, gateway_settings_factory
):
    sim = sim_factory(batch_regions(), batch=SIM_BATCH_CLOCK)
    h = await _harness(
        sim, sb_broker, azurite, unique_name, gateway_factory, gateway_settings_factory, files_of=2
    ).start()
    try:
        pasted = h.job("from a PDF:\u2028line two\u2029para\u0085next", lane="batch")
        plain = h.job("plain text", lane="batch")
        await h.submit(pasted, plain)
        done = await h.wait_terminal([pasted.job_id, plain.job_id], timeout=60)
        for job in (pasted, plain):
            record = done[job.job_id]
            assert (record.status, record.lane, record.deployment) == (
                "succeeded",
                "batch",
                BATCH_DEP,
            ), record
        assert replies_per_job(h) == Counter({pasted.job_id: 1, plain.job_id: 1})
        batches = sim_batches(sim)
        assert [b["request_counts"] for b in batches] == [{"total": 2, "completed": 2, "failed": 0}]
    finally:
        await h.aclose()


async def test_a_malformed_output_line_fails_only_its_job(
    sim_factory, sb_broker, azurite, unique_name, gateway_factory, gateway_settings_factory
):
    sim = sim_factory(batch_regions(), batch=SIM_BATCH_CLOCK)
    sim.region("eastus2").batch_fault("malformed", fraction=0.25)  # 1 line in 4 cut short
    h = await _harness(
        sim,
        sb_broker,
        azurite,
        unique_name,
        gateway_factory,
        gateway_settings_factory,
        files_of=4,
    ).start()
    try:
        jobs = [h.job(f"job {i}", lane="batch") for i in range(4)]
        await h.submit(*jobs)
        done = await h.wait_terminal([j.job_id for j in jobs], timeout=60)
        statuses = Counter(r.status for r in done.values())
        assert statuses == Counter({"succeeded": 3, "failed": 1}), done
        failed = next(r for r in done.values() if r.status == "failed")
        assert failed.error["code"] == "batch_line_malformed" and failed.error["message"]
        assert failed.lane == "batch"
        assert {r.lane for r in done.values()} == {"batch"}  # none re-run on the standard lane
        assert replies_per_job(h) == Counter({j.job_id: 1 for j in jobs})
        lane_rows = await h.backlog.services.batch_lane.store.batches(open_only=False)
        assert [row.state for row in lane_rows] == ["done"]
    finally:
        await h.aclose()


async def test_a_body_larger_than_a_table_property_goes_through_the_lane(
    sim_factory, sb_broker, azurite, unique_name, gateway_factory, gateway_settings_factory
):
    sim = sim_factory(batch_regions(), batch=SIM_BATCH_CLOCK)
    h = await _harness(
        sim, sb_broker, azurite, unique_name, gateway_factory, gateway_settings_factory, files_of=2
    ).start()
    try:
        big = h.job("word " * 20_000, lane="batch")  # 100,000 characters: 200 KB as UTF-16
        small = h.job("small", lane="batch")
        assert len(big.to_body()) > 96 * 1024
        await h.submit(big, small)
        done = await h.wait_terminal([big.job_id, small.job_id], timeout=60)
        for job in (big, small):
            record = done[job.job_id]
            assert (record.status, record.lane) == ("succeeded", "batch"), record
        assert replies_per_job(h) == Counter({big.job_id: 1, small.job_id: 1})
        # the large body's blob went with its pending row
        container = h.backlog.services.batch_lane._payloads._container
        names = [b.name async for b in container.list_blobs(name_starts_with="batchlane/pending/")]
        assert names == []
    finally:
        await h.aclose()


async def test_a_batch_the_upstream_no_longer_knows_is_rerouted(
    sim_factory, sb_broker, azurite, unique_name, gateway_factory, gateway_settings_factory
):
    slow = {**SIM_BATCH_CLOCK, "in_progress_s": 600, "window_s": 3600}
    sim = sim_factory(batch_regions(), batch=slow)
    h = await _harness(
        sim, sb_broker, azurite, unique_name, gateway_factory, gateway_settings_factory, files_of=3
    ).start()
    try:
        jobs = [h.job(f"forgotten {i}", lane="batch") for i in range(3)]
        await h.submit(*jobs)
        store = h.backlog.services.batch_lane.store

        async def submitted() -> bool:
            rows = await store.batches(open_only=False)
            return bool(rows) and rows[0].state == "submitted"

        await _until(submitted, "the batch submitted")
        sim.region("eastus2").reset()  # forgets every batch and file: retrieve answers 404
        done = await h.wait_terminal([j.job_id for j in jobs], timeout=60)
        for record in done.values():
            assert (record.status, record.lane, record.deployment) == (
                "succeeded",
                "standard",
                "gpt-4o-prod",
            ), record
        assert replies_per_job(h) == Counter({j.job_id: 1 for j in jobs})
        rows = await store.batches(open_only=False)
        assert [(r.state, r.aoai_status, r.error_code) for r in rows] == [
            ("done", "failed", "batch_not_found")
        ]
    finally:
        await h.aclose()


class _FailingEtagsPut:
    """The lane's real blob store, whose ``put`` of a batch's etags blob (written inside the
    ``prepare`` step, after the batch row) fails while ``failing`` is set."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner
        self._container = inner._container
        self.failing = True
        self.failures = 0

    async def put(self, name: str, data: bytes) -> None:
        if self.failing and name.endswith("/etags.json"):
            self.failures += 1
            raise OSError("injected: storage refused the write")
        await self._inner.put(name, data)

    async def get(self, name: str) -> bytes:
        return await self._inner.get(name)

    async def delete(self, name: str) -> None:
        await self._inner.delete(name)


async def test_a_step_failing_after_the_row_was_written_builds_no_second_batch(
    sim_factory, sb_broker, azurite, unique_name, gateway_factory, gateway_settings_factory
):
    sim = sim_factory(batch_regions(), batch=SIM_BATCH_CLOCK)
    h = _harness(
        sim, sb_broker, azurite, unique_name, gateway_factory, gateway_settings_factory, files_of=3
    )
    lane = h.backlog.services.batch_lane
    payloads = _FailingEtagsPut(lane._payloads)
    lane._payloads = payloads
    await h.start()
    try:
        jobs = [h.job(f"stuck {i}", lane="batch") for i in range(3)]
        await h.submit(*jobs)

        async def failed_often() -> bool:
            return payloads.failures >= 6  # six timer ticks, each failing the same step

        await _until(failed_often, "six failed prepare steps", timeout=90)
        rows = await lane.store.batches(open_only=False)
        blobs = [
            b.name async for b in payloads._container.list_blobs(name_starts_with="batchlane/")
        ]
        assert len(rows) == 1, [r.batch_ref for r in rows]
        assert rows[0].state == "assembled" and rows[0].count == 3
        assert sorted(b.rsplit("/", 1)[-1] for b in blobs) == ["input.jsonl", "members.jsonl"]

        payloads.failing = False  # storage is back: the same batch goes on
        done = await h.wait_terminal([j.job_id for j in jobs], timeout=60)
        assert {(r.status, r.lane) for r in done.values()} == {("succeeded", "batch")}
        assert replies_per_job(h) == Counter({j.job_id: 1 for j in jobs})
        assert len(await lane.store.batches(open_only=False)) == 1
        assert len(sim_batches(sim)) == 1
    finally:
        await h.aclose()


async def test_a_file_the_upstream_no_longer_knows_at_create_is_uploaded_again(
    sim_factory, sb_broker, azurite, unique_name, gateway_factory, gateway_settings_factory
):
    sim = sim_factory(batch_regions(), batch=SIM_BATCH_CLOCK)
    uploads: list[str] = []

    async def forget_the_first_upload(stage: str, ref: str) -> None:
        if stage == "after_upload":
            uploads.append(ref)
            if len(uploads) == 1:  # the file is uploaded, not yet used: the upstream forgets it
                await asyncio.to_thread(sim.region("eastus2").reset)

    h = await _harness(
        sim,
        sb_broker,
        azurite,
        unique_name,
        gateway_factory,
        gateway_settings_factory,
        files_of=2,
        lane_checkpoint=forget_the_first_upload,
    ).start()
    try:
        jobs = [h.job(f"re-upload {i}", lane="batch") for i in range(2)]
        await h.submit(*jobs)
        done = await h.wait_terminal([j.job_id for j in jobs], timeout=60)
        assert {(r.status, r.lane) for r in done.values()} == {("succeeded", "batch")}
        assert len(uploads) == 2 and len(set(uploads)) == 1  # the same batch, uploaded twice
        assert replies_per_job(h) == Counter({j.job_id: 1 for j in jobs})
        assert len(sim_batches(sim)) == 1
    finally:
        await h.aclose()
