"""Against an upstream that counts requests over a rolling window and sends its remaining/reset
headers only on a 429 (the simulator's ``limit_window: "rolling"``), the gateway never learns a
window phase; a load above the deployment's RPM for several windows must still cost at most
0.5 % upstream 429s, with the quota ledger on Azurite (its leases follow our own fixed
windows), also shared by two instances, and without it. Real time (the simulator's windows are
real seconds): a scaled minute of 30 s, so a request window of 5 s; every figure is a count,
read when the load has ended."""

from __future__ import annotations

import asyncio
import time

import pytest

from shared.aoai import AllThrottled, DeadlineExceeded

from ._helpers import chat, ctx

MINUTE_S = 30.0  # the request window: 5 s
RPM = 360  # 60 requests per 5-second window
WINDOWS = 5  # the load lasts this many request windows
WORKERS = 12  # callers, each calling again as soon as it is answered: above the limit
ROLLING = [
    {
        "name": "eastus2",
        "limit_window": "rolling",
        "deployments": [
            {
                "name": "gpt-4o-prod",
                "model": "gpt-4o",
                "kind": "chat",
                "tpm": 10_000_000,
                "rpm": RPM,
            }
        ],
    }
]


async def _load(gateway, seconds: float, workers: int = WORKERS) -> dict[str, int]:
    """``workers`` callers for ``seconds``: outcomes by kind."""
    outcomes = {"ok": 0, "throttled": 0, "deadline": 0}
    end = time.monotonic() + seconds

    async def caller() -> None:
        while time.monotonic() < end:
            try:
                await gateway.chat(chat("hi", max_tokens=5), ctx())
                outcomes["ok"] += 1
            except AllThrottled:
                outcomes["throttled"] += 1
                await asyncio.sleep(0.05)
            except DeadlineExceeded:
                outcomes["deadline"] += 1

    await asyncio.gather(*(caller() for _ in range(workers)))
    return outcomes


def _settings(sim, factory, **options):
    return factory(
        sim,
        throttle_wait_s=2 * MINUTE_S / 6,  # a call waits for our pacing rather than fail
        call_deadline_s=30.0,
        read_timeout_s=10.0,
        **options,
    )


async def _run(sim, gateway) -> tuple[dict[str, int], dict]:
    outcomes = await _load(gateway, WINDOWS * MINUTE_S / 6)
    return outcomes, sim.region("eastus2").stats()


def _check(outcomes: dict[str, int], stats: dict) -> None:
    requests, throttled = stats["requests"], stats["throttled"]
    limit = RPM // 6
    assert outcomes["ok"] >= (WINDOWS - 1) * limit * 0.8, (outcomes, stats)  # the load was above
    assert throttled <= 0.005 * requests, (throttled, requests, outcomes)


async def test_without_the_ledger_at_most_half_a_percent_429(
    sim_factory, gateway_settings_factory, gateway_factory
):
    sim = sim_factory(ROLLING, minute_seconds=MINUTE_S, identity=False)
    gateway = gateway_factory(_settings(sim, gateway_settings_factory, ledger_enabled=False))
    _check(*await _run(sim, gateway))


@pytest.mark.usefixtures("azurite")
async def test_with_the_ledger_at_most_half_a_percent_429(
    sim_factory, gateway_settings_factory, gateway_factory, azurite, unique_name
):
    sim = sim_factory(ROLLING, minute_seconds=MINUTE_S, identity=False)
    settings = _settings(
        sim,
        gateway_settings_factory,
        storage_connection=azurite.connection_string,
        health_table=unique_name("health"),
        ledger_table=unique_name("ledger"),
        ledger_timeout_s=15.0,  # a slow Azurite on a busy machine is not a lost table
    )
    gateway = gateway_factory(settings)
    outcomes, stats = await _run(sim, gateway)
    report = gateway.health_report()["ledger"]
    assert report["mode"] == "shared", report  # the ledger admitted: not the fallback
    assert not report["deployments"]["deployment/eastus2/gpt-4o-prod"]["phase_known"]
    _check(outcomes, stats)


async def test_two_instances_on_one_ledger_at_most_half_a_percent_429(
    sim_factory, gateway_settings_factory, gateway_factory, azurite, unique_name
):
    """Two gateways (two instances) share the deployment through the ledger, half the callers
    each: each paces its own rolling windows at its share, so their sum stays within the
    limit over any span, not only within each of our fixed windows."""
    sim = sim_factory(ROLLING, minute_seconds=MINUTE_S, identity=False)
    settings = _settings(
        sim,
        gateway_settings_factory,
        storage_connection=azurite.connection_string,
        health_table=unique_name("health"),
        ledger_table=unique_name("ledger"),
        ledger_timeout_s=15.0,
    )
    first, second = gateway_factory(settings), gateway_factory(settings)
    seconds = WINDOWS * MINUTE_S / 6
    both = await asyncio.gather(
        _load(first, seconds, WORKERS // 2), _load(second, seconds, WORKERS // 2)
    )
    outcomes = {kind: both[0][kind] + both[1][kind] for kind in both[0]}
    _check(outcomes, sim.region("eastus2").stats())
