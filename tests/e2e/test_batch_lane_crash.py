"""Crash safety of the batch lane: a real backlog process is SIGKILLed between each pair of steps
(accept/assemble, prepare, upload, create, poll/download, finish); a second process takes over.
No job is lost or finished twice, every job is replied once, and no file gets a second batch."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from tests.fixtures.devserver import settings_env
from tests.fixtures.sim import start_sim

from .batchlane_support import SIM_BATCH_CLOCK, batch_regions, lane_harness, sim_batches

pytestmark = [pytest.mark.slow, pytest.mark.timeout(420)]

ROOT = Path(__file__).resolve().parents[2]
STAGES = [
    "after_assemble",  # batch row written, jobs not yet pointed at it
    "after_prepare",  # jobs in the batch, nothing uploaded
    "after_upload",  # file uploaded, file id not recorded
    "after_create",  # batch created, its id not recorded
    "after_poll",  # batch seen completed, nothing downloaded
    "after_download",  # lines downloaded, no job finished
    "after_finish",  # the first job finished, its reply not sent, the rest not finished
]


@pytest.fixture(scope="module")
def crash_sim(tmp_path_factory):
    handle = start_sim(
        batch_regions(),
        workdir=tmp_path_factory.mktemp("lane-crash-sim"),
        extra={"batch": SIM_BATCH_CLOCK},
    )
    try:
        yield handle
    finally:
        handle.stop()


def _spawn(env: dict[str, str], log: Path, crash_at: str | None) -> subprocess.Popen[bytes]:
    child = {k: v for k, v in os.environ.items() if not k.startswith(("GATEWAY_", "BACKLOG_"))}
    child.update(env)
    child["PYTHONPATH"] = str(ROOT)
    if crash_at:
        child["LANE_CRASH_AT"] = crash_at
    with open(log, "ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "tests.e2e.lane_process"],
            cwd=ROOT,
            env=child,
            stdout=out,
            stderr=subprocess.STDOUT,
        )


async def test_sigkill_after_every_step_loses_and_duplicates_nothing(
    crash_sim, sb_broker, azurite, unique_name, gateway_settings_factory, tmp_path
):
    """One process per step, each SIGKILLed right after that step (the next one resumes the
    batch where the row says it stands and dies after the following step); a last one finishes."""
    crash_sim.region("eastus2").reset()
    settings = gateway_settings_factory(crash_sim)
    h = lane_harness(sb_broker, azurite, unique_name, None, settings)
    env = {**h.env, **settings_env(settings)}
    jobs = [h.job(f"crash test {i}", lane="batch") for i in range(6)]
    await h.submit(*jobs)
    log = tmp_path / "lane_process.log"

    took: dict[str, float] = {}
    for stage in STAGES:
        started = time.monotonic()
        proc = _spawn(env, log, stage)
        try:
            code = await asyncio.to_thread(proc.wait, 90)
        except subprocess.TimeoutExpired:
            proc.kill()
            pytest.fail(f"the process never reached {stage}:\n{log.read_text()}")
        assert code == -9, log.read_text()  # killed at the stage, not a clean exit
        assert f"SIGKILL at {stage}" in log.read_text()
        took[stage] = round(time.monotonic() - started, 1)
    print("seconds per crashed process:", took)

    last = _spawn(env, log, None)
    try:
        done = await h.wait_terminal([j.job_id for j in jobs], timeout=90)
    finally:
        last.terminate()
        await asyncio.to_thread(last.wait, 30)

    assert {r.status for r in done.values()} == {"succeeded"}, log.read_text()
    assert {r.deployment for r in done.values()} == {"gpt-4o-batch"}  # finished from batch lines
    replies = Counter(r["job_id"] for r in h.replies())
    assert replies == Counter({j.job_id: 1 for j in jobs}), replies
    batches = sim_batches(crash_sim)
    per_file = Counter(b["input_file_id"] for b in batches)
    assert per_file and max(per_file.values()) == 1, per_file  # a batch at most once per file
    lane_rows = await h.backlog.services.batch_lane.store.batches(open_only=False)
    assert {row.aoai_batch_id for row in lane_rows} <= {b["id"] for b in batches}
    assert all(row.state == "done" for row in lane_rows)
    await h.backlog.aclose()
