"""The batch lane end to end: test broker, Azurite, the simulator's Batch API, the queue side's
pumps (worker + timer on its schedule) and the real openai SDK inside the lane."""

from __future__ import annotations

from collections import Counter

import pytest

from .batchlane_support import (
    BATCH_DEP,
    SIM_BATCH_CLOCK,
    batch_regions,
    lane_harness,
    replies_per_job,
    sim_batches,
)

pytestmark = [pytest.mark.timeout(120)]


@pytest.fixture
def lane_sim(sim_factory):
    return sim_factory(batch_regions(), batch=SIM_BATCH_CLOCK)


def _harness(sim, sb_broker, azurite, unique_name, gateway_factory, gateway_settings_factory, **kw):
    settings = gateway_settings_factory(sim)
    return lane_harness(sb_broker, azurite, unique_name, gateway_factory(settings), settings, **kw)


async def test_a_batch_completes_and_each_job_finishes_once_with_its_line(
    lane_sim, sb_broker, azurite, unique_name, gateway_factory, gateway_settings_factory
):
    from shared.usage import UsageRecorder

    recorder = UsageRecorder(None)  # counts in memory
    h = await _harness(
        lane_sim,
        sb_broker,
        azurite,
        unique_name,
        gateway_factory,
        gateway_settings_factory,
        usage=recorder,
    ).start()
    jobs = [h.job(f"batch job {i}", lane="batch", caller="key:tester") for i in range(6)]
    filtered = h.job("please SIM_FILTER_PROMPT", lane="batch")
    standard = h.job("right now")  # default lane
    await h.submit(*jobs, filtered, standard)
    done = await h.wait_terminal([j.job_id for j in [*jobs, filtered, standard]], timeout=60)

    for job in jobs:
        record = done[job.job_id]
        assert record.status == "succeeded" and record.lane == "batch"
        assert record.deployment == BATCH_DEP and record.usage["completion_tokens"] > 0
        status = await h.backlog.status(job.job_id, owner=None)
        assert status["lane"] == "batch"
        assert status["batch"]["batch_id"].startswith("batch_")
        assert status["batch"]["status"] == "completed"
        assert status["batch"]["request_counts"]["total"] == 7
        assert status["result"]["choices"][0]["message"]["content"]
        # Its submitter sees the batch's progress, not its internals (the Azure batch id, the
        # deployment, every caller's lines in the counts); operators (owner=None) see them.
        own = await h.backlog.status(job.job_id, owner="key:tester")
        assert own is not None and set(own["batch"]) == {"id", "state", "status"}
        assert own["batch"]["status"] == "completed" and own["result"] == status["result"]
        assert await h.backlog.status(job.job_id, owner="key:someone-else") is None
    failure = done[filtered.job_id]
    assert failure.status == "failed" and failure.error["code"] == "content_filter"
    assert failure.lane == "batch"
    assert done[standard.job_id].lane == "standard"
    assert done[standard.job_id].deployment == "gpt-4o-prod"

    assert replies_per_job(h) == Counter({j.job_id: 1 for j in [*jobs, filtered, standard]})
    # usage of the batch lines is counted on lane "batch" (priced with the batch discount)
    rows = await recorder.read("0000000000", "9999999999")
    batch_rows = [(k, c) for k, c in rows if k.lane == "batch"]
    assert {k.deployment for k, _ in batch_rows} == {BATCH_DEP}
    assert sum(c.requests for _, c in batch_rows) == len(jobs)
    assert sum(c.output_tokens for _, c in batch_rows) == sum(
        done[j.job_id].usage["completion_tokens"] for j in jobs
    )
    batches = sim_batches(lane_sim)
    assert len(batches) == 1 and batches[0]["request_counts"]["total"] == 7
    # the batch lane used none of the standard deployment's quota: one online call, the standard job
    stats = lane_sim.region("eastus2").stats()
    assert stats["deployments"]["gpt-4o-prod"]["requests"] == 1


async def test_failed_and_expired_batches_and_failed_lines_are_rerouted_to_standard(
    lane_sim, sb_broker, azurite, unique_name, gateway_factory, gateway_settings_factory
):
    region = lane_sim.region("eastus2")
    region.batch_fault("fail")
    region.batch_fault("expire", fraction=0.5)
    region.batch_fault("partial", fraction=0.5)
    h = await _harness(
        lane_sim,
        sb_broker,
        azurite,
        unique_name,
        gateway_factory,
        gateway_settings_factory,
        env={
            "BACKLOG_BATCH_MAX_REQUESTS": "4",
            "BACKLOG_BATCH_MAX_WAIT_S": "600",
        },  # full files only
    ).start()
    jobs = [h.job(f"job {i}", lane="batch") for i in range(12)]
    await h.submit(*jobs)
    done = await h.wait_terminal([j.job_id for j in jobs], timeout=90)

    assert {r.status for r in done.values()} == {"succeeded"}
    lanes = Counter(r.lane for r in done.values())
    # fail: 4 re-routed; expire: 2 kept, 2 re-routed; partial: 2 kept, 2 (500s) re-routed
    assert lanes == Counter({"standard": 8, "batch": 4}), lanes
    assert replies_per_job(h) == Counter({j.job_id: 1 for j in jobs})
    statuses = Counter(b["status"] for b in sim_batches(lane_sim))
    assert statuses == Counter({"failed": 1, "expired": 1, "completed": 1})


async def test_a_job_whose_deadline_passed_in_a_failed_batch_fails_with_a_clear_code(
    lane_sim, sb_broker, azurite, unique_name, gateway_factory, gateway_settings_factory
):
    from datetime import UTC, datetime, timedelta

    lane_sim.region("eastus2").batch_fault("expire", fraction=0.0)
    h = await _harness(
        lane_sim,
        sb_broker,
        azurite,
        unique_name,
        gateway_factory,
        gateway_settings_factory,
        env={"BACKLOG_BATCH_MARGIN_S": "0"},
    ).start()
    soon = datetime.now(UTC) + timedelta(seconds=4)
    job = h.job("short deadline", lane="batch", deadline=soon)
    await h.submit(job)
    record = (await h.wait_terminal([job.job_id], timeout=60))[job.job_id]
    assert record.status == "failed" and record.error["code"] == "deadline_exceeded"
    assert replies_per_job(h) == Counter({job.job_id: 1})


async def test_auto_lane_goes_to_batch_only_with_time_to_spare(
    lane_sim, sb_broker, azurite, unique_name, gateway_factory, gateway_settings_factory
):
    from datetime import UTC, datetime, timedelta

    h = await _harness(
        lane_sim, sb_broker, azurite, unique_name, gateway_factory, gateway_settings_factory
    ).start()
    roomy = h.job("no hurry", lane="auto")
    later = h.job("tomorrow", lane="auto", deadline=datetime.now(UTC) + timedelta(hours=1))
    urgent = h.job("soon", lane="auto", deadline=datetime.now(UTC) + timedelta(seconds=5))
    embed = h.job(request={"model": "text-embedding-3-small", "input": ["x"]}, lane="auto")
    await h.submit(roomy, later, urgent, embed)
    done = await h.wait_terminal([roomy.job_id, later.job_id, urgent.job_id, embed.job_id], 60)
    assert done[roomy.job_id].lane == "batch" and done[later.job_id].lane == "batch"
    assert done[urgent.job_id].lane == "standard"  # 5 s < window 8 s + margin 1 s
    assert done[embed.job_id].lane == "standard"  # no embeddings batch deployment


@pytest.mark.parametrize("gateway_quota", ["right", "too_high"])
async def test_the_enqueued_token_quota_is_respected(
    sim_factory,
    sb_broker,
    azurite,
    unique_name,
    gateway_factory,
    gateway_settings_factory,
    gateway_quota,
):
    # each job ~56 tokens; 4 jobs per file ~224 tokens; the deployment takes 400 enqueued tokens:
    # one batch at a time. With the right quota the lane holds the next file back itself; told a
    # quota ten times too high, Azure refuses with token_limit_exceeded and the lane backs off.
    sim = sim_factory(batch_regions(enqueued_tokens=400), batch=SIM_BATCH_CLOCK)
    settings = gateway_settings_factory(sim)
    if gateway_quota == "too_high":
        regions = [
            r.model_copy(
                update={
                    "batch": {
                        a: d.model_copy(update={"enqueued_tokens": 4000})
                        for a, d in r.batch.items()
                    }
                }
            )
            for r in settings.regions
        ]
        settings = settings.model_copy(update={"regions": regions})
    h = await lane_harness(
        sb_broker,
        azurite,
        unique_name,
        gateway_factory(settings),
        settings,
        env={
            "BACKLOG_BATCH_MAX_REQUESTS": "4",
            "BACKLOG_BATCH_MAX_WAIT_S": "600",
        },  # full files only
    ).start()
    jobs = [h.job("w " * 100 + str(i), lane="batch") for i in range(12)]
    await h.submit(*jobs)
    done = await h.wait_terminal([j.job_id for j in jobs], timeout=100)
    assert {r.status for r in done.values()} == {"succeeded"}
    assert {r.lane for r in done.values()} == {"batch"}  # none failed or re-routed for quota
    assert replies_per_job(h) == Counter({j.job_id: 1 for j in jobs})
    batches = sim_batches(sim)
    refused = [b for b in batches if b["status"] == "failed"]
    assert all(b["errors"]["data"][0]["code"] == "token_limit_exceeded" for b in refused)
    assert len([b for b in batches if b["status"] == "completed"]) == 3
    if gateway_quota == "right":
        assert refused == []
    else:
        assert refused, "the simulator should have refused at least one batch"
