"""Content-filter shapes: blocked prompts (400), filtered completions (200), and the normal annotations."""

from __future__ import annotations

import openai
import pytest

from tests.fixtures.sim import SimHandle
from tests.sim.helpers import azure_client, v1_client

CATEGORIES = {"hate", "sexual", "violence", "self_harm"}


def test_blocked_prompt_is_400_content_filter(fresh: SimHandle) -> None:
    region = fresh.region("eastus2")
    with pytest.raises(openai.BadRequestError) as err:
        azure_client(region).chat.completions.create(
            model="gpt-4o-prod",
            messages=[{"role": "user", "content": "please sim_filter_prompt now"}],
        )
    body = err.value.body
    assert err.value.status_code == 400
    assert body["code"] == "content_filter" and body["param"] == "prompt"
    inner = body["innererror"]
    assert inner["code"] == "ResponsibleAIPolicyViolation"
    result = inner["content_filter_result"]
    assert set(result) >= CATEGORIES
    assert result["violence"] == {"filtered": True, "severity": "high"}
    assert result["hate"] == {"filtered": False, "severity": "safe"}
    stats = region.stats()
    assert stats["failures"]["content_filter"] == 1 and stats["served"] == 0
    assert stats["tokens_charged"] > 0  # the estimate is charged before the filter runs


def test_filtered_completion_is_200_with_finish_reason(fresh: SimHandle) -> None:
    region = fresh.region("eastus2")
    messages = [{"role": "user", "content": "SIM_FILTER_COMPLETION please"}]
    reply = azure_client(region).chat.completions.create(model="gpt-4o-prod", messages=messages)
    choice = reply.choices[0]
    assert choice.finish_reason == "content_filter"
    assert choice.model_extra["content_filter_results"]["violence"] == {
        "filtered": True,
        "severity": "high",
    }
    stats = region.stats()
    assert stats["served"] == 1 and stats["completions_filtered"] == 1


def test_filtered_completion_when_streaming_comes_in_last_choice_chunk(fresh: SimHandle) -> None:
    region = fresh.region("swedencentral")
    stream = v1_client(region).chat.completions.create(
        model="gpt4o-sweden",
        messages=[{"role": "user", "content": "SIM_FILTER_COMPLETION"}],
        stream=True,
    )
    choice_chunks = [c for c in stream if c.choices]
    last = choice_chunks[-1].choices[0]
    assert last.finish_reason == "content_filter"
    assert last.model_extra["content_filter_results"]["violence"]["filtered"] is True
    assert all(c.choices[0].finish_reason is None for c in choice_chunks[:-1])


def test_normal_responses_carry_filter_results(fresh: SimHandle) -> None:
    region = fresh.region("eastus2")
    reply = azure_client(region).chat.completions.create(
        model="gpt-4o-prod", messages=[{"role": "user", "content": "hello"}], max_tokens=4
    )
    prompt_results = reply.model_extra["prompt_filter_results"]
    assert prompt_results[0]["prompt_index"] == 0
    assert set(prompt_results[0]["content_filter_results"]) >= CATEGORIES
    choice_results = reply.choices[0].model_extra["content_filter_results"]
    assert all(choice_results[c] == {"filtered": False, "severity": "safe"} for c in CATEGORIES)
    stream = azure_client(region).chat.completions.create(
        model="gpt-4o-prod",
        messages=[{"role": "user", "content": "hello"}],
        max_tokens=4,
        stream=True,
    )
    first = next(iter(stream))
    assert first.choices == [] and first.model_extra["prompt_filter_results"]
