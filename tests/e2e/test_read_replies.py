"""docs/jobs.md, run as a reader runs it: its submit example (httpx) and its direct-enqueue example
(azure-servicebus), taken from the page itself, against the dev server serving function_app.py;
the replies read back with scripts/read_replies.py from the project's Service Bus broker (queues
as `make run` starts them), the simulator and Azurite."""

from __future__ import annotations

import ast
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.fixtures.devserver import settings_env
from tests.fixtures.ports import free_port, wait_for_port

from .conftest import backlog_env

pytestmark = pytest.mark.timeout(300)  # a busy machine loads the SDKs slowly
ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "read_replies.py"


def example(marker: str) -> str:
    """The python block of docs/jobs.md whose first line is ``# example: <marker>``."""
    text = (ROOT / "docs" / "jobs.md").read_text("utf-8")
    blocks = re.findall(r"```python\n(.*?)```", text, flags=re.S)
    found = [b for b in blocks if b.startswith(f"# example: {marker}\n")]
    assert len(found) == 1, f"docs/jobs.md has no single '# example: {marker}' block"
    return found[0]


def run(args: list[str], env: dict[str, str], timeout: float = 180) -> subprocess.CompletedProcess:
    return subprocess.run(
        args, env=env, cwd=ROOT, capture_output=True, text=True, timeout=timeout, check=False
    )


def read_reply(job_id: str, env: dict[str, str]) -> dict:
    out = run([sys.executable, str(SCRIPT), "--job-id", job_id, "--wait", "120"], env, 240)
    assert out.returncode == 0, out.stderr[-2000:]
    lines = [json.loads(line) for line in out.stdout.splitlines() if line.strip()]
    assert len(lines) == 1, out.stdout
    return lines[0]


def test_documented_submit_enqueue_and_reply_reading(
    e2e_sim, sb_azure_broker, azurite, unique_name, gateway_settings_factory, tmp_path
):
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GATEWAY_", "BACKLOG_"))}
    env.update(settings_env(gateway_settings_factory(e2e_sim)))
    env.update(backlog_env(sb_azure_broker, azurite, unique_name))
    env["BACKLOG_REPLY_QUEUES"] = '{"*": ["replies"]}'  # the default, as `make run` has it
    log = open(tmp_path / "devserver.log", "wb")  # noqa: SIM115 - closed in finally
    proc = subprocess.Popen(
        [sys.executable, "-m", "devserver", "--port", str(port), "--log-level", "warning"],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        wait_for_port(port, timeout=120, proc=proc)
        client_env = {**env, "GATEWAY_URL": f"http://127.0.0.1:{port}/api"}

        submitted = run([sys.executable, "-c", example("submit")], client_env)
        assert submitted.returncode == 0, submitted.stderr[-2000:]
        assert submitted.stdout.startswith("202 "), submitted.stdout
        full_id = ast.literal_eval(submitted.stdout.split(" ", 1)[1])["id"]  # <scope>~job-docs-1
        assert full_id.endswith("~job-docs-1")

        reply = read_reply("job-docs-1", client_env)  # the id as chosen finds it too
        assert reply["message_id"] == f"{full_id}:reply"
        assert reply["correlation_id"] == full_id
        assert reply["subject"] == "succeeded"
        assert reply["content_type"] == "application/json"
        assert reply["application_properties"] == {"job_id": full_id, "status": "succeeded"}
        body = reply["body"]
        assert body["schema_version"] == 1 and body["job_id"] == full_id
        assert body["status"] == "succeeded"
        assert body["result"]["choices"][0]["message"]["content"]

        enqueued = run([sys.executable, "-c", example("enqueue")], client_env)
        assert enqueued.returncode == 0, enqueued.stderr[-2000:]
        direct = read_reply("job-docs-2", client_env)
        assert direct["body"]["status"] == "succeeded", direct
        assert direct["body"]["result"]["object"] == "chat.completion"

        status = run([sys.executable, "-c", example("status")], client_env)
        assert status.returncode == 0, status.stderr[-2000:]
        assert status.stdout.strip() == "succeeded", status.stdout

        empty = run([sys.executable, str(SCRIPT), "--peek", "--wait", "1"], client_env)
        assert empty.returncode == 1 and empty.stdout == ""  # both replies were completed
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()
