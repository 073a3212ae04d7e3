"""Job bodies at the edges, over HTTP through the real function app (dev server) and the real peers:
claim check past the Service Bus message size, 413 past the job limit, 400 for bodies that cannot
be stored as JSON, 503 with Retry-After while storage is unreachable (nothing written)."""

from __future__ import annotations

import json
import time
from typing import Any

import httpx
import pytest

from shared.jobs import Delivery
from shared.runtime import build_backlog
from shared.settings import load_backlog_settings
from tests.fixtures.devserver import settings_env
from tests.fixtures.ports import free_port

from .conftest import backlog_env

pytestmark = pytest.mark.timeout(90)


def _chat(content: str, **extra: Any) -> dict[str, Any]:
    return {
        "request": {
            "model": "gpt-4o",
            "messages": [{"role": "user", "content": content}],
            "max_tokens": 8,
            **extra,
        }
    }


@pytest.fixture
def jobs_app(e2e_sim, sb_broker, azurite, unique_name, gateway_settings_factory, app_env):
    def configure(**extra: str) -> dict[str, str]:
        env = {
            **settings_env(gateway_settings_factory(e2e_sim)),
            **backlog_env(sb_broker, azurite, unique_name),
            **extra,
        }
        app_env(env)
        return env

    return configure


async def test_a_job_over_the_message_size_goes_by_claim_check_and_runs(
    jobs_app, devserver, sb_broker, unique_name
):
    env = jobs_app(BACKLOG_MAX_JOB_BYTES="600000")
    reply_queue = unique_name("replies")
    sb_broker.create_queue(reply_queue)
    content = "word " * 60_000  # 300 KB: over Standard's 256 KB message
    async with httpx.AsyncClient(base_url=devserver.base_url, timeout=30) as http:
        accepted = await http.post("/v1/jobs", json={**_chat(content), "reply_to": reply_queue})
        assert accepted.status_code == 202, accepted.text
        job_id = accepted.json()["id"]
        [message] = sb_broker.messages(env["BACKLOG_QUEUE"])
        assert len(message.body) < 1024 and json.loads(message.body)["claim_check"]
        # run it through the backlog worker, as the Service Bus trigger would
        backlog = devserver.run(_backlog(env))
        try:
            outcome = devserver.run(
                backlog.process(
                    Delivery(
                        body=message.body,
                        message_id=message.message_id,
                        sequence_number=message.sequence_number,
                    )
                ),
                timeout=60,
            )
        finally:
            devserver.run(backlog.aclose())
        assert outcome == "succeeded"
        status = (await http.get(f"/v1/jobs/{job_id}")).json()
        assert status["status"] == "succeeded"
        assert status["result"]["usage"]["prompt_tokens"] > 50_000  # the whole prompt got there
        too_big = await http.post("/v1/jobs", json=_chat("word " * 130_000))
        assert too_big.status_code == 413, too_big.text
        error = too_big.json()["error"]
        assert error["code"] == "job_too_large" and "600000" in error["message"]
    assert len(sb_broker.messages(env["BACKLOG_QUEUE"])) == 1  # the 413 wrote nothing


async def _backlog(env: dict[str, str]) -> Any:
    from shared import runtime

    return build_backlog(load_backlog_settings(env), runtime.gateway())


def _nested(depth: int) -> dict[str, Any]:
    value: dict[str, Any] = {"type": "string"}
    for _ in range(depth):
        value = {"type": "object", "properties": {"a": value}}
    return value


async def test_deep_nesting_and_lone_surrogates_are_400_naming_the_field(
    jobs_app, devserver, sb_broker
):
    env = jobs_app()
    deep = _chat(
        "hi",
        response_format={
            "type": "json_schema",
            "json_schema": {"name": "deep", "schema": _nested(150)},
        },
    )
    async with httpx.AsyncClient(base_url=devserver.base_url, timeout=30) as http:
        nested = await http.post("/v1/jobs", json=deep)
        assert nested.status_code == 400, nested.text
        error = nested.json()["error"]
        assert error["code"] == "invalid_request" and "nested deeper than" in error["message"]
        assert error["param"].startswith("request.response_format.json_schema.schema")
        # a JavaScript client that cut a prompt inside an emoji: "\ud83d" alone
        raw = json.dumps(_chat("cut here \ud83d")).encode()
        assert b"\\ud83d" in raw
        lone = await http.post(
            "/v1/jobs", content=raw, headers={"content-type": "application/json"}
        )
        assert lone.status_code == 400, lone.text
        error = lone.json()["error"]
        assert error["param"] == "request.messages[0].content" and "surrogate" in error["message"]
        fine = await http.post("/v1/jobs", json=_chat("a whole emoji \U0001f600"))
        assert fine.status_code == 202
    assert len(sb_broker.messages(env["BACKLOG_QUEUE"])) == 1


async def test_storage_unreachable_is_503_with_retry_after_and_nothing_written(
    jobs_app, devserver, sb_broker, azurite
):
    dead = free_port()  # nothing listens here
    unreachable = (
        "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;"
        f"AccountKey={azurite.connection_string.split('AccountKey=')[1].split(';')[0]};"
        f"BlobEndpoint=http://127.0.0.1:{dead}/devstoreaccount1;"
        f"QueueEndpoint=http://127.0.0.1:{dead}/devstoreaccount1;"
        f"TableEndpoint=http://127.0.0.1:{dead}/devstoreaccount1;"
    )
    env = jobs_app(AzureWebJobsStorage=unreachable, BACKLOG_STORAGE_UNAVAILABLE_RETRY_S="7")
    async with httpx.AsyncClient(base_url=devserver.base_url, timeout=60) as http:
        started = time.monotonic()
        posted = await http.post("/v1/jobs", json={**_chat("hi"), "job_id": "job-storage-down"})
        assert posted.status_code == 503, posted.text
        assert posted.json()["error"]["code"] == "job_store_unavailable"
        assert posted.headers["retry-after"] == "7" and posted.headers.get("x-correlation-id")
        got = await http.get("/v1/jobs/job-storage-down")
        assert got.status_code == 503 and got.json()["error"]["code"] == "job_store_unavailable"
        assert got.headers["retry-after"] == "7"
        assert time.monotonic() - started < 45  # bounded SDK retries, not a minute per call
    assert sb_broker.messages(env["BACKLOG_QUEUE"]) == []  # nothing was enqueued


async def test_service_bus_unreachable_is_503_and_the_new_row_is_removed(
    jobs_app, devserver, azurite, unique_name
):
    dead = free_port()
    env = jobs_app(
        ServiceBusConnection=f"Endpoint=sb://127.0.0.1:{dead};SharedAccessKeyName=k;"
        "SharedAccessKey=v;UseDevelopmentEmulator=true"
    )
    async with httpx.AsyncClient(base_url=devserver.base_url, timeout=90) as http:
        posted = await http.post("/v1/jobs", json={**_chat("hi"), "job_id": "job-bus-down"})
        assert posted.status_code == 503, posted.text
        assert posted.json()["error"]["code"] == "queue_unavailable"
        assert posted.headers["retry-after"]
        missing = await http.get("/v1/jobs/job-bus-down")
        assert missing.status_code == 404  # the queued row was removed again: nothing half-way
    assert env["BACKLOG_JOBS_TABLE"]
