"""Real crashes: ``python -m devserver`` (HTTP, Service Bus pumps, timer) as a separate process,
killed with SIGKILL several times while jobs flow and restarted. Counts come from the job store's
rows (terminal state, one audit row per winning terminal write) and the reply queue."""

from __future__ import annotations

import pytest

from bench.chaos import run_kill_chaos
from testpeers.broker import start_broker

pytestmark = [pytest.mark.slow, pytest.mark.timeout(115)]


async def test_sigkill_the_app_while_jobs_flow_loses_nothing_and_replies_once(
    chaos_sim, chaos_storage, tmp_path
):
    broker = start_broker(lock_duration_s=3)  # a killed worker's messages come back soon
    try:
        report = await run_kill_chaos(
            jobs=60,
            sim=chaos_sim,
            broker=broker,
            storage_connection=chaos_storage.connection_string,
            kills=3,
            submit_over_s=8.0,
            timeout_s=85.0,
            workdir=tmp_path,
        )
    finally:
        broker.stop()
    print(report.summary())
    assert report.kills == 3 and report.restarts == 3
    assert report.lost == 0, report.summary()
    assert report.terminal_writes == report.jobs, report.summary()
    assert report.duplicated_terminal_writes == 0, report.summary()
    assert report.duplicate_replies_after_detection == 0, report.summary()
    assert report.jobs_without_reply == 0, report.summary()
    assert report.succeeded + sum(report.failed.values()) == report.jobs
