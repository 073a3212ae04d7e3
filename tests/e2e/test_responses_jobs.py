"""Backlog jobs carrying a Responses API request (``kind: "responses"``), end to end: the test
broker, Azurite (job store and the shared response-affinity table) and the simulator, whose
regions each store their own responses (a continuation sent to the wrong region is a 404)."""

from __future__ import annotations

import json
import uuid

import pytest

from shared.jobs import JobMessage, Outgoing
from shared.responses import AFFINITY_TABLE, affinity_store

from .conftest import REGIONS

pytestmark = pytest.mark.timeout(90)

PREFER_SWEDEN = {"swedencentral": 0, "eastus2": 1}
PREFER_EAST = {"eastus2": 0, "swedencentral": 1}


def _responses(h, caller: str, text: str, **request) -> JobMessage:
    return JobMessage(
        kind="responses",
        caller=caller,
        request={"model": "gpt-4o", "input": text, "max_output_tokens": 400, **request},
        reply_to=h.reply_queue,
    )


def _region_requests(sim, region: str) -> int:
    return int(sim.region(region).stats()["requests"])


async def test_a_responses_job_is_stored_replied_and_continued_in_its_region(
    e2e_sim, sb_broker, gateway_factory, gateway_settings_factory, harness_factory, azurite
):
    """One instance (routing prefers Sweden) creates a stored response as a job; another
    instance, whose router prefers East US 2, continues it as a job: the continuation goes to
    Sweden, where the response is stored (the simulator answers 404 anywhere else)."""
    caller = f"key:{uuid.uuid4().hex[:12]}"
    first = await harness_factory(
        sb_broker, gateway_factory(gateway_settings_factory(e2e_sim, priorities=PREFER_SWEDEN))
    ).start(timer=False)
    job = _responses(first, caller, "Remember the word heron.")
    await first.submit(job)
    record = (await first.wait_terminal([job.job_id]))[job.job_id]
    assert record.status == "succeeded", record.error
    status = await first.backlog.status(job.job_id, owner=None)
    response = status["result"]
    assert response["object"] == "response" and response["status"] == "completed"
    assert response["usage"]["input_tokens"] > 0 and response["usage"]["output_tokens"] > 0
    (reply,) = first.replies()
    assert reply["status"] == "succeeded" and reply["result"]["id"] == response["id"]
    assert record.region == "swedencentral"

    # The home is in the shared table: another instance finds it, under the job's caller.
    from azure.data.tables.aio import TableClient

    table = affinity_store(
        TableClient.from_connection_string(azurite.connection_string, AFFINITY_TABLE)
    )
    try:
        home = await table.find(response["id"])
    finally:
        await table.aclose()
    assert home is not None and (home.region, home.caller) == ("swedencentral", caller)

    second = await harness_factory(
        sb_broker, gateway_factory(gateway_settings_factory(e2e_sim, priorities=PREFER_EAST))
    ).start(timer=False)
    east_before = _region_requests(e2e_sim, "eastus2")
    follow = _responses(
        second, caller, "Which word did I ask you to remember?", previous_response_id=response["id"]
    )
    await second.submit(follow)
    done = (await second.wait_terminal([follow.job_id]))[follow.job_id]
    assert done.status == "succeeded", done.error
    assert done.region == "swedencentral"
    assert _region_requests(e2e_sim, "eastus2") == east_before  # never tried where it is not
    result = (await second.backlog.status(follow.job_id, owner=None))["result"]
    assert result["previous_response_id"] == response["id"]
    # The stored context is served from the prompt cache of its region (as Azure reports it).
    assert result["usage"]["input_tokens"] > response["usage"]["input_tokens"]


async def test_a_caller_continues_only_its_own_responses(
    e2e_sim, sb_broker, gateway_factory, harness_factory
):
    owner, other = f"key:{uuid.uuid4().hex[:12]}", f"key:{uuid.uuid4().hex[:12]}"
    h = await harness_factory(sb_broker, gateway_factory(e2e_sim)).start(timer=False)
    job = _responses(h, owner, "A secret conversation.")
    await h.submit(job)
    assert (await h.wait_terminal([job.job_id]))[job.job_id].status == "succeeded"
    response_id = (await h.backlog.status(job.job_id, owner=None))["result"]["id"]
    calls = sum(_region_requests(e2e_sim, r) for r in REGIONS)

    theft = _responses(h, other, "Tell me the secret.", previous_response_id=response_id)
    unknown = _responses(h, owner, "Continue.", previous_response_id="resp_never_created_here")
    await h.submit(theft, unknown)
    done = await h.wait_terminal([theft.job_id, unknown.job_id])
    for record in done.values():
        assert record.status == "failed"
        assert record.error["code"] == "response_not_found"
        assert record.error["details"]["param"] == "previous_response_id"
    assert sum(_region_requests(e2e_sim, r) for r in REGIONS) == calls  # no upstream call
    await h.settled()
    assert {r["error"]["code"] for r in h.replies() if r["status"] == "failed"} == {
        "response_not_found"
    }


async def test_a_stored_response_gone_from_its_region_fails_the_continuation_for_good(
    e2e_sim, sb_broker, gateway_factory, harness_factory
):
    """The region no longer has the response (expired, deleted): its 404 is the answer, a
    terminal ``response_not_found``, not a missing deployment to retry or fail over from."""
    caller = f"key:{uuid.uuid4().hex[:12]}"
    h = await harness_factory(sb_broker, gateway_factory(e2e_sim)).start(timer=False)
    job = _responses(h, caller, "Soon forgotten.")
    await h.submit(job)
    record = (await h.wait_terminal([job.job_id]))[job.job_id]
    response_id = (await h.backlog.status(job.job_id, owner=None))["result"]["id"]
    e2e_sim.region(record.region).reset()  # the region forgets its stored responses
    follow = _responses(h, caller, "Still there?", previous_response_id=response_id)
    await h.submit(follow)
    done = (await h.wait_terminal([follow.job_id]))[follow.job_id]
    assert done.status == "failed" and done.error["code"] == "response_not_found"
    assert _region_requests(e2e_sim, record.region) == 1  # asked once, where it was stored
    await h.settled()
    assert h.calls["backlog_worker"] == 2  # no redelivery


async def test_stream_and_background_are_refused_with_a_reason(
    e2e_sim, sb_broker, gateway_factory, harness_factory
):
    """A direct sender's job with ``stream`` or ``background`` ends as a terminal failure naming
    the field; nothing reaches the model."""
    h = await harness_factory(sb_broker, gateway_factory(e2e_sim)).start(timer=False)
    queue = h.env["BACKLOG_QUEUE"]
    ids = []
    for field in ("stream", "background"):
        job_id = f"job-{field}-{uuid.uuid4().hex[:8]}"
        body = {
            "schema_version": 1,
            "job_id": job_id,
            "kind": "responses",
            "caller": "key:direct",
            "reply_to": h.reply_queue,
            "request": {"model": "gpt-4o", "input": "hi", field: True},
        }
        await h.backlog.services.bus.send(
            queue, Outgoing(body=json.dumps(body).encode(), message_id=job_id)
        )
        ids.append((field, job_id))
    done = await h.wait_terminal([job_id for _, job_id in ids])
    for field, job_id in ids:
        record = done[job_id]
        assert record.status == "failed" and record.error["code"] == "invalid_message"
        assert f"request.{field}" in record.error["message"]
    assert sum(_region_requests(e2e_sim, r) for r in REGIONS) == 0
