"""The health answer's ``time`` comes from the gateway's injected clock, not from ``time``."""

from __future__ import annotations

import json

from shared.aoai import Gateway, ManualClock
from shared.api import health, health_details
from shared.settings import DeploymentConfig, GatewaySettings, RegionConfig
from tests.functional.api._asgi import body_of, make_request


class _Services:
    def __init__(self, settings: GatewaySettings, gateway: Gateway) -> None:
        self._settings = settings
        self._gateway = gateway

    def settings(self) -> GatewaySettings:
        return self._settings

    def gateway(self) -> Gateway:
        return self._gateway


async def test_health_time_is_the_gateway_clock() -> None:
    region = RegionConfig(
        name="east",
        endpoint="http://127.0.0.1:9/east",
        auth="api_key",
        api_key="k",
        models={"gpt": DeploymentConfig(deployment="d-east", tpm=60_000)},
    )
    settings = GatewaySettings(regions=[region])
    clock = ManualClock(1_234.0)
    gateway = Gateway(settings, clock=clock)
    services = _Services(settings, gateway)
    try:
        first = json.loads(
            await body_of(await health(make_request("GET", "/api/health"), services))
        )
        clock.advance(30)
        later = await health_details(make_request("GET", "/api/health/details"), services)
        second = json.loads(await body_of(later))
    finally:
        await gateway.aclose()
    assert (first["status"], first["time"]) == ("ok", 1_234.0)
    assert second["time"] == 1_264.0
