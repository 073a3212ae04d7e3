"""The shared quota ledger's loose ends (#13, second pass), against Azurite and a simulated region
(real openai SDK): identity-based storage, uncounted failures given back to the row, and
``capacity()`` from the shared view of the window.

As in ``test_ledger.py``, the simulator's quota minute is a real minute and every figure is a
count; a window that rolls over mid-test only gives the later burst more, so every bound on it
is one-sided.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import pytest
from azure.core.credentials import AzureNamedKeyCredential
from azure.identity.aio import ManagedIdentityCredential

from shared.credentials import CredentialPool, load_credential_policy
from shared.pacing import TableLedgerStore
from shared.storage import TableTarget
from testpeers.azurite import ACCOUNT, ACCOUNT_KEY
from tests.fixtures.ports import free_port

from ..aoai._helpers import chat, ctx
from .test_ledger import COST, FIT, ONE_REGION, _burst

KEY = "deployment/eastus2/gpt-4o-prod"


class _AccountKey(AzureNamedKeyCredential):
    """Azurite's account key in the pool where the app's policy puts an Entra ID credential:
    Azurite takes bearer tokens only over HTTPS, so the endpoint + credential path is driven
    with the key here; what the policy builds from the settings is checked in
    ``test_identity_based_storage_builds_the_ledger_on_the_table_endpoint``."""

    async def close(self) -> None:
        return None


def _identity_store(azurite: Any, table: str) -> TableLedgerStore:
    pool = CredentialPool(
        load_credential_policy({}), factory=lambda _: _AccountKey(ACCOUNT, ACCOUNT_KEY)
    )
    target = TableTarget(
        table,
        endpoint=f"http://127.0.0.1:{azurite.table_port}/{ACCOUNT}",
        credentials=pool,
        timeout_s=15.0,
    )
    return TableLedgerStore(None, table, target=target)


async def _until(condition: Any, what: str, deadline_s: float = 60.0) -> None:
    end = time.monotonic() + deadline_s
    while not condition():
        assert time.monotonic() < end, what
        await asyncio.sleep(0.05)


def test_identity_based_storage_builds_the_ledger_on_the_table_endpoint(
    sim_factory, gateway_settings_factory, gateway_factory
):
    """``AzureWebJobsStorage__tableServiceUri`` (+ ``__clientId``) alone used to leave the
    ledger off without a word; now it is built as the shared region state's table is."""
    sim = sim_factory(ONE_REGION)
    settings = gateway_settings_factory(
        sim,
        storage_table_uri="https://acct.table.core.windows.net/",
        storage_client_id="storage-id",
    )
    gateway = gateway_factory(settings)
    report = gateway.health_report()["ledger"]
    assert report["store"] == "TableLedgerStore" and report["mode"] == "shared"
    assert report["backend"] == {
        "kind": "table",
        "table": "gatewayledger",
        "endpoint": "https://acct.table.core.windows.net",
        "auth": {
            "mode": "managed_identity",
            "identity": "user_assigned",
            "client_id": "storage-id",
        },
    }
    assert (
        gateway.health_report()["shared_health"]["backend"]["endpoint"]
        == report["backend"]["endpoint"]
    )
    client = gateway._ledger.store._rows().client
    assert isinstance(client.credential, ManagedIdentityCredential)


def test_no_storage_turns_the_ledger_off_with_a_warning_and_says_so(
    sim_factory, gateway_settings_factory, gateway_factory, caplog
):
    sim = sim_factory(ONE_REGION)
    with caplog.at_level(logging.WARNING, logger="shared.aoai._gateway"):
        gateway = gateway_factory(gateway_settings_factory(sim))
    assert gateway.health_report()["ledger"] == {"mode": "off", "reason": "no_storage"}
    assert any("quota ledger off: no storage" in r.getMessage() for r in caplog.records)
    disabled = gateway_factory(gateway_settings_factory(sim, ledger_enabled=False))
    assert disabled.health_report()["ledger"] == {"mode": "off", "reason": "disabled"}


async def test_a_ledger_reached_by_endpoint_and_credential_is_shared_by_two_instances(
    sim_factory, gateway_settings_factory, gateway_factory, azurite, unique_name
):
    sim = sim_factory(ONE_REGION)
    table = unique_name("ledger")
    settings = gateway_settings_factory(sim, throttle_wait_s=2.0, ledger_timeout_s=15.0)
    first = gateway_factory(settings, ledger=_identity_store(azurite, table))
    second = gateway_factory(settings, ledger=_identity_store(azurite, table))
    await first.chat(chat("hi", max_tokens=100), ctx())
    ok_1, _ = await _burst(first, 10)
    ok_2, refused_2 = await _burst(second, 20)
    stats = sim.region("eastus2").stats()
    assert stats["throttled"] == 0, stats
    assert 1 + ok_1 + ok_2 == stats["served"] <= FIT and refused_2 > 0
    report = second.health_report()["ledger"]
    assert report["backend"]["endpoint"].endswith(f":{azurite.table_port}/{ACCOUNT}")
    assert set(report["deployments"][KEY]["members"]) == {
        first._ledger.instance,
        second._ledger.instance,
    }


async def test_uncounted_failures_give_the_lease_back_to_the_other_instances(
    sim_factory, gateway_settings_factory, gateway_factory, azurite, unique_name
):
    """An outage burst on one instance (502s: Azure counts none of them) leases slices of the
    window; the refunds return them to the row, so the other instance can use the window."""
    sim = sim_factory(ONE_REGION)
    settings = gateway_settings_factory(
        sim,
        storage_connection=azurite.connection_string,
        ledger_table=unique_name("ledger"),
        health_table=unique_name("health"),
        throttle_wait_s=2.0,
        ledger_timeout_s=15.0,
    )
    # Health kept apart: the outage opens the first's circuit, which the second must not adopt
    # (the region is back by the time it calls; only the window is looked at here).
    apart = settings.model_copy(update={"health_table": unique_name("health")})
    first, second = gateway_factory(settings), gateway_factory(apart)
    await first.chat(chat("hi", max_tokens=100), ctx())  # learns the window's phase
    east = sim.region("eastus2")
    fault = east.fault("error", status=502, count=1000)

    async def failing() -> None:
        try:
            await first.chat(chat("hi", max_tokens=100), ctx())
        except Exception:  # noqa: BLE001 - every call fails: only the ledger is looked at
            pass

    await asyncio.gather(*(failing() for _ in range(10)))
    east.clear_fault(fault)
    ledger = first.health_report()["ledger"]
    assert ledger["stats"]["leases"] >= 2  # the burst leased beyond the first call's slice
    await _until(
        lambda: first.health_report()["ledger"]["stats"]["returns"] >= 1,
        "the unused lease went back to the row",
    )
    await first._ledger.drain()
    returned = first.health_report()["ledger"]["stats"]["returned_tokens"]
    assert returned >= 2 * COST  # the failed calls' charges (an open circuit stops the rest)
    served_before = east.stats()["served"]
    ok_2, _ = await _burst(second, 20)
    stats = east.stats()
    assert stats["throttled"] == 0, stats
    # Nothing the outage burst leased is still held: the second gets the rest of the window.
    assert ok_2 >= FIT - served_before, (ok_2, served_before, returned)


async def test_capacity_reports_what_every_instance_leased_then_falls_back_to_local(
    sim_factory, gateway_settings_factory, gateway_factory, azurite, unique_name
):
    sim = sim_factory(ONE_REGION)
    settings = gateway_settings_factory(
        sim,
        storage_connection=azurite.connection_string,
        ledger_table=unique_name("ledger"),
        health_table=unique_name("health"),
        throttle_wait_s=2.0,
        ledger_timeout_s=15.0,
    )
    busy, timer = gateway_factory(settings), gateway_factory(settings)
    await busy.chat(chat("hi", max_tokens=100), ctx())
    await _burst(busy, 8)
    before = timer.capacity("gpt-4o")
    assert before.source == "local" and before.tokens == 2000  # it has spent nothing itself
    window = timer.health_report()["ledger"]["deployments"][KEY]["window"]
    assert window == {"source": "local", "reason": "no_current_row_read"}
    await timer.probe_regions()  # reads the ledger's rows (the timer does this before planning)
    shared = timer.capacity("gpt-4o")
    view = timer.health_report()["ledger"]["deployments"][KEY]["window"]
    if view["source"] != "ledger":  # the minute rolled over between the read and here: again
        await timer.probe_regions()
        shared = timer.capacity("gpt-4o")
        view = timer.health_report()["ledger"]["deployments"][KEY]["window"]
    assert view["source"] == "ledger" and shared.source == "ledger"
    assert view["free_tokens"] == 2000 - view["tokens_leased"]  # the timer holds no lease
    assert shared.tokens == view["free_tokens"]  # bounded by the shared view, not its own
    busy_row = busy.health_report()["ledger"]["deployments"][KEY]["row"]
    timer_row = timer.health_report()["ledger"]["deployments"][KEY]["row"]
    if busy_row["token_window"] == timer_row["token_window"]:  # no new minute in between
        assert view["tokens_leased"] == busy_row["tokens"] >= 9 * COST
        assert shared.tokens <= 2000 - 9 * COST


async def test_capacity_says_local_while_the_ledger_table_is_unreachable(
    sim_factory, gateway_settings_factory, gateway_factory
):
    sim = sim_factory(ONE_REGION)
    dead = (
        "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey=a2V5;"
        f"TableEndpoint=http://127.0.0.1:{free_port()}/devstoreaccount1;"
    )
    settings = gateway_settings_factory(sim, ledger_timeout_s=2.0, ledger_retry_s=600.0)
    timer = gateway_factory(settings, ledger=TableLedgerStore(dead, "ledger", timeout_s=0.5))
    await timer.probe_regions()  # one failed read: a slow moment, not yet the fallback
    await timer.probe_regions()  # the second in a row: the ledger is down
    report = timer.health_report()["ledger"]
    assert report["mode"] == "fallback" and report["stats"]["failures"] >= 2
    window = report["deployments"][KEY]["window"]
    assert window == {"source": "local", "reason": "ledger_unreachable"}
    capacity = timer.capacity("gpt-4o")
    assert capacity.source == "local" and capacity.deployments == 1
    # what this instance may use on its own: the conservative share, never the whole quota
    assert capacity.tokens == int(2000 * 0.1) and capacity.tokens_per_s == pytest.approx(
        2000 * 0.1 / 60
    )
