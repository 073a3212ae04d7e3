"""`python -m devserver` runs the queue side too: POST a job on 127.0.0.1, watch its result arrive."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import httpx
import pytest

from tests.fixtures.devserver import settings_env
from tests.fixtures.ports import free_port, wait_for_port

from .conftest import backlog_env

pytestmark = pytest.mark.timeout(240)  # a busy machine loads the SDKs slowly


def test_job_over_http_through_the_real_function_app(
    e2e_sim, sb_broker, azurite, unique_name, gateway_settings_factory, tmp_path
):
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GATEWAY_", "BACKLOG_"))}
    env.update(settings_env(gateway_settings_factory(e2e_sim)))
    env.update(backlog_env(sb_broker, azurite, unique_name))
    log = open(tmp_path / "devserver.log", "wb")  # noqa: SIM115 - the child process writes it; closed after it stops
    proc = subprocess.Popen(
        [sys.executable, "-m", "devserver", "--port", str(port), "--log-level", "warning"],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        wait_for_port(port, timeout=120, proc=proc)
        base = f"http://127.0.0.1:{port}/api"
        reply_queue = unique_name("replies")
        sb_broker.create_queue(reply_queue)
        body = {
            "request": {
                "model": "gpt-4o",
                "messages": [{"role": "user", "content": "hello"}],
                "max_tokens": 8,
            },
            "reply_to": reply_queue,
        }
        accepted = httpx.post(f"{base}/v1/jobs", json=body, timeout=60)
        assert accepted.status_code == 202, accepted.text
        job_id, url = accepted.json()["id"], accepted.json()["status_url"]
        assert url == f"/api/v1/jobs/{job_id}" and accepted.headers["location"] == url
        again = httpx.post(
            f"{base}/v1/jobs", json={**body, "job_id": job_id}, timeout=60
        )  # a retry: the same job
        assert (
            again.status_code == 202
            and again.json()["id"] == job_id
            and again.json()["status_url"] == url
        )
        changed = {**body, "job_id": job_id, "request": {**body["request"], "max_tokens": 9}}
        conflict = httpx.post(f"{base}/v1/jobs", json=changed, timeout=60)
        assert conflict.status_code == 409, conflict.text
        error = conflict.json()["error"]
        assert (
            error["code"] == "job_id_conflict"
            and error["param"] == "job_id"
            and job_id in error["message"]
        )
        bad = httpx.post(f"{base}/v1/jobs", json={"request": {"model": "gpt-4o"}}, timeout=60)
        assert bad.status_code == 400 and bad.json()["error"]["param"] == "request.messages"
        unknown = httpx.post(
            f"{base}/v1/jobs", json={"request": {**body["request"], "model": "nope"}}, timeout=60
        )
        assert unknown.status_code == 404 and unknown.json()["error"]["code"] == "model_not_found"
        assert "gpt-4o" in unknown.json()["error"]["known_models"]
        assert httpx.get(f"{base}/v1/jobs/job-missing", timeout=60).status_code == 404
        status: dict = {}
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            status = httpx.get(f"http://127.0.0.1:{port}{url}", timeout=60).json()
            if status["status"] == "succeeded" and status.get("reply") == "sent":
                break
            time.sleep(0.2)
        assert status["status"] == "succeeded", status
        assert status["result"]["choices"][0]["message"]["content"]
        assert [m.correlation_id for m in sb_broker.messages(reply_queue)] == [job_id]
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()
