"""Per-model output limits (the model table): a cap over them is refused locally before any
charge, and a 400 from Azure releases its charge (real openai SDK, simulated regions)."""

from __future__ import annotations

import pytest

from shared.aoai import BadRequest
from shared.aoai._exceptions import OutputLimitExceeded

from ._helpers import chat, chat_requests, ctx

PREFER_EAST = {"eastus2": 0, "swedencentral": 1}
BIG = {"tpm": 20_000, "rpm": 600}  # gpt-4o's output limit is 16,384: a 19,000 cap fits the TPM
REGIONS = [
    {"name": "eastus2", "deployments": [{"name": "gpt-4o-prod", "model": "gpt-4o", **BIG}]},
    {"name": "swedencentral", "deployments": [{"name": "gpt4o-sweden", "model": "gpt-4o", **BIG}]},
]


def _remaining(gateway) -> int:
    report = gateway.health_report()["regions"]["eastus2"]["deployments"]["gpt-4o-prod"]
    return int(report["remaining_tokens"])


async def test_output_cap_over_the_models_limit_is_refused_before_any_charge(
    sim_factory, gateway_settings_factory, gateway_factory
):
    sim = sim_factory(REGIONS)
    gateway = gateway_factory(
        gateway_settings_factory(
            sim,
            priorities=PREFER_EAST,
            deployment_overrides={"gpt-4o-prod": BIG, "gpt4o-sweden": BIG},
        )
    )
    with pytest.raises(OutputLimitExceeded) as caught:
        await gateway.chat(chat(max_tokens=19_000), ctx())
    error = caught.value
    assert error.http_status == 400 and error.code == "max_tokens_over_model_limit"
    assert error.details() == {
        "param": "max_tokens",
        "limit": 16_384,
        "limit_name": "max output tokens",
        "requested": 19_000,
    }
    assert _remaining(gateway) == 20_000  # nothing charged
    assert chat_requests(sim.region("eastus2").stats(), "gpt-4o-prod") == 0
    # Streams too, and max_completion_tokens is named as such.
    with pytest.raises(OutputLimitExceeded) as caught:
        await gateway.open_chat_stream(
            chat(max_tokens=None, stream=True, max_completion_tokens=17_000), ctx()
        )
    assert caught.value.param == "max_completion_tokens"
    # At the limit it is sent.
    result = await gateway.chat(chat(max_tokens=16_384), ctx())
    assert result.response is not None


async def test_a_model_not_in_the_table_is_not_checked_and_azures_400_releases_the_charge(
    sim_factory, gateway_settings_factory, gateway_factory
):
    sim = sim_factory(REGIONS)
    unknown = {**BIG, "model": "some-future-model"}
    gateway = gateway_factory(
        gateway_settings_factory(
            sim,
            priorities=PREFER_EAST,
            deployment_overrides={"gpt-4o-prod": unknown, "gpt4o-sweden": unknown},
        )
    )
    with pytest.raises(BadRequest) as caught:
        await gateway.chat(chat(max_tokens=19_000), ctx())
    assert not isinstance(caught.value, OutputLimitExceeded)
    assert caught.value.upstream_code == "invalid_value" and caught.value.param == "max_tokens"
    assert chat_requests(sim.region("eastus2").stats(), "gpt-4o-prod") == 1
    assert _remaining(gateway) == 20_000  # the 400's charge was released
    assert chat_requests(sim.region("swedencentral").stats(), "gpt4o-sweden") == 0


async def test_an_override_in_the_region_table_sets_the_limit(
    sim_factory, gateway_settings_factory, gateway_factory
):
    sim = sim_factory(REGIONS)
    capped = {**BIG, "max_output_tokens": 100}
    gateway = gateway_factory(
        gateway_settings_factory(
            sim,
            priorities=PREFER_EAST,
            deployment_overrides={"gpt-4o-prod": capped, "gpt4o-sweden": capped},
        )
    )
    with pytest.raises(OutputLimitExceeded) as caught:
        await gateway.chat(chat(max_tokens=101), ctx())
    assert caught.value.limit == 100
    await gateway.chat(chat(max_tokens=100), ctx())
