"""Service Bus, dead-letter, timer and Storage-queue invocations through the runtime, with the
input and trigger metadata the host sends; a job end to end (HTTP submit through the runtime,
the queued message delivered from the broker to the worker function, status over HTTP); a
failing invocation reported as the host sees it."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from azure.core.exceptions import ResourceNotFoundError
from azure.servicebus import ServiceBusClient
from azure.storage.queue import QueueClient, TextBase64DecodePolicy

from .conftest import Host

pytestmark = pytest.mark.timeout(240)  # the double's start-up counts; a busy machine is slow

KEY = {"x-functions-key": "host-double-key"}
REGIONS = ("eastus2", "swedencentral")


def _submit(host: Host, content: str, **fields: Any) -> str:
    body = {
        "request": {
            "model": "gpt-4o",
            "messages": [{"role": "user", "content": content}],
            "max_tokens": 8,
        },
        **fields,
    }
    with host.client() as c:
        accepted = c.post("/api/v1/jobs", json=body, headers=KEY)
    assert accepted.status_code == 202, accepted.text
    return str(accepted.json()["id"])


def _status(host: Host, job_id: str) -> dict[str, Any]:
    with host.client() as c:
        answer = c.get(f"/api/v1/jobs/{job_id}", headers=KEY)
    assert answer.status_code == 200, answer.text
    return dict(answer.json())


def _wait_status(host: Host, job_id: str, wanted: str, timeout: float = 60) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    status = _status(host, job_id)
    while status["status"] != wanted and time.monotonic() < deadline:
        time.sleep(0.2)
        status = _status(host, job_id)
    assert status["status"] == wanted, status
    return status


def test_a_job_runs_through_the_service_bus_trigger(host: Host) -> None:
    job_id = _submit(host, "hello from the host double")
    assert _status(host, job_id)["status"] == "queued"
    result, message = host.deliver("backlog_worker", host.env["BACKLOG_QUEUE"])
    assert result["function"] == "backlog_worker"
    assert result["status"] == "Success", result["exception"]
    assert result["return_value"] is None  # `-> None`: nothing for the host to bind
    status = _wait_status(host, job_id, "succeeded")
    assert status["result"]["choices"][0]["message"]["content"]
    assert job_id in (message.message_id or "") or job_id in str(message.body)


def test_a_failing_invocation_is_reported_and_dead_letters_are_handled(host: Host) -> None:
    job_id = _submit(host, "hello through a regional outage")
    # Connections reset in every region: an outage (a 5xx answer there could be the request's own
    # fault once the regions have served others, and such a job is parked, not raised).
    faults = [host.sim.region(r).fault("reset", count=1000) for r in REGIONS]
    try:
        failed, _ = host.deliver("backlog_worker", host.env["BACKLOG_QUEUE"])
    finally:
        for region, fault in zip(REGIONS, faults):
            host.sim.region(region).clear_fault(fault)
    # What the host sees: a failed invocation with the exception, so it abandons the message.
    assert failed["status"] == "Failure"
    exception = failed["exception"]
    assert exception["message"] and exception["stack_trace"], failed
    # ... and the function's own log of it, as an RpcLog of that invocation.
    logged = [x for x in host.logs() if x.get("invocation_id") == failed["invocation_id"]]
    assert any(
        x["level"] == "Warning" and "left to Service Bus redelivery" in x["message"] for x in logged
    ), logged
    _dead_letter_next(host)  # after MaxDeliveryCount, as the broker would
    result, dead = host.deliver("backlog_dead_letters", host.env["BACKLOG_QUEUE"], dead_letter=True)
    assert dead.dead_letter_reason == "MaxDeliveryCountExceeded"
    assert result["function"] == "backlog_dead_letters"
    assert result["status"] == "Success", result["exception"]
    # The dead-letter handler re-drives the job to the backlog; the worker then runs it.
    result, redriven = host.deliver("backlog_worker", host.env["BACKLOG_QUEUE"])
    assert result["status"] == "Success", result["exception"]
    assert redriven.application_properties[b"backlog_redrives"] == 1
    _wait_status(host, job_id, "succeeded")


def test_dead_letter_metadata_reaches_the_handler(host: Host) -> None:
    """The handler decides from the trigger metadata: the dead-letter reason (a string) and the
    job's re-drive count in the application properties (JSON from the host, an int to the app).
    A job already re-driven as often as allowed ends with a failure instead of a re-drive."""
    job_id = _submit(host, "hello, dead-lettered for the last time")
    _dead_letter_next(host)
    result, dead = host.deliver(
        "backlog_dead_letters",
        host.env["BACKLOG_QUEUE"],
        dead_letter=True,
        properties={"backlog_redrives": 2},  # BACKLOG_MAX_DLQ_REDRIVES defaults to 2
    )
    assert result["status"] == "Success", result["exception"]
    assert dead.dead_letter_reason == "MaxDeliveryCountExceeded"
    status = _status(host, job_id)
    assert status["status"] == "failed", status
    assert host.broker.queue_count(host.env["BACKLOG_QUEUE"]) == 0  # not re-driven


def _dead_letter_next(host: Host) -> None:
    """Dead-letter the backlog's next message, as Service Bus does after MaxDeliveryCount."""
    with (
        ServiceBusClient.from_connection_string(host.env["ServiceBusConnection"]) as sb,
        sb.get_queue_receiver(host.env["BACKLOG_QUEUE"]) as receiver,
    ):
        (message,) = receiver.receive_messages(max_message_count=1, max_wait_time=30)
        receiver.dead_letter_message(
            message,
            reason="MaxDeliveryCountExceeded",
            error_description="Message could not be consumed after 10 delivery attempts.",
        )


def test_timer_and_poison_queue_end_a_job_past_its_deadline(host: Host) -> None:
    """A throttled job is parked; once its deadline passes, a timer invocation (the host's
    TimerInfo) moves it to the parking poison queue; that message, read from Azurite and decoded
    as the host's queue trigger does, goes to ``parking_poison``, which ends the job."""
    deadline = (datetime.now(UTC) + timedelta(seconds=20)).isoformat()
    job_id = _submit(host, "hello under a long throttle", deadline=deadline)
    faults = [host.sim.region(r).fault("throttle", count=1000, retry_after_s=60) for r in REGIONS]
    try:
        parked, _ = host.deliver("backlog_worker", host.env["BACKLOG_QUEUE"])
        assert parked["status"] == "Success", parked["exception"]
        assert _status(host, job_id)["status"] == "parked"
        poison = QueueClient.from_connection_string(
            host.env["AzureWebJobsStorage"],
            f"{host.env['PARKING_QUEUE']}-poison",
            message_decode_policy=TextBase64DecodePolicy(),
        )
        with poison:
            message = None
            limit = time.monotonic() + 60
            while message is None and time.monotonic() < limit:
                timer = host.invoke("backlog_timer", {"past_due": False})
                assert timer["function"] == "backlog_timer"
                assert timer["status"] == "Success", timer["exception"]
                assert timer["return_value"] is None
                message = _first(poison)
                if message is None:
                    time.sleep(0.5)
            assert message is not None, (
                f"the timer never moved the job to the poison queue: {_status(host, job_id)}\n"
                + "\n".join(str(x.get("message"))[:300] for x in host.logs()[-30:])
            )
            result = host.invoke(
                "parking_poison",
                {"body": message.content, "id": message.id, "dequeue_count": message.dequeue_count},
            )
            assert result["function"] == "parking_poison"
            assert result["status"] == "Success", result["exception"]
            poison.delete_message(message)
    finally:
        for region, fault in zip(REGIONS, faults):
            host.sim.region(region).clear_fault(fault)
    status = _status(host, job_id)
    assert status["status"] == "failed", status
    assert status["error"]["code"] == "deadline_exceeded", status


def test_an_unreadable_poison_message_completes(host: Host) -> None:
    result = host.invoke("parking_poison", {"body": "not a parked job", "dequeue_count": 1})
    assert result["status"] == "Success", result["exception"]


def _first(queue: QueueClient) -> Any:
    try:
        for message in queue.receive_messages(max_messages=1, visibility_timeout=30):
            return message
    except ResourceNotFoundError:  # the app creates the poison queue when it first uses it
        pass
    return None
