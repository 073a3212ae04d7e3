"""``python -m gatewayctl`` against the dev server (the real function_app over HTTP): help,
tables, clearing a region, caller limits and usage; errors exit 1 with the API's message."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path

from shared import runtime
from shared.aoai import CallContext, ChatRequest
from tests.fixtures.devserver import settings_env
from tests.fixtures.gateway import settings_for_sim

ROOT = Path(__file__).resolve().parents[3]


async def _cli(base_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "GATEWAY_MASTER_KEY": "local-master-key", "PYTHONPATH": str(ROOT)}
    return await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "gatewayctl", "--url", base_url, *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


async def test_cli_state_clear_callers_usage(app_env, devserver, sim, azurite, unique_name):
    settings = settings_for_sim(
        sim,
        storage_connection=azurite.connection_string,
        health_table=unique_name("h").replace("-", ""),
    )
    app_env(
        {
            **settings_env(settings),
            "GATEWAY_USAGE_TABLE": unique_name("u").replace("-", ""),
            "GATEWAY_CALLER_TABLE": unique_name("c").replace("-", ""),
            "GATEWAY_CALLER_LIMITS": json.dumps(
                {
                    "default": {"tpm": 100000},
                    "callers": {"principal:cli": {"tpm": 5000, "priority": 2}},
                }
            ),
            "GATEWAY_PRICES": json.dumps({"prices": {"gpt-4o": {"input": 2.5, "output": 10}}}),
        }
    )
    request = ChatRequest(
        model="gpt-4o", messages=[{"role": "user", "content": "cli"}], max_tokens=8
    )
    devserver.run(runtime.gateway().chat(request, CallContext("cli-1", caller="principal:cli")))

    helped = await _cli(devserver.base_url, "--help")
    assert (
        helped.returncode == 0
        and "clear" in helped.stdout
        and "GATEWAY_MASTER_KEY" in helped.stdout
    )

    state = await _cli(devserver.base_url, "state")
    assert state.returncode == 0, state.stderr
    assert (
        "REGION" in state.stdout and "eastus2" in state.stdout and "swedencentral" in state.stdout
    )

    cleared = await _cli(devserver.base_url, "clear", "--region", "eastus2")
    assert cleared.returncode == 0, cleared.stderr
    assert "region/eastus2" in cleared.stdout
    after = await _cli(devserver.base_url, "--json", "state")
    shared = {r["key"]: r for r in json.loads(after.stdout)["shared"]}
    assert (
        shared["region/eastus2"]["state"] == "closed"
        and shared["region/eastus2"]["writer"] == "ops"
    )

    wrong = await _cli(devserver.base_url, "clear", "--region", "atlantis")
    assert wrong.returncode == 1 and "unknown_target" in wrong.stderr and "atlantis" in wrong.stderr

    callers = await _cli(devserver.base_url, "callers")
    assert callers.returncode == 0, callers.stderr
    line = next(x for x in callers.stdout.splitlines() if x.startswith("principal:cli"))
    assert "5000" in line

    usage = await _cli(devserver.base_url, "usage", "--group-by", "caller,alias")
    assert usage.returncode == 0, usage.stderr
    assert "principal:cli" in usage.stdout and "TOTAL" in usage.stdout
    as_csv = await _cli(devserver.base_url, "usage", "--csv")
    assert as_csv.stdout.splitlines()[0].startswith("caller,requests,input_tokens")


async def test_cli_unpark_reports_per_job(app_env, devserver, sim, azurite, unique_name, sb_broker):
    """``unpark`` through the dev server: a job that is not parked is reported, not an error;
    ``--all`` with nothing parked re-drives nothing; no job given is a usage error.
    (Re-driving a really parked job: tests/e2e/test_ops.py.)"""
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

    one = await _cli(devserver.base_url, "unpark", "job-nope")
    assert one.returncode == 0, one.stderr
    assert "re-driven now: 0" in one.stdout and "unknown" in one.stdout
    every = await _cli(devserver.base_url, "--json", "unpark", "--all", "--limit", "10")
    assert every.returncode == 0, every.stderr
    assert json.loads(every.stdout) == {"object": "list", "redriven": 0, "data": []}
    bad = await _cli(devserver.base_url, "unpark", "--all", "--limit", "0")
    assert bad.returncode == 1 and "invalid_parameter" in bad.stderr
    none = await _cli(devserver.base_url, "unpark")
    assert none.returncode == 2 and "--all" in none.stderr
