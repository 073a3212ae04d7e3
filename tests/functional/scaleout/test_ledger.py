"""The shared quota ledger against Azurite and a simulated region (real openai SDK).

Two gateways in one test stand for two Functions instances: their own processes' state, one
ledger table. Nothing here depends on timing: the simulator's quota minute is a real minute,
so the whole test runs inside one window, and every figure is a count.
"""

from __future__ import annotations

import asyncio

from shared.aoai import AllThrottled
from shared.pacing import TableLedgerStore
from tests.fixtures.ports import free_port

from ..aoai._helpers import chat, ctx

ONE_REGION = [
    {
        "name": "eastus2",
        "deployments": [
            {"name": "gpt-4o-prod", "model": "gpt-4o", "kind": "chat", "tpm": 2000, "rpm": 600}
        ],
    }
]
COST = 101  # "hi" (1 token) + max_tokens 100: 19 calls fit the 2,000-token minute
FIT = 2000 // COST


async def _burst(gateway, n: int) -> tuple[int, int]:
    async def one() -> str:
        try:
            await gateway.chat(chat("hi", max_tokens=100), ctx())
        except AllThrottled:
            return "throttled"
        return "ok"

    outcomes = await asyncio.gather(*(one() for _ in range(n)))
    return outcomes.count("ok"), outcomes.count("throttled")


async def test_two_instances_share_one_window_and_never_exceed_it(
    sim_factory, gateway_settings_factory, gateway_factory, azurite, unique_name
):
    sim = sim_factory(ONE_REGION)
    settings = gateway_settings_factory(
        sim,
        storage_connection=azurite.connection_string,
        health_table=unique_name("health"),
        ledger_table=unique_name("ledger"),
        # A refused lease (the window is full) answers at once: its window ends a minute later.
        # A slow Azurite on a busy machine must not count as a lost table here.
        throttle_wait_s=2.0,
        ledger_timeout_s=15.0,
    )
    first, second = gateway_factory(settings), gateway_factory(settings)
    await first.chat(chat("hi", max_tokens=100), ctx())  # learns the window's phase
    ok_1, _ = await _burst(first, 10)  # well inside the window
    ok_2, refused_2 = await _burst(second, 20)  # the rest of the window, then refusals
    ok_3, refused_3 = await _burst(first, 10)  # what is left of first's lease at most
    stats = sim.region("eastus2").stats()
    reports = [g.health_report()["ledger"] for g in (first, second)]
    assert stats["throttled"] == 0, (ok_1, ok_2, ok_3, stats, reports)  # never a 429 from Azure
    assert 1 + ok_1 + ok_2 + ok_3 == stats["served"] <= FIT  # combined, within the one window
    assert ok_1 == 10 and 0 < ok_2 < 20 and refused_2 > 0  # the second drew what was left
    assert refused_3 > 0
    rows = [r["deployments"]["deployment/eastus2/gpt-4o-prod"]["row"] for r in reports]
    assert max(row["tokens"] for row in rows) <= 2000
    members = reports[1]["deployments"]["deployment/eastus2/gpt-4o-prod"]["members"]
    assert set(members) == {first.health_report()["instance"], second.health_report()["instance"]}


async def test_without_the_ledger_two_instances_overrun_the_window(
    sim_factory, gateway_settings_factory, gateway_factory
):
    """The bug the ledger fixes, for contrast: per-instance budgets each spend the whole window."""
    sim = sim_factory(ONE_REGION)
    settings = gateway_settings_factory(sim, ledger_enabled=False, throttle_wait_s=0.0)
    first, second = gateway_factory(settings), gateway_factory(settings)
    await asyncio.gather(_burst(first, 20), _burst(second, 20))
    assert sim.region("eastus2").stats()["throttled"] > 0


async def test_unreachable_ledger_table_falls_back_to_the_conservative_share(
    sim_factory, gateway_settings_factory, gateway_factory, caplog
):
    sim = sim_factory(ONE_REGION)
    dead = (
        "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey=a2V5;"
        f"TableEndpoint=http://127.0.0.1:{free_port()}/devstoreaccount1;"
    )
    # One failed lease only holds that lease back a moment; the second in a row is the fallback.
    settings = gateway_settings_factory(
        sim, ledger_fallback_share=0.25, throttle_wait_s=5.0, ledger_timeout_s=2.0
    )
    gateway = gateway_factory(settings, ledger=TableLedgerStore(dead, "ledger", timeout_s=0.5))
    ok, refused = await _burst(gateway, 20)
    share = int(2000 * 0.25) // COST  # 4 calls: a quarter of the window, never all of it
    assert ok == share == sim.region("eastus2").stats()["served"]
    assert refused == 20 - share
    report = gateway.health_report()["ledger"]
    assert report["mode"] == "fallback" and report["stats"]["failures"] >= 2
    assert any("quota ledger unavailable" in r.getMessage() for r in caplog.records)
