"""scripts/smoke_test.py (docs/deploy.md), run as a user runs it, against the real app on the local
stack: the dev server serving function_app.py, the simulator, Azurite and the Service Bus broker."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.fixtures.devserver import settings_env
from tests.fixtures.ports import free_port, wait_for_port

from .conftest import backlog_env

pytestmark = pytest.mark.timeout(120)
SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "smoke_test.py"


def test_smoke_script_passes_health_chat_stream_and_job(
    e2e_sim, sb_broker, azurite, unique_name, gateway_settings_factory, tmp_path
):
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GATEWAY_", "BACKLOG_"))}
    env.update(settings_env(gateway_settings_factory(e2e_sim)))
    env.update(backlog_env(sb_broker, azurite, unique_name))
    reply_queue = unique_name("replies")
    sb_broker.create_queue(reply_queue)
    log = open(tmp_path / "devserver.log", "wb")  # noqa: SIM115 - closed in finally
    proc = subprocess.Popen(
        [sys.executable, "-m", "devserver", "--port", str(port), "--log-level", "warning"],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        wait_for_port(port, timeout=20, proc=proc)
        base = f"http://127.0.0.1:{port}/api"
        smoke = subprocess.run(
            [
                sys.executable,
                str(SCRIPT),
                "--url",
                base,
                "--model",
                "gpt-4o",
                "--reply-to",
                reply_queue,
                "--wait-minutes",
                "0.5",
            ],
            env={**env, "GATEWAY_FUNCTION_KEY": "local-key"},
            capture_output=True,
            text=True,
            timeout=90,
        )
        out = smoke.stdout
        assert smoke.returncode == 0, out + smoke.stderr
        for step in ("health", "chat", "stream", "job"):
            assert f"PASS {step}:" in out, out
        assert "4 passed, 0 failed" in out
        # The job really went through Service Bus: its reply is on the reply queue.
        assert len(sb_broker.messages(reply_queue)) == 1

        # Without a key the script refuses to start; against a dead URL every step fails.
        nokey = subprocess.run(
            [sys.executable, str(SCRIPT), "--url", base],
            env={k: v for k, v in env.items() if k != "GATEWAY_FUNCTION_KEY"},
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert nokey.returncode == 2 and "function key" in nokey.stderr
        # A key on the command line is refused, without echoing it.
        on_argv = subprocess.run(
            [sys.executable, str(SCRIPT), "--url", base, "--key", "secret-on-argv"],
            env=env,
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert on_argv.returncode == 2 and "GATEWAY_FUNCTION_KEY" in on_argv.stderr
        assert "secret-on-argv" not in on_argv.stderr + on_argv.stdout
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()
