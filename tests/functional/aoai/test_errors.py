"""Typed errors, managed identity and plain OpenAI against simulated regions (real openai SDK)."""

from __future__ import annotations

import asyncio

import pytest

from shared.aoai import AuthFailed, BadRequest, ContentFiltered, DeploymentNotFound, FailureKind

from ._helpers import chat, ctx

PREFER_EAST = {"eastus2": 0, "swedencentral": 1}


async def test_content_filter_is_typed_and_never_failed_over(
    sim_factory, gateway_settings_factory, gateway_factory
):
    sim = sim_factory()
    gateway = gateway_factory(gateway_settings_factory(sim, priorities=PREFER_EAST))
    with pytest.raises(ContentFiltered) as caught:
        await gateway.chat(chat("please SIM_FILTER_PROMPT now"), ctx())
    assert "violence" in caught.value.filtered_categories
    assert caught.value.categories["violence"]["severity"] == "high"
    assert sim.region("swedencentral").stats()["requests"] == 0
    # A filtered completion is a 200, reported as such.
    result = await gateway.chat(chat("SIM_FILTER_COMPLETION"), ctx())
    assert result.finish_reason == "content_filter" and result.content_filtered


async def test_other_400_passes_through_unretried(
    sim_factory, gateway_settings_factory, gateway_factory
):
    sim = sim_factory()
    # The gateway's own checks must not fire first: request_too_large (a big quota) and the
    # model table's output limit (a model it does not know).
    big = {"tpm": 20_000_000, "model": "a-model-not-in-the-table"}
    gateway = gateway_factory(
        gateway_settings_factory(
            sim,
            priorities=PREFER_EAST,
            deployment_overrides={"gpt-4o-prod": big, "gpt4o-sweden": big},
        )
    )
    with pytest.raises(BadRequest) as caught:
        await gateway.chat(chat(max_tokens=5_000_000), ctx())
    assert caught.value.message and not isinstance(caught.value, ContentFiltered)
    assert sim.region("swedencentral").stats()["requests"] == 0


async def test_401_with_shared_credentials_is_not_retried_elsewhere(
    sim_factory, gateway_settings_factory, gateway_factory
):
    sim = sim_factory()
    settings = gateway_settings_factory(
        sim, priorities=PREFER_EAST, api_keys={"eastus2": "wrong", "swedencentral": "wrong"}
    )
    gateway = gateway_factory(settings)
    with pytest.raises(AuthFailed) as caught:
        await gateway.chat(chat(), ctx())
    message = str(caught.value)
    assert "eastus2" in message and "api key" in message
    # Issue 10 finding 11: key auth gets key advice (rejected or rotated), not the RBAC role.
    assert "rotated" in message and "Cognitive Services OpenAI User" not in message
    assert sim.region("swedencentral").stats()["requests"] == 0


async def test_401_is_retried_on_a_region_with_other_credentials(
    sim_factory, gateway_settings_factory, gateway_factory
):
    sim = sim_factory()
    gateway = gateway_factory(
        gateway_settings_factory(sim, priorities=PREFER_EAST, api_keys={"eastus2": "wrong"})
    )
    result = await gateway.chat(chat(), ctx())
    assert [(a.region, a.outcome) for a in result.attempts] == [
        ("eastus2", FailureKind.AUTH),
        ("swedencentral", None),
    ]


async def test_404_names_region_and_deployment_and_the_deployment_is_skipped(
    sim_factory, gateway_settings_factory, gateway_factory
):
    sim = sim_factory()
    both_wrong = gateway_settings_factory(
        sim,
        deployment_overrides={
            "gpt-4o-prod": {"deployment": "gpt-4o"},
            "gpt4o-sweden": {"deployment": "gpt-4o-se"},
        },
    )
    with pytest.raises(DeploymentNotFound) as caught:
        await gateway_factory(both_wrong).chat(chat(), ctx())
    assert caught.value.region in str(caught.value) and caught.value.deployment in str(caught.value)
    assert caught.value.deployment in ("gpt-4o", "gpt-4o-se")

    one_wrong = gateway_settings_factory(
        sim, priorities=PREFER_EAST, deployment_overrides={"gpt-4o-prod": {"deployment": "gpt-4o"}}
    )
    gateway = gateway_factory(one_wrong)
    first = await gateway.chat(chat(), ctx())
    assert [a.outcome for a in first.attempts] == [FailureKind.NOT_FOUND, None]
    not_found = sim.region("eastus2").stats()["failures"]["not_found"]
    for _ in range(3):
        assert (await gateway.chat(chat(), ctx())).region == "swedencentral"
    assert (
        sim.region("eastus2").stats()["failures"]["not_found"] == not_found
    )  # remembered, not retried


async def test_managed_identity_with_a_token_refresh_mid_run(
    sim_factory, gateway_settings_factory, gateway_factory, monkeypatch
):
    sim = sim_factory()
    for key, value in sim.identity.env().items():
        monkeypatch.setenv(key, value)
    sim.identity.set_mode(ttl_s=1)
    gateway = gateway_factory(
        gateway_settings_factory(sim, auth="managed_identity", api_style="dated")
    )
    v1 = gateway_factory(gateway_settings_factory(sim, auth="managed_identity"))
    for _ in range(3):
        assert (await gateway.chat(chat(), ctx())).response["choices"]
        assert (await v1.chat(chat(), ctx())).response["choices"]
        await asyncio.sleep(0.7)
    issued = sim.identity.stats()["tokens_issued"]
    assert issued >= 3  # the 1 s tokens were refreshed while the run went on, with no failed call
    totals = sum(sim.region(n).stats()["failures"]["auth"] for n in ("eastus2", "swedencentral"))
    assert totals == 0


async def test_managed_identity_without_the_role_names_identity_and_role(
    sim_factory, gateway_settings_factory, gateway_factory, monkeypatch
):
    sim = sim_factory()
    for key, value in sim.identity.env().items():
        monkeypatch.setenv(key, value)
    sim.identity.set_mode(without_role=True)
    gateway = gateway_factory(
        gateway_settings_factory(sim, auth="managed_identity", priorities=PREFER_EAST)
    )
    with pytest.raises(AuthFailed) as caught:
        await gateway.chat(chat(), ctx())
    assert caught.value.status in (401, 403)
    assert "system-assigned managed identity" in str(
        caught.value
    ) and "Cognitive Services OpenAI User" in str(caught.value)
    assert sim.region("swedencentral").stats()["requests"] == 0


async def test_plain_openai_region_runs_the_same_code(
    sim_factory, gateway_settings_factory, gateway_factory
):
    sim = sim_factory()
    gateway = gateway_factory(gateway_settings_factory(sim, auth="openai"))
    result = await gateway.chat(chat(), ctx())
    assert result.response["choices"][0]["message"]["content"]
