"""Rate limits counted as Azure does: estimate charged on arrival, RPM per 10 s (scaled), headers."""

from __future__ import annotations

import math
import time

import openai
import pytest

from tests.fixtures.sim import SimHandle
from tests.sim.helpers import azure_client, v1_client

# Scaled minute: the RPM window is 1 s, the TPM window 6 s (wide enough that two back-to-back
# calls share a window on a busy machine).
MINUTE = 6.0
PROMPT = [{"role": "user", "content": "x" * 40}]  # 40 chars -> 10 estimated tokens


@pytest.fixture
def limited(sim_factory) -> SimHandle:
    regions = [
        {
            "name": "tight",
            "deployments": [
                {"name": "chat-1k", "model": "gpt-4o", "tpm": 1000},  # RPM 6 -> 1 per window
                {"name": "chat-2k", "model": "gpt-4o", "tpm": 2000, "rpm": 60},  # 10 per window
                {"name": "chat-10k", "model": "gpt-4o", "tpm": 10000},
                {"name": "embed", "model": "text-embedding-3-small", "tpm": 1000, "rpm": 60},
            ],
        }
    ]
    sim = sim_factory(regions, minute_seconds=MINUTE, identity=False)
    sim.region("tight").reset()  # windows start now
    return sim


def test_success_carries_remaining_headers_and_charges_estimate(limited: SimHandle) -> None:
    region = limited.region("tight")
    raw = azure_client(region).chat.completions.with_raw_response.create(
        model="chat-2k", messages=PROMPT, max_tokens=100
    )
    h = raw.headers
    assert h["x-ratelimit-remaining-tokens"] == str(2000 - (10 + 100))
    assert h["x-ratelimit-remaining-requests"] == "9"
    assert h["x-ratelimit-limit-tokens"] == "2000" and h["x-ratelimit-limit-requests"] == "10"
    assert float(h["x-ratelimit-reset-tokens"].rstrip("s")) <= MINUTE
    assert float(h["x-ratelimit-reset-requests"].rstrip("s")) <= MINUTE / 6
    assert "retry-after" not in h
    assert region.stats()["deployments"]["chat-2k"]["tokens_charged"] == 110


def test_default_max_tokens_is_charged_when_absent(limited: SimHandle) -> None:
    region = limited.region("tight")
    raw = v1_client(region).chat.completions.with_raw_response.create(
        model="chat-10k", messages=PROMPT
    )
    assert raw.headers["x-ratelimit-remaining-tokens"] == str(10000 - (10 + 4096))
    raw = v1_client(region).chat.completions.with_raw_response.create(
        model="chat-10k", messages=PROMPT, max_completion_tokens=50
    )
    assert raw.headers["x-ratelimit-remaining-tokens"] == str(10000 - (10 + 4096) - (10 + 50))


def test_token_limit_429(limited: SimHandle) -> None:
    region = limited.region("tight")
    client = azure_client(region)
    region.reset()  # windows start now, so both requests share them
    client.chat.completions.create(model="chat-2k", messages=PROMPT, max_tokens=1500)
    with pytest.raises(openai.RateLimitError) as err:
        client.chat.completions.create(model="chat-2k", messages=PROMPT, max_tokens=600)
    refused_at = time.monotonic()  # retry-after counts from the refusal
    h = err.value.response.headers
    body = err.value.body
    assert body["code"] == "429"
    assert body["message"].startswith(
        "Requests to the ChatCompletions_Create Operation under Azure OpenAI API version 2024-10-21 "
        "have exceeded token rate limit of your current OpenAI S0 pricing tier. Please retry after "
    )
    retry_ms = int(h["retry-after-ms"])
    assert 0 < retry_ms <= MINUTE * 1000
    assert h["retry-after"] == str(max(1, math.ceil(retry_ms / 1000)))
    assert f"Please retry after {h['retry-after']} seconds" in body["message"]
    assert h["x-ratelimit-remaining-tokens"] == str(2000 - 1510)
    assert h["x-ratelimit-remaining-requests"] in (
        "9",
        "10",
    )  # "10" if the 1 s RPM window rolled over
    assert "x-ratelimit-reset-tokens" in h and "x-ratelimit-reset-requests" in h
    stats = region.stats()
    assert stats["throttled"] == 1 and stats["failures"]["rate_limit"] == 1
    assert stats["tokens_charged"] == 1510  # refused requests are not charged
    # a smaller request still fits
    client.chat.completions.create(model="chat-2k", messages=PROMPT, max_tokens=100)
    # after the scaled minute the window is fresh
    time.sleep(max(0.0, retry_ms / 1000 - (time.monotonic() - refused_at)) + 0.05)
    client.chat.completions.create(model="chat-2k", messages=PROMPT, max_tokens=1500)


def test_request_limit_429_uses_ten_second_window_scaled(limited: SimHandle) -> None:
    region = limited.region("tight")
    client = v1_client(region)
    region.reset()  # the 1 s RPM window starts now
    client.chat.completions.create(model="chat-1k", messages=PROMPT, max_tokens=1)
    # One request per 1 s window: the next one in the same window is refused. A busy machine
    # may let the window roll over between two calls; then a later call is the refused one.
    refused: openai.RateLimitError | None = None
    for _ in range(20):
        try:
            client.chat.completions.create(model="chat-1k", messages=PROMPT, max_tokens=1)
        except openai.RateLimitError as exc:
            refused = exc
            break
    assert refused is not None, "the second request of a window was never refused"
    assert "exceeded call rate limit" in refused.body["message"]
    assert "API version v1" in refused.body["message"]
    h = refused.response.headers
    assert h["x-ratelimit-remaining-requests"] == "0"
    assert int(h["retry-after-ms"]) <= MINUTE / 6 * 1000 and h["retry-after"] == "1"
    time.sleep(int(h["retry-after-ms"]) / 1000 + 0.05)
    client.chat.completions.create(model="chat-1k", messages=PROMPT, max_tokens=1)
    assert region.stats()["deployments"]["chat-1k"]["throttled"] == 1


def test_embeddings_charge_input_estimate(limited: SimHandle) -> None:
    region = limited.region("tight")
    client = azure_client(region)
    raw = client.embeddings.with_raw_response.create(model="embed", input=["a" * 400, "b" * 400])
    assert raw.headers["x-ratelimit-remaining-tokens"] == str(1000 - 200)
    with pytest.raises(openai.RateLimitError) as err:
        client.embeddings.create(model="embed", input="c" * 4000)
    assert err.value.body["message"].startswith("Requests to the Embeddings_Create Operation")
    assert region.stats()["deployments"]["embed"]["tokens_charged"] == 200


def test_reset_clears_limits(limited: SimHandle) -> None:
    region = limited.region("tight")
    client = v1_client(region)
    region.reset()
    client.chat.completions.create(model="chat-1k", messages=PROMPT, max_tokens=1)
    with pytest.raises(openai.RateLimitError):
        client.chat.completions.create(model="chat-1k", messages=PROMPT, max_tokens=1)
    region.reset()
    assert region.stats()["requests"] == 0
    client.chat.completions.create(model="chat-1k", messages=PROMPT, max_tokens=1)
