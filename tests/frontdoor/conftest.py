"""One simulator and one dev server per test module, and the two targets every framework test
runs against: the gateway (dev server) and the simulator itself. A client is built the same way
for both; only the endpoint and the key header differ (``Target``). The model names are the
simulator's deployment names, which the gateway maps to the aliases they serve."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from tests.fixtures.devserver import DevServer, settings_env, start_devserver
from tests.fixtures.gateway import settings_for_sim
from tests.fixtures.sim import SimHandle, start_sim

FUNCTION_KEY = "frontdoor-function-key"  # sent as callers do; the dev server does not check it
API_VERSION = "2024-10-21"
CHAT = "gpt-4o-prod"  # a deployment name: the simulator serves it, the gateway maps it to gpt-4o
EMBED = "embed-eastus2"


@dataclass(frozen=True)
class Target:
    """Where a client points. ``azure_endpoint`` for the Azure classes (dated routes),
    ``azure_v1_base_url`` for the v1 API, ``openai_base_url`` for the plain OpenAI classes."""

    name: str
    azure_endpoint: str
    azure_v1_base_url: str
    openai_base_url: str
    api_key: str
    headers: dict[str, str] = field(default_factory=dict)

    def openai_kwargs(self) -> dict[str, Any]:
        return {"api_key": self.api_key, "default_headers": self.headers}


@dataclass
class FrontDoor:
    sim: SimHandle
    server: DevServer

    @property
    def gateway(self) -> Target:
        base = self.server.base_url
        return Target(
            "gateway",
            azure_endpoint=base,
            azure_v1_base_url=f"{base}/openai/v1/",
            # the v1 API route, which also maps deployment names (GET /api/v1 takes aliases only)
            openai_base_url=f"{base}/openai/v1/",
            api_key="unused",
            headers={"x-functions-key": FUNCTION_KEY},
        )

    @property
    def simulator(self) -> Target:
        region = self.sim.region("eastus2")
        return Target(
            "simulator",
            azure_endpoint=region.endpoint,
            azure_v1_base_url=region.v1_base_url,
            openai_base_url=f"{region.endpoint}/v1",
            api_key=region.api_key,
        )

    def targets(self) -> tuple[Target, Target]:
        return self.gateway, self.simulator


def start_frontdoor(tmp: Any, monkeypatch: pytest.MonkeyPatch, **settings: Any) -> FrontDoor:
    """The simulator, the app settings pointing at it, and the dev server serving the app."""
    from shared import runtime

    sim = start_sim(workdir=tmp)
    try:
        for key in list(os.environ):
            if key.startswith("GATEWAY_"):
                monkeypatch.delenv(key)
        for key, value in settings_env(settings_for_sim(sim, **settings)).items():
            monkeypatch.setenv(key, value)
        runtime.reset()
        return FrontDoor(sim, start_devserver())
    except Exception:
        sim.stop()
        raise


@pytest.fixture(scope="module")
def frontdoor(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FrontDoor]:
    """One simulator (default regions) and one dev server for the whole module."""
    with pytest.MonkeyPatch.context() as monkeypatch:
        door = start_frontdoor(tmp_path_factory.mktemp("frontdoor"), monkeypatch)
        try:
            yield door
        finally:
            door.server.stop()
            door.sim.stop()


@pytest.fixture(params=["gateway", "simulator"])
def target(request: pytest.FixtureRequest, frontdoor: FrontDoor) -> Target:
    """Each test runs once against the gateway and once against the simulator."""
    for region in frontdoor.sim.regions.values():
        region.reset()
    return getattr(frontdoor, request.param)
