"""The operations surface without storage: the shared region state and its clearing on the
in-memory region-state store (time from a clock the test moves), and the routes' answers over a
composition root of in-memory parts (``OpsRoot``): 409 without a shared store, 404 for an
unknown target, 400 for bad bodies, the caller limits report."""

from __future__ import annotations

import asyncio
import json
from types import SimpleNamespace
from typing import Any

import pytest
from starlette.requests import Request

from shared.aoai import InMemoryVerdictStore, Verdict
from shared.api import ops_callers, ops_clear, ops_parked_redrive, ops_state
from shared.callerlimits import CallerLimiter, CallerLimits, InMemoryWindowStore
from shared.ops import UnknownTarget, clear, shared_state
from shared.settings import GatewaySettings

NOW = 1_800_000_000.0
REGIONS = {"eastus2": ["gpt-4o-prod", "embed-prod"], "swedencentral": ["gpt-4o-swe"]}


def records(*items: tuple[str, str, float]) -> list[Verdict]:
    return [Verdict(key, state, until, NOW - 10, "instance-1") for key, state, until in items]


async def test_the_shared_state_says_which_records_are_in_force():
    store = InMemoryVerdictStore()
    await store.write(
        records(
            ("region/eastus2", "open", NOW + 30),
            ("deployment/eastus2/gpt-4o-prod", "cooling", NOW - 1),  # ran out
            ("deployment/swedencentral/gpt-4o-swe", "ok", 0.0),
        )
    )
    state = {r["key"]: r for r in await shared_state(store, now=lambda: NOW)}
    assert state["region/eastus2"]["in_force"] is True
    assert state["region/eastus2"]["seconds_left"] == 30.0
    assert state["deployment/eastus2/gpt-4o-prod"]["in_force"] is False
    assert state["deployment/eastus2/gpt-4o-prod"]["seconds_left"] == 0.0
    assert state["deployment/swedencentral/gpt-4o-swe"]["until"] is None
    assert list(state) == sorted(state)
    assert await shared_state(None) == []


async def test_clearing_a_region_clears_its_deployments_with_a_newer_record():
    store = InMemoryVerdictStore()
    await store.write(
        records(
            ("region/eastus2", "open", NOW + 30),
            ("deployment/eastus2/gpt-4o-prod", "exhausted", NOW + 3600),
            ("deployment/swedencentral/gpt-4o-swe", "cooling", NOW + 20),
        )
    )
    keys = await clear(store, REGIONS, region="eastus2", now=lambda: NOW)
    assert keys == [
        "region/eastus2",
        "deployment/eastus2/gpt-4o-prod",
        "deployment/eastus2/embed-prod",
    ]
    state = {r["key"]: r for r in await shared_state(store, now=lambda: NOW)}
    assert state["region/eastus2"]["state"] == "closed"
    assert state["deployment/eastus2/gpt-4o-prod"]["state"] == "ok"
    assert {state[k]["writer"] for k in keys} == {"ops"}
    assert all(state[k]["updated"] == NOW and not state[k]["in_force"] for k in keys)
    # the other region is untouched
    assert state["deployment/swedencentral/gpt-4o-swe"]["in_force"] is True
    assert await clear(
        store, REGIONS, deployment="swedencentral/gpt-4o-swe", now=lambda: NOW + 1
    ) == ["deployment/swedencentral/gpt-4o-swe"]


@pytest.mark.parametrize(
    "target",
    [{"region": "westus"}, {"deployment": "eastus2/nope"}, {"deployment": "eastus2"}, {}],
)
async def test_clearing_an_unknown_target_writes_nothing(target):
    store = InMemoryVerdictStore()
    with pytest.raises(UnknownTarget):
        await clear(store, REGIONS, now=lambda: NOW, **target)
    assert await store.read_all() == []


# ---------------------------------------------------------------- the routes


REGION = {
    "name": "eastus2",
    "endpoint": "https://example.openai.azure.com",
    "api_key": "k",
    "models": {
        "gpt-4o": {"deployment": "gpt-4o-prod", "tpm": 1000, "rpm": 6},
        "text-embedding-3-small": {"deployment": "embed-prod", "tpm": 1000, "rpm": 6},
    },
}


def root(**parts: Any) -> Any:
    settings = GatewaySettings(regions=[REGION], health_cache_s=4.0)
    gateway = SimpleNamespace(health_report=lambda: {"regions": {"eastus2": {}}})
    defaults: dict[str, Any] = {
        "settings": lambda: settings,
        "gateway": lambda: gateway,
        "verdict_store": lambda: None,
        "caller_limiter": lambda: None,
    }
    defaults.update(parts)
    return SimpleNamespace(**defaults)


def call(route: Any, services: Any, body: bytes = b"", method: str = "POST") -> tuple[int, Any]:
    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": body, "more_body": False}

    scope = {
        "type": "http",
        "method": method,
        "path": "/api/ops/x",
        "headers": [],
        "query_string": b"",
    }
    response = asyncio.run(route(Request(scope, receive), services))
    return response.status_code, json.loads(response.body)


def test_state_and_clear_without_a_shared_store():
    status, body = call(ops_state, root(), method="GET")
    assert status == 200 and body["shared_store"] is None and body["shared"] == []
    assert body["instance"] == {"regions": {"eastus2": {}}}
    status, body = call(ops_clear, root(), b'{"region": "eastus2"}')
    assert status == 409 and body["error"]["code"] == "no_shared_health"


def test_clear_through_the_route():
    store = InMemoryVerdictStore()
    services = root(verdict_store=lambda: store)
    status, body = call(ops_clear, services, b'{"deployment": "eastus2/gpt-4o-prod"}')
    assert status == 200
    assert body == {"cleared": ["deployment/eastus2/gpt-4o-prod"], "effective_within_s": 4.0}
    status, state = call(ops_state, services, method="GET")
    assert state["shared_store"] == "table"
    assert [r["key"] for r in state["shared"]] == ["deployment/eastus2/gpt-4o-prod"]
    status, body = call(ops_clear, services, b'{"region": "westus"}')
    assert status == 404 and body["error"]["code"] == "unknown_target"
    assert body["error"]["param"] == "region"
    for bad in (b"{", b"[1]"):
        status, body = call(ops_clear, services, bad)
        assert status == 400 and body["error"]["code"] == "invalid_json"


def test_parked_redrive_refuses_malformed_bodies_before_touching_the_backlog():
    asked: list[list[str]] = []

    class Backlog:
        async def redrive_parked(self, job_ids: list[str]) -> list[dict[str, Any]]:
            asked.append(job_ids)
            return [{"job_id": j, "redriven": j != "gone"} for j in job_ids]

    services = root(backlog=lambda: Backlog())
    for bad in (
        b"{}",
        b'{"job_ids": []}',
        b'{"job_ids": [1]}',
        b'{"job_ids": ["a"], "all": true}',
        b'{"all": true, "limit": 0}',
        b'{"all": true, "limit": true}',
    ):
        status, body = call(ops_parked_redrive, services, bad)
        assert status == 400 and body["error"]["code"] == "invalid_parameter", bad
    assert asked == []
    status, body = call(ops_parked_redrive, services, b'{"job_ids": ["a", "gone", "a"]}')
    assert status == 200 and body["redriven"] == 1
    assert asked == [["a", "gone"]]  # each job once


def test_the_callers_route_reports_limits_and_use():
    status, body = call(ops_callers, root(), method="GET")
    assert body == {"limits": None, "data": []}
    quotas = CallerLimiter(
        CallerLimits.model_validate({"default": {"tpm": 100}, "window_s": 30}),
        InMemoryWindowStore(),
        now=lambda: NOW,
    )
    asyncio.run(quotas.admit("key:a", 40, "gpt-4o"))
    status, body = call(ops_callers, root(caller_limiter=lambda: quotas), method="GET")
    assert status == 200
    assert body["limits"]["window_s"] == 30 and body["limits"]["default"]["tpm"] == 100
    assert [(r["caller"], r["window_tokens"]) for r in body["data"]] == [("key:a", 40)]
