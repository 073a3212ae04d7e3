"""The operations routes, through the real function_app handlers: state across instances and
clearing it (two gateways sharing the health table in Azurite), parked jobs, the dead-letter
queue (broker) peeked and re-driven, and the caller limits in force."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import function_app
from shared import runtime
from shared.aoai import AllThrottled, CallContext, ChatRequest, Gateway, TableVerdictStore
from tests.fixtures.devserver import settings_env
from tests.fixtures.gateway import settings_for_sim
from tests.functional.api._asgi import body_of, make_request

from .conftest import REGIONS, backlog_env
from .quota_clock import pin_caller_windows


def _chat() -> ChatRequest:
    return ChatRequest(model="gpt-4o", messages=[{"role": "user", "content": "ops"}], max_tokens=8)


async def _json(response: Any) -> Any:
    return json.loads(await body_of(response))


def _dep_state(gateway: Any, region: str, deployment: str) -> str:
    return gateway.health_report()["regions"][region]["deployments"][deployment]["state"]


async def _call(gateway: Gateway, call_id: str) -> str | None:
    """One chat while polling: the region that served it, or None when the gateway paced it
    (the polling itself can use up a region's request window on a slow machine)."""
    try:
        result = await gateway.chat(_chat(), CallContext(call_id, caller="tests"))
    except AllThrottled:
        return None
    return result.region


async def _until(condition, limit_s: float = 60.0) -> bool:
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        if await condition():
            return True
        await asyncio.sleep(0.2)
    return await condition()


async def test_state_across_instances_and_clearing_a_deployment_everywhere(
    app_env, e2e_sim, azurite, unique_name
):
    table = unique_name("health").replace("-", "")
    settings = settings_for_sim(
        e2e_sim,
        regions=list(REGIONS),
        priorities={"eastus2": 0, "swedencentral": 1},
        storage_connection=azurite.connection_string,
        health_table=table,
    )
    app_env({**settings_env(settings), "GATEWAY_USAGE": "off"})
    first = runtime.gateway()
    second = Gateway(settings, verdicts=TableVerdictStore(azurite.connection_string, table))
    east = e2e_sim.region("eastus2")
    dep = "gpt-4o-prod"
    try:
        # A lying retry-after (a day): exhausted for GATEWAY_ABSURD_RETRY_AFTER_S (300 s) at most.
        east.fault("throttle", retry_after_s=86400, count=1)
        result = await first.chat(_chat(), CallContext("ops-1", caller="tests"))
        assert result.region == "swedencentral"
        assert _dep_state(first, "eastus2", dep) == "exhausted"

        async def second_sees(state: str) -> bool:
            await _call(second, "ops-2")
            return _dep_state(second, "eastus2", dep) == state

        assert await _until(lambda: second_sees("exhausted")), "the other instance never heard"

        state = await _json(await function_app.ops_state(make_request("GET", "/api/ops/state")))
        shared = {r["key"]: r for r in state["shared"]}
        record = shared[f"deployment/eastus2/{dep}"]
        # The day-long retry-after is capped at absurd_retry_after_s (a real probe verifies it
        # later): what the ops surface must show is that exhaustion, in force, on every instance.
        assert record["state"] == "exhausted" and record["in_force"]
        assert (
            settings.absurd_retry_after_s / 2
            < record["seconds_left"]
            <= settings.absurd_retry_after_s
        )
        assert state["instance"]["regions"]["eastus2"]["deployments"][dep]["state"] == "exhausted"

        bad = await function_app.ops_clear(
            make_request("POST", "/api/ops/clear", {"deployment": "eastus2/nope"})
        )
        assert bad.status_code == 404 and (await _json(bad))["error"]["code"] == "unknown_target"
        cleared = await function_app.ops_clear(
            make_request("POST", "/api/ops/clear", {"deployment": f"eastus2/{dep}"})
        )
        assert cleared.status_code == 200
        assert (await _json(cleared))["cleared"] == [f"deployment/eastus2/{dep}"]

        async def first_sees_ok() -> bool:
            await _call(first, "ops-3")
            return _dep_state(first, "eastus2", dep) == "ok"

        assert await _until(first_sees_ok), "the clearing instance kept the exhaustion"
        assert await _until(lambda: second_sees("ok")), "the other instance kept the exhaustion"

        async def second_routes_to_east() -> bool:
            # Back in use: the priority-0 region serves again (the polling above may have used
            # up its request window for a moment; then the next window serves it).
            return await _call(second, "ops-4") == "eastus2"

        assert await _until(second_routes_to_east, limit_s=60.0), "eastus2 never served again"
    finally:
        await second.aclose()


async def test_dead_letters_peeked_and_redriven_parked_jobs_listed_and_caller_limits_shown(
    app_env, e2e_sim, azurite, unique_name, sb_azure_broker, harness_factory, monkeypatch
):
    from azure.servicebus.aio import ServiceBusClient

    sb_broker = sb_azure_broker  # Azure's queue settings: the re-drive meets duplicate detection

    backlog = backlog_env(sb_broker, azurite, unique_name)
    settings = settings_for_sim(
        e2e_sim, regions=list(REGIONS), storage_connection=azurite.connection_string
    )
    limits = {"callers": {"principal:parked-caller": {"tpm": 10, "monthly_tokens": 100000}}}
    app_env(
        {
            **settings_env(settings),
            **backlog,
            "GATEWAY_USAGE": "off",
            "GATEWAY_CALLER_LIMITS": json.dumps(limits),
            "GATEWAY_CALLER_TABLE": unique_name("callers").replace("-", ""),
        }
    )
    # One TPM window for the whole test: a minute boundary between the two jobs would let the
    # second one through (the windows are aligned to the wall clock).
    pin_caller_windows(monkeypatch)
    harness = await harness_factory(sb_broker, runtime.gateway(), **backlog).start(timer=False)

    # A caller over its TPM: its second job is parked (the window lasts a minute).
    jobs = [
        harness.job(f"p{i}").model_copy(update={"caller": "principal:parked-caller"})
        for i in range(2)
    ]
    await harness.submit(jobs[0])
    await harness.wait_terminal([jobs[0].job_id], timeout=60)
    await harness.submit(jobs[1])

    async def listed() -> Any:
        body = await _json(await function_app.ops_parked(make_request("GET", "/api/ops/parked")))
        return [j for j in body["data"] if j["job_id"] == jobs[1].job_id]

    assert await _until(listed), "the parked job is not listed"
    (parked,) = await listed()
    assert parked["caller"] == "principal:parked-caller" and parked["parks"] >= 1
    assert parked["retry_at"] > time.time() - 1

    callers = await _json(await function_app.ops_callers(make_request("GET", "/api/ops/callers")))
    row = next(r for r in callers["data"] if r["caller"] == "principal:parked-caller")
    assert row["tpm"] == 10 and row["window_tokens"] > 0 and row["configured"]
    assert row["monthly_tokens"] == 100000 and row["month_tokens"] > 0

    # Dead-letter one message by hand, peek at it, re-drive it.
    queue = backlog["BACKLOG_QUEUE"]
    await harness.aclose()  # stop the pumps: the message must stay where we put it
    from azure.servicebus import ServiceBusMessage

    async with ServiceBusClient.from_connection_string(sb_broker.connection_string) as client:
        async with client.get_queue_sender(queue) as sender:
            await sender.send_messages(
                ServiceBusMessage(
                    b'{"not": "a job"}', message_id="dlq-me", application_properties={"x": "1"}
                )
            )
        async with client.get_queue_receiver(queue, max_wait_time=5) as receiver:
            for message in await receiver.receive_messages(max_message_count=1, max_wait_time=5):
                await receiver.dead_letter_message(
                    message, reason="Poked", error_description="by the test"
                )
    peek = await _json(
        await function_app.ops_dead_letters(make_request("GET", "/api/ops/deadletters"))
    )
    (dead,) = [m for m in peek["data"] if m["message_id"] == "dlq-me"]
    assert dead["reason"] == "Poked" and "by the test" in dead["description"]
    redrive = await function_app.ops_redrive(
        make_request(
            "POST", "/api/ops/deadletters/redrive", {"sequence_numbers": [dead["sequence_number"]]}
        )
    )
    assert (await _json(redrive))["redriven"] == [dead["sequence_number"]]
    # Re-sent under a new id (the original one is inside duplicate detection's window), with
    # the original id kept in the body as its job id.
    (copy,) = sb_broker.messages(queue)
    assert copy.message_id == f"dlq-me.r{dead['sequence_number']}"
    assert json.loads(copy.body) == {"not": "a job", "job_id": "dlq-me"}
    assert sb_broker.duplicates_dropped(queue) == 0
    again = await _json(
        await function_app.ops_dead_letters(make_request("GET", "/api/ops/deadletters"))
    )
    assert not [m for m in again["data"] if m["message_id"] == "dlq-me"]


async def test_parked_job_redriven_now_and_its_stale_parked_copy_dropped(
    app_env, e2e_sim, azurite, unique_name, sb_broker, harness_factory
):
    """A job parked for minutes (both regions throttled with a long retry-after) is re-driven now
    through ``POST ops/parked/redrive``: it succeeds long before its retry time, with one reply.
    Its parked copy (visible after a short park) is then dropped by the timer, no model call."""
    backlog = backlog_env(sb_broker, azurite, unique_name, BACKLOG_MAX_PARK_S="4")
    settings = settings_for_sim(
        e2e_sim,
        regions=list(REGIONS),
        priorities={"eastus2": 0, "swedencentral": 1},
        storage_connection=azurite.connection_string,
        health_table=unique_name("health").replace("-", ""),
    )
    # No background exhaustion probe (a real 1-token call) while the test counts model calls.
    app_env(
        {
            **settings_env(settings),
            **backlog,
            "GATEWAY_USAGE": "off",
            "GATEWAY_EXHAUSTION_PROBE_INTERVAL_S": "3600",
        }
    )
    gateway = runtime.gateway()
    h = await harness_factory(sb_broker, gateway, **backlog).start(timer=False)
    for region, deployment in (("eastus2", "gpt-4o-prod"), ("swedencentral", "gpt4o-sweden")):
        e2e_sim.region(region).fault("throttle", count=1, retry_after_s=3600, deployment=deployment)
    job = h.job("park me")
    await h.submit(job)

    async def parked_for_minutes() -> bool:
        # On a busy machine an attempt can also end in a transient failure (a timeout: a short
        # cooldown) before both throttles are seen; the job then parks for seconds. The timer
        # re-drives it when due, until both deployments are exhausted and it parks for minutes
        # (the gateway caps the day-long retry-after).
        record = await h.store.get(job.job_id)
        if record is None or record.status != "parked":
            return False
        if record.retry_at > time.time() + 120:
            return True
        await h.backlog.run_timer(probe=False)
        return False

    assert await _until(parked_for_minutes), "the job was not parked for minutes"
    record = await h.store.get(job.job_id)

    # Bad asks answer 400; jobs that are not parked are reported per job.
    bad = await function_app.ops_parked_redrive(
        make_request("POST", "/api/ops/parked/redrive", {"job_ids": []})
    )
    assert bad.status_code == 400 and (await _json(bad))["error"]["code"] == "invalid_parameter"

    # Let eastus2 serve again (the throttle's cooldown cleared everywhere), then re-drive now.
    cleared = await function_app.ops_clear(
        make_request("POST", "/api/ops/clear", {"deployment": "eastus2/gpt-4o-prod"})
    )
    assert cleared.status_code == 200

    async def serves() -> bool:
        try:
            await gateway.chat(_chat(), CallContext("ops-unpark", caller="tests"))
        except AllThrottled:  # the clear is not read yet (within GATEWAY_HEALTH_CACHE_S)
            return False
        return _dep_state(gateway, "eastus2", "gpt-4o-prod") == "ok"

    assert await _until(serves), "the cleared deployment stayed exhausted"
    answer = await function_app.ops_parked_redrive(
        make_request("POST", "/api/ops/parked/redrive", {"job_ids": [job.job_id, "job-nope"]})
    )
    assert answer.status_code == 200, await body_of(answer)
    result = await _json(answer)
    by_id = {r["job_id"]: r for r in result["data"]}
    assert result["redriven"] == 1
    assert by_id[job.job_id]["redriven"] and by_id[job.job_id]["status"] == "queued"
    assert by_id["job-nope"] == {"job_id": "job-nope", "redriven": False, "status": "unknown"}

    dropped = 0  # stale parked copies the timer dropped, counted over every run below

    async def finished() -> bool:
        # The backlog keeps a reserve for interactive callers: if the polling above used up
        # eastus2's request window, the re-driven job parks for seconds; the timer re-drives it.
        # On a slow machine the first park's copy (4 s) can surface meanwhile: this run of the
        # timer drops it then, so it is counted here too.
        nonlocal dropped
        current = await h.store.get(job.job_id)
        if current is not None and current.status == "parked":
            dropped += (await h.backlog.run_timer(probe=False)).dropped
        return current is not None and current.status == "succeeded"

    assert await _until(finished, limit_s=90), "the re-driven job did not succeed"
    done = await h.store.get(job.job_id)
    assert done is not None and done.status == "succeeded" and done.parks >= 1
    assert time.time() < record.retry_at - 120  # well before its retry time
    await h.settled()
    deliveries = h.calls["backlog_worker"]
    assert deliveries >= 2  # the delivery that parked it, the re-driven one (and any re-park)
    assert [r["job_id"] for r in h.replies()] == [job.job_id]

    # Re-driving it again: not parked any more, reported, nothing sent.
    again = await _json(
        await function_app.ops_parked_redrive(
            make_request("POST", "/api/ops/parked/redrive", {"job_ids": [job.job_id]})
        )
    )
    assert again["data"] == [{"job_id": job.job_id, "redriven": False, "status": "succeeded"}]

    # The stale parked copy surfaces (a 4 s park): the timer drops it without a model call.
    calls_before = sum(e2e_sim.region(r).stats()["requests"] for r in REGIONS)

    async def stale_copy_gone() -> bool:
        nonlocal dropped
        report = await h.backlog.run_timer(probe=False)
        dropped += report.dropped
        return dropped >= 1

    assert await _until(stale_copy_gone, limit_s=30), "the stale parked copy never surfaced"
    after = await h.backlog.run_timer(probe=False)
    assert after.ok and after.moved == 0 and after.dropped == 0  # nothing left parked
    await h.settled()
    assert sum(e2e_sim.region(r).stats()["requests"] for r in REGIONS) == calls_before
    assert h.calls["backlog_worker"] == deliveries
    assert [r["job_id"] for r in h.replies()] == [job.job_id]
    assert (await h.store.get(job.job_id)).status == "succeeded"
