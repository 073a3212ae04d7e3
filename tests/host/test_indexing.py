"""Worker init and indexing through ``azure-functions-runtime``: every function of function_app.py,
with its bindings as the host reads them (settings resolved by the double, as the host does)."""

from __future__ import annotations

import json
import subprocess

import pytest

import function_app
from devserver.http import indexed_functions

from .conftest import PYTHON, ROOT, Host

pytestmark = pytest.mark.timeout(240)  # the double's start-up counts; a busy machine is slow

HTTP = {  # name: (route, methods, auth level)
    "chat_completions": ("v1/chat/completions", ["POST"], "FUNCTION"),
    "embeddings": ("v1/embeddings", ["POST"], "FUNCTION"),
    "list_models": ("v1/models", ["GET"], "FUNCTION"),
    "health": ("health", ["GET"], "ANONYMOUS"),
    "health_details": ("health/details", ["GET"], "FUNCTION"),
    "openapi": ("v1/openapi.json", ["GET"], "ANONYMOUS"),
    "azure_chat_completions": (
        "openai/deployments/{deployment}/chat/completions",
        ["POST"],
        "FUNCTION",
    ),
    "azure_embeddings": ("openai/deployments/{deployment}/embeddings", ["POST"], "FUNCTION"),
    "azure_v1_chat_completions": ("openai/v1/chat/completions", ["POST"], "FUNCTION"),
    "azure_v1_embeddings": ("openai/v1/embeddings", ["POST"], "FUNCTION"),
    "azure_v1_models": ("openai/v1/models", ["GET"], "FUNCTION"),
    "submit_job": ("v1/jobs", ["POST"], "FUNCTION"),
    "job_status": ("v1/jobs/{job_id}", ["GET"], "FUNCTION"),
    "cancel_job": ("v1/jobs/{job_id}/cancel", ["POST"], "FUNCTION"),
    "usage": ("v1/usage", ["GET"], "FUNCTION"),
    "ops_usage": ("ops/usage", ["GET"], "ADMIN"),
    "ops_state": ("ops/state", ["GET"], "ADMIN"),
    "ops_clear": ("ops/clear", ["POST"], "ADMIN"),
    "ops_parked": ("ops/parked", ["GET"], "ADMIN"),
    "ops_parked_redrive": ("ops/parked/redrive", ["POST"], "ADMIN"),
    "ops_dead_letters": ("ops/deadletters", ["GET"], "ADMIN"),
    "ops_redrive": ("ops/deadletters/redrive", ["POST"], "ADMIN"),
    "ops_callers": ("ops/callers", ["GET"], "ADMIN"),
    "ops_job_status": ("ops/jobs/{job_id}", ["GET"], "ADMIN"),
    "ops_job_cancel": ("ops/jobs/{job_id}/cancel", ["POST"], "ADMIN"),
    "responses_create": ("v1/responses", ["POST"], "FUNCTION"),
    "response_by_id": ("v1/responses/{response_id}", ["GET", "DELETE"], "FUNCTION"),
    "response_cancel": ("v1/responses/{response_id}/cancel", ["POST"], "FUNCTION"),
    "response_input_items": ("v1/responses/{response_id}/input_items", ["GET"], "FUNCTION"),
    "azure_v1_responses_create": ("openai/v1/responses", ["POST"], "FUNCTION"),
    "azure_v1_response_by_id": (
        "openai/v1/responses/{response_id}",
        ["GET", "DELETE"],
        "FUNCTION",
    ),
    "azure_v1_response_cancel": ("openai/v1/responses/{response_id}/cancel", ["POST"], "FUNCTION"),
    "azure_v1_response_input_items": (
        "openai/v1/responses/{response_id}/input_items",
        ["GET"],
        "FUNCTION",
    ),
    "azure_responses_create": ("openai/responses", ["POST"], "FUNCTION"),
    "azure_response_by_id": ("openai/responses/{response_id}", ["GET", "DELETE"], "FUNCTION"),
    "azure_response_cancel": ("openai/responses/{response_id}/cancel", ["POST"], "FUNCTION"),
    "azure_response_input_items": (
        "openai/responses/{response_id}/input_items",
        ["GET"],
        "FUNCTION",
    ),
}


def test_init_reports_the_runtime_and_its_http_server(host: Host) -> None:
    seen = host.functions()
    assert seen["worker_metadata"]["runtimeName"] == "python"
    assert seen["worker_metadata"]["runtimeVersion"] == "3.13"
    # The FastAPI extension imported at indexing turns on the worker's own HTTP server.
    assert seen["capabilities"]["HttpUri"].startswith("http://127.0.0.1:")
    assert seen["capabilities"]["RequiresRouteParameters"] == "true"


def test_every_function_is_indexed_with_the_bindings_the_app_declares(host: Host) -> None:
    seen = {f["name"]: f for f in host.functions()["functions"]}
    # repeatable (the dev server may have indexed the app in this process already)
    declared = {f.get_function_name(): f for f in indexed_functions(function_app.app)}
    assert set(seen) == set(declared)
    assert set(seen) == set(HTTP) | {
        "backlog_worker",
        "backlog_dead_letters",
        "backlog_timer",
        "parking_poison",
    }
    for name, function in declared.items():  # azure-functions 2.x on 3.13 == 1.x on 3.11
        assert seen[name]["raw_bindings"] == [json.loads(b) for b in function.get_raw_bindings()]
    ids = [f["function_id"] for f in seen.values()]
    assert len(set(ids)) == len(ids)


def test_http_bindings_as_the_host_reads_them(host: Host) -> None:
    seen = {f["name"]: f["bindings"] for f in host.functions()["functions"]}
    for name, (route, methods, auth) in HTTP.items():
        trigger, output = seen[name]
        assert trigger == {
            "direction": "IN",
            "type": "httpTrigger",
            "name": "req",
            "methods": methods,
            "authLevel": auth,
            "route": route,
        }, name
        assert output == {"direction": "OUT", "type": "http", "name": "$return"}, name
        assert not route.lower().startswith("admin"), f"{name}: the host reserves admin/"


def test_queue_bindings_resolve_from_app_settings(host: Host) -> None:
    env = host.env
    seen = {f["name"]: f for f in host.functions()["functions"]}
    worker = seen["backlog_worker"]["bindings"]
    assert worker == [
        {
            "direction": "IN",
            "type": "serviceBusTrigger",
            "name": "msg",
            "connection": "ServiceBusConnection",
            "queueName": env["BACKLOG_QUEUE"],
        }
    ]
    assert seen["backlog_worker"]["raw_bindings"][0]["queueName"] == "%BACKLOG_QUEUE%"
    dlq = seen["backlog_dead_letters"]["bindings"][0]
    assert dlq["type"] == "serviceBusTrigger" and dlq["connection"] == "ServiceBusConnection"
    assert dlq["queueName"] == f"{env['BACKLOG_QUEUE']}/$DeadLetterQueue"
    timer = seen["backlog_timer"]["bindings"][0]
    assert timer["type"] == "timerTrigger" and timer["name"] == "timer"
    assert timer["schedule"] == env["RETRY_TIMER_SCHEDULE"]
    assert timer["runOnStartup"] is False
    poison = seen["parking_poison"]["bindings"][0]
    assert poison["type"] == "queueTrigger" and poison["connection"] == "AzureWebJobsStorage"
    assert poison["queueName"] == f"{env['PARKING_QUEUE']}-poison"
    for name in ("backlog_worker", "backlog_dead_letters", "parking_poison"):
        connection = seen[name]["bindings"][0]["connection"]  # a setting name, or its __ prefix
        assert connection in env or any(k.startswith(f"{connection}__") for k in env), name


def test_a_missing_setting_fails_indexing_as_the_host_does(host: Host) -> None:
    env = {k: v for k, v in host.env.items() if k != "PARKING_QUEUE"}
    done = subprocess.run(
        [str(PYTHON), "-m", "funchost", "--port", "9", "--app-dir", str(ROOT)],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert done.returncode != 0
    assert "'%PARKING_QUEUE%' does not resolve to a value" in done.stderr, done.stderr[-3000:]
