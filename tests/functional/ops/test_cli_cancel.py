"""``python -m gatewayctl cancel`` against the dev server: the real function_app's
``POST /api/v1/jobs/{id}/cancel`` route over HTTP, per job rows, a stable code for each refusal."""

from __future__ import annotations

import json

import httpx

from tests.fixtures.devserver import settings_env
from tests.fixtures.gateway import settings_for_sim

from .test_cli import _cli

CHAT = {"model": "gpt-4o", "messages": [{"role": "user", "content": "later"}], "max_tokens": 8}


async def test_cli_cancel_a_queued_job(app_env, devserver, sim, azurite, unique_name, sb_broker):
    backlog = {
        "BACKLOG_QUEUE": unique_name("backlog"),
        "PARKING_QUEUE": unique_name("parked"),
        "BACKLOG_JOBS_TABLE": unique_name("jobs"),
        "BACKLOG_RESULTS_CONTAINER": unique_name("results"),
        "ServiceBusConnection": sb_broker.connection_string,
        "AzureWebJobsStorage": azurite.connection_string,
    }
    sb_broker.create_queue(backlog["BACKLOG_QUEUE"])
    app_env({**settings_env(settings_for_sim(sim)), **backlog, "GATEWAY_USAGE": "off"})
    async with httpx.AsyncClient(base_url=devserver.base_url, timeout=30) as http:
        submitted = await http.post("/v1/jobs", json={"job_id": "job-cancel-1", "request": CHAT})
        assert submitted.status_code == 202, submitted.text
        full_id = submitted.json()["id"]  # the id in its caller's namespace, as operators see it

        first = await _cli(devserver.base_url, "--json", "cancel", full_id, "job-nope")
        assert first.returncode == 0, first.stderr
        rows = {r["job_id"]: r for r in json.loads(first.stdout)["data"]}
        assert rows[full_id]["status"] == "cancelled"
        assert "404 job_not_found" in rows["job-nope"]["error"]

        status = (await http.get("/v1/jobs/job-cancel-1")).json()
        assert status["status"] == "cancelled" and status["error"]["code"] == "job_cancelled"
        again = await http.post("/v1/jobs/job-cancel-1/cancel")
        assert again.status_code == 200 and again.json()["status"] == "cancelled"
