"""Chaos, kept small for make test (``python -m bench.chaos --jobs 2000`` is the larger run)."""

from __future__ import annotations

import pytest

from bench.chaos import run_chaos

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]


async def test_chaos_every_job_ends_once_and_is_replied_once(
    chaos_sim, chaos_broker, chaos_storage
):
    report = await run_chaos(
        jobs=200,
        sim=chaos_sim,
        broker=chaos_broker,
        storage_connection=chaos_storage.connection_string,
        deadline_s=40.0,  # a job's own deadline: past it, the next delivery ends it (a busy
        # machine spends 12 s submitting the 200 jobs; at 25 s all filtered jobs once expired)
        timeout_s=180.0,  # waiting for every job to be terminal: polled, generous for busy machines
    )
    print(report.summary())
    assert report.not_terminal == 0, report.summary()
    assert report.terminal_writes == report.jobs and report.double_terminal_writes == 0, (
        report.summary()
    )
    assert report.duplicate_replies == 0 and report.jobs_without_reply == 0, report.summary()
    assert report.succeeded + sum(report.failed.values()) == report.jobs
    assert sum(report.crashes.values()) > 0 and report.parks > 0  # the chaos actually happened
    assert report.failed["content_filter"] > 0
