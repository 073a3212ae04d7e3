"""``python -m devserver --settings local.settings.json`` as ``make run`` starts it, and its pieces."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from devserver.__main__ import _runners
from devserver._settings import load_local_settings
from devserver.http import route_prefix
from tests.fixtures.devserver import settings_env
from tests.fixtures.gateway import settings_for_sim
from tests.fixtures.ports import free_port, wait_for_port

ROOT = Path(__file__).resolve().parents[3]


@pytest.mark.timeout(240)  # a busy machine starts Python and loads the SDKs slowly
def test_module_serves_the_app_with_values_from_local_settings(sim, tmp_path: Path) -> None:
    values = {"FUNCTIONS_WORKER_RUNTIME": "python", **settings_env(settings_for_sim(sim))}
    settings_file = tmp_path / "local.settings.json"
    settings_file.write_text(json.dumps({"IsEncrypted": False, "Values": values}))
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("GATEWAY_")}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "devserver",
            "--settings",
            str(settings_file),
            "--port",
            str(port),
            "--http-only",
            "--log-level",
            "warning",
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        wait_for_port(port, timeout=120, proc=proc)
        base = f"http://127.0.0.1:{port}/api"
        models = httpx.get(f"{base}/v1/models", timeout=60)
        assert [m["id"] for m in models.json()["data"]] == ["gpt-4o", "text-embedding-3-small"]
        chat = httpx.post(
            f"{base}/v1/chat/completions",
            json={
                "model": "gpt-4o",
                "messages": [{"role": "user", "content": "hi"}],
                "max_tokens": 3,
            },
            timeout=60,
        )
        assert chat.status_code == 200 and chat.headers["x-gateway-region"] == "eastus2"
        assert httpx.get(f"{base}/nope", timeout=60).status_code == 404
        assert httpx.post(f"{base}/v1/models", timeout=60).status_code == 405
    finally:
        proc.terminate()
        out, _ = proc.communicate(timeout=15)
    assert proc.returncode == 0, out.decode(errors="replace")
    assert b"Traceback" not in out


def test_local_settings_values_go_to_the_environment_without_overriding(tmp_path: Path) -> None:
    path = tmp_path / "local.settings.json"
    path.write_text(json.dumps({"IsEncrypted": False, "Values": {"A": "file", "B": "file"}}))
    env = {"A": "shell"}
    assert load_local_settings(path, env) == {"B": "file"}
    assert env == {"A": "shell", "B": "file"}
    assert load_local_settings(path, env, override=True) == {"A": "file", "B": "file"}


@pytest.mark.parametrize(
    "content", [{"Values": {"N": 1}}, {"IsEncrypted": True, "Values": {}}, {"nothing": 1}]
)
def test_bad_local_settings_are_refused(tmp_path: Path, content: dict) -> None:
    path = tmp_path / "local.settings.json"
    path.write_text(json.dumps(content))
    with pytest.raises(ValueError):
        load_local_settings(path, {})


def test_runner_modules_that_do_not_exist_yet_are_skipped() -> None:
    assert _runners(["devserver.no_such_runner"]) == []
    assert [m.__name__ for m in _runners(["json"])] == ["json"]


def test_route_prefix_comes_from_host_json(tmp_path: Path) -> None:
    assert route_prefix() == "api"
    host = tmp_path / "host.json"
    host.write_text(json.dumps({"version": "2.0", "extensions": {"http": {"routePrefix": ""}}}))
    assert route_prefix(host) == ""


def test_router_errors_use_the_json_error_shape_and_keys_never_reach_the_access_log(
    sim, app_env, devserver
) -> None:
    """Issue 10 finding 12: 404 and 405 from the dev server's router are JSON errors with a
    correlation id; a function key sent as ?code= is redacted in uvicorn's access log."""
    import logging
    import time

    app_env(settings_for_sim(sim))
    base = devserver.base_url
    missing = httpx.get(f"{base}/nope", headers={"x-correlation-id": "corr-404"}, timeout=10)
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "not_found"
    assert (
        missing.json()["error"]["correlation_id"]
        == "corr-404"
        == missing.headers["x-correlation-id"]
    )
    wrong = httpx.post(f"{base}/v1/models", timeout=10)
    assert wrong.status_code == 405 and wrong.headers["allow"] == "GET"
    error = wrong.json()["error"]
    assert error["code"] == "method_not_allowed" and error["correlation_id"]
    access = logging.getLogger("uvicorn.access")
    lines: list[str] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            lines.append(record.getMessage())

    handler, level = Collect(), access.level
    access.addHandler(handler)
    access.setLevel(logging.INFO)
    try:
        ok = httpx.get(f"{base}/v1/models?code=super-secret-function-key&x=1", timeout=10)
        assert ok.status_code == 200
        deadline = time.monotonic() + 10
        while not any("/v1/models" in line for line in lines):
            assert time.monotonic() < deadline
            time.sleep(0.05)
    finally:
        access.removeHandler(handler)
        access.setLevel(level)
    assert not any("super-secret-function-key" in line for line in lines)
    assert any("code=[redacted]" in line for line in lines)
