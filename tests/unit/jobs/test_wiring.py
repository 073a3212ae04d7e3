"""What the Functions host indexes for the backlog, and the dev server's timer schedule parser."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from devserver.http import indexed_functions
from devserver.queues import TimerSchedule, resolve


def _bindings() -> dict[str, list[dict]]:
    import function_app

    return {
        f.get_function_name(): [json.loads(b) for b in f.get_raw_bindings()]
        for f in indexed_functions(function_app.app)
    }


def test_backlog_bindings_as_the_host_sees_them():
    b = _bindings()
    assert b["backlog_worker"][0] == {
        "direction": "IN",
        "type": "serviceBusTrigger",
        "name": "msg",
        "connection": "ServiceBusConnection",
        "queueName": "%BACKLOG_QUEUE%",
    }
    assert b["backlog_dead_letters"][0]["queueName"] == "%BACKLOG_QUEUE%/$DeadLetterQueue"
    assert b["backlog_dead_letters"][0]["connection"] == "ServiceBusConnection"
    assert b["backlog_timer"][0] == {
        "direction": "IN",
        "type": "timerTrigger",
        "name": "timer",
        "schedule": "%RETRY_TIMER_SCHEDULE%",
        "runOnStartup": False,
    }
    assert b["parking_poison"][0] == {
        "direction": "IN",
        "type": "queueTrigger",
        "name": "msg",
        "queueName": "%PARKING_QUEUE%-poison",
        "connection": "AzureWebJobsStorage",
    }
    submit, status = b["submit_job"][0], b["job_status"][0]
    assert (submit["route"], submit["methods"], submit["authLevel"]) == (
        "v1/jobs",
        ["POST"],
        "FUNCTION",
    )
    assert (status["route"], status["methods"], status["authLevel"]) == (
        "v1/jobs/{job_id}",
        ["GET"],
        "FUNCTION",
    )
    cancel = b["cancel_job"][0]
    assert (cancel["route"], cancel["methods"], cancel["authLevel"]) == (
        "v1/jobs/{job_id}/cancel",
        ["POST"],
        "FUNCTION",
    )


def test_importing_function_app_does_not_load_the_storage_or_bus_sdks():
    import subprocess
    import sys

    code = "import sys, function_app; print(sorted(m for m in sys.modules if m.startswith(('azure.servicebus', 'azure.data', 'azure.storage'))))"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert out == "[]"


def test_timer_schedule_every_n_seconds_and_minutes():
    start = datetime(2026, 1, 1, 10, 0, 7, 500000, tzinfo=UTC)
    assert TimerSchedule.parse("*/30 * * * * *").next_after(start) == datetime(
        2026, 1, 1, 10, 0, 30, tzinfo=UTC
    )
    assert TimerSchedule.parse("0 */5 * * * *").next_after(start) == datetime(
        2026, 1, 1, 10, 5, 0, tzinfo=UTC
    )
    for bad in ("*/30 * * * *", "0 0 12 * * MON", "abc * * * * *"):
        with pytest.raises(ValueError):
            TimerSchedule.parse(bad)


def test_binding_expressions_resolve_from_settings():
    env = {"BACKLOG_QUEUE": "work", "PARKING_QUEUE": "parked"}
    assert resolve("%BACKLOG_QUEUE%/$DeadLetterQueue", env) == "work/$DeadLetterQueue"
    assert resolve("%PARKING_QUEUE%-poison", env) == "parked-poison"
    with pytest.raises(KeyError, match="RETRY_TIMER_SCHEDULE"):
        resolve("%RETRY_TIMER_SCHEDULE%", env)
