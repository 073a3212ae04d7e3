"""Through the HTTP API with the real openai SDK: an answer whose upstream sent no usage and no
model still has both (usage estimated, marked), and an output cap over the model's limit is a
400 in OpenAI's shape before anything reaches the simulator."""

from __future__ import annotations

import openai
import pytest

from tests.functional.api.conftest import FUNCTION_KEY

PROMPT = [{"role": "user", "content": "Tell me about gateways"}]


def sdk(devserver) -> openai.OpenAI:
    return openai.OpenAI(
        base_url=f"{devserver.base_url}/v1",
        api_key="unused",
        default_headers={"x-functions-key": FUNCTION_KEY},
        max_retries=0,
    )


def test_chat_without_upstream_usage_or_model_gets_an_estimate(sim, configure, devserver) -> None:
    configure(sim, priorities={"eastus2": 0, "swedencentral": 1})
    sim.region("eastus2").fault("omit_usage", count=1)
    completion = sdk(devserver).chat.completions.create(
        model="gpt-4o", messages=PROMPT, max_tokens=10
    )
    assert completion.model == "gpt-4o-prod"
    usage = completion.usage
    assert usage is not None and usage.prompt_tokens > 0 and usage.completion_tokens > 0
    assert (usage.model_extra or {}).get("estimated") is True


def test_max_tokens_over_the_models_limit_is_a_400_before_any_call(
    sim, configure, devserver
) -> None:
    configure(sim)
    before = (
        sim.region("eastus2").stats()["requests"] + sim.region("swedencentral").stats()["requests"]
    )
    with pytest.raises(openai.BadRequestError) as caught:
        sdk(devserver).chat.completions.create(model="gpt-4o", messages=PROMPT, max_tokens=20_000)
    error = caught.value.body
    assert isinstance(error, dict)
    assert error["code"] == "max_tokens_over_model_limit"
    assert error["param"] == "max_tokens" and error["limit"] == 16_384
    after = (
        sim.region("eastus2").stats()["requests"] + sim.region("swedencentral").stats()["requests"]
    )
    assert after == before
