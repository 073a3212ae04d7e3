"""The region state shared through Azure Table Storage (Azurite), and life without it."""

from __future__ import annotations

import asyncio

from tests.fixtures.ports import free_port

from ._helpers import chat, ctx

PREFER_EAST = {"eastus2": 0, "swedencentral": 1}


async def test_second_instance_skips_a_region_the_first_found_down(
    sim_factory, gateway_settings_factory, gateway_factory, azurite, unique_name
):
    sim = sim_factory()
    settings = gateway_settings_factory(
        sim,
        priorities=PREFER_EAST,
        circuit_failure_threshold=1,
        circuit_cooloff_s=30.0,
        storage_connection=azurite.connection_string,
        health_table=unique_name("health"),
    )
    east = sim.region("eastus2")
    east.fault("reset", count=1000)
    first = gateway_factory(settings)
    assert (await first.chat(chat(), ctx())).region == "swedencentral"
    await first.probe_regions()  # awaits the pending table writes (and re-confirms the outage)
    seen = east.stats()["requests"]

    second = gateway_factory(settings)
    result = await second.chat(chat(), ctx())
    assert result.region == "swedencentral" and len(result.attempts) == 1
    assert east.stats()["requests"] == seen  # the second instance never tried the dead region
    report = second.health_report()
    assert report["regions"]["eastus2"]["circuit"]["state"] == "open"
    assert (
        report["shared_health"]["store"] == "TableVerdictStore"
        and report["shared_health"]["available"]
    )


async def test_storage_down_keeps_working_per_instance(
    sim_factory, gateway_settings_factory, gateway_factory, caplog
):
    sim = sim_factory()
    dead = f"DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey=a2V5;TableEndpoint=http://127.0.0.1:{free_port()}/devstoreaccount1;"
    gateway = gateway_factory(
        gateway_settings_factory(sim, storage_connection=dead, circuit_failure_threshold=1)
    )
    sim.region("eastus2").fault("reset", count=1000)
    for _ in range(4):
        assert (await gateway.chat(chat(), ctx())).region == "swedencentral"
    # The failed table write (a task) marks the store unavailable: wait for that, not a fixed time.
    deadline = asyncio.get_running_loop().time() + 30
    while gateway.health_report()["shared_health"]["available"]:
        assert asyncio.get_running_loop().time() < deadline, "the store never failed"
        await asyncio.sleep(0.05)
    report = gateway.health_report()
    assert report["shared_health"]["available"] is False
    assert report["regions"]["eastus2"]["circuit"]["state"] == "open"
    warnings = [r for r in caplog.records if "shared health store unavailable" in r.getMessage()]
    assert len(warnings) == 1
