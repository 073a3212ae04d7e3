"""``Gateway.capacity``: what is free now, and the sustained rates of the usable deployments."""

from __future__ import annotations

import pytest

from shared.aoai import ChatRequest, EmbeddingsRequest, Gateway, ManualClock, request_tokens
from shared.settings import DeploymentConfig, GatewaySettings, RegionConfig


def _gateway(minute_s: float = 60.0, **extra: object) -> tuple[Gateway, ManualClock]:
    regions = [
        RegionConfig(
            name=name,
            endpoint=f"http://127.0.0.1:9/{name}",
            auth="api_key",
            api_key="k",
            models={"gpt": DeploymentConfig(deployment=f"d-{name}", tpm=tpm, rpm=rpm)},
        )
        for name, tpm, rpm in (("east", 60_000, None), ("west", 30_000, 120))
    ]
    clock = ManualClock(1_000.0)
    return Gateway(
        GatewaySettings(regions=regions, quota_minute_s=minute_s, **extra), clock=clock
    ), clock


def test_rates_sum_the_usable_deployments_per_second():
    gateway, _ = _gateway()
    cap = gateway.capacity("gpt")
    assert (cap.requests, cap.tokens, cap.deployments) == (
        360 // 6 + 120 // 6,
        90_000,
        2,
    )  # burst windows bind requests now
    assert cap.requests_per_s == pytest.approx(360 / 60 + 120 / 60)
    assert cap.tokens_per_s == pytest.approx(90_000 / 60)


def test_rates_honour_the_quota_minute():
    gateway, _ = _gateway(minute_s=6.0)
    cap = gateway.capacity("gpt")
    assert cap.requests_per_s == pytest.approx(480 / 6)
    assert cap.tokens_per_s == pytest.approx(90_000 / 6)


def test_a_full_window_still_replenishes_but_a_cooling_deployment_does_not_count():
    gateway, clock = _gateway()
    east = gateway._router.deployments["deployment/east/d-east"]
    east.budget.charge(clock.now(), 60_000)  # east's tokens are used up for this minute
    cap = gateway.capacity("gpt")
    assert (cap.tokens, cap.deployments) == (30_000, 1)
    assert cap.tokens_per_s == pytest.approx(90_000 / 60)  # east's window refills at its rate
    west = gateway._router.deployments["deployment/west/d-west"]
    west.cooling_until = clock.now() + 10
    cap = gateway.capacity("gpt")
    assert (cap.requests, cap.tokens, cap.deployments) == (0, 0, 0)
    assert cap.tokens_per_s == pytest.approx(60_000 / 60) and cap.requests_per_s == pytest.approx(
        360 / 60
    )
    assert cap.retry_at is not None


def test_the_estimate_is_what_calls_are_charged():
    gateway, _ = _gateway(default_max_tokens=1000)
    chat = ChatRequest(
        model="gpt", messages=[{"role": "user", "content": "x" * 9}], max_tokens=50, n=2
    )
    assert gateway.estimate_cost(chat) == request_tokens(chat, 1000) == 3 + 100
    assert (
        gateway.estimate_cost(
            ChatRequest(model="gpt", messages=[{"role": "user", "content": "abcd"}])
        )
        == 1 + 1000
    )
    assert (
        gateway.estimate_cost(
            ChatRequest(
                model="gpt", messages=[{"role": "user", "content": "a"}], max_completion_tokens=7
            )
        )
        == 8
    )
    assert gateway.estimate_cost(EmbeddingsRequest(model="e", input=["abcde", "ab"])) == 2 + 1
    assert gateway.estimate_cost(None) == 1000
