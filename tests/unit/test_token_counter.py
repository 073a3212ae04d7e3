"""One per-caller token counter: ``CallerTokenCounter`` reads a finished call's tokens once
and feeds usage accounting (``UsageRecorder``) and the per-caller monthly limits
(``CallerLimiter``); the composition root registers it as the only token-counting observer."""

from __future__ import annotations

from dataclasses import replace

import pytest

from shared import runtime
from shared.aoai import CallContext, CallOutcome, CallResult, Usage
from shared.callerlimits import CallerLimiter, InMemoryWindowStore
from shared.settings import CallerLimit, CallerLimits
from shared.usage import CallerTokenCounter, UsageRecorder, caller_tokens, hour_of

NOW = 1_796_000_000.0
CALLER = "key:abc"


def _outcome(caller: str | None, prompt: int, completion: int, cached: int = 0) -> CallOutcome:
    result = CallResult(
        alias="gpt-4o",
        region="eastus2",
        deployment="gpt-4o-prod",
        attempts=(),
        latency_ms=1.0,
        response={"usage": {"prompt_tokens_details": {"cached_tokens": cached}}},
        usage=Usage(prompt, completion, prompt + completion),
    )
    return CallOutcome(
        operation="chat",
        ctx=CallContext("c1", caller=caller),
        alias="gpt-4o",
        attempts=(),
        latency_ms=1.0,
        result=result,
    )


async def test_one_counter_feeds_usage_and_the_monthly_limits():
    usage = UsageRecorder(None, now=lambda: NOW)
    limits = CallerLimits(callers={CALLER: CallerLimit(monthly_tokens=1000)})
    quotas = CallerLimiter(limits, InMemoryWindowStore(), now=lambda: NOW)
    counter = CallerTokenCounter([usage, quotas])

    counter.call_finished(_outcome(CALLER, 30, 12, cached=10))
    counter.call_finished(_outcome(CALLER, 5, 3))
    counter.call_finished(_outcome(None, 7, 1))  # anonymous: usage only (no monthly limit)

    rows = dict(await usage.read(hour_of(NOW), hour_of(NOW)))
    mine = next(counts for key, counts in rows.items() if key.caller == CALLER)
    assert (mine.requests, mine.input_tokens, mine.cached_input_tokens, mine.output_tokens) == (
        2,
        35,
        10,
        15,
    )
    assert any(key.caller == "anonymous" for key in rows)
    assert await quotas.monthly_used(CALLER) == 50  # 42 + 8, as Azure's total_tokens
    await quotas.aclose()
    await usage.aclose()


async def test_the_composition_root_registers_one_counting_observer(monkeypatch):
    monkeypatch.setenv(
        "GATEWAY_REGIONS",
        '[{"name": "eastus2", "endpoint": "https://contoso-eus2.openai.azure.com/", '
        '"models": {"gpt-4o": {"deployment": "gpt-4o-prod", "tpm": 30000}}}]',
    )
    monkeypatch.setenv("GATEWAY_CALLER_LIMITS", '{"default": {"monthly_tokens": 1000}}')
    for name in ("AzureWebJobsStorage", "GATEWAY_STORAGE_CONNECTION"):
        monkeypatch.delenv(name, raising=False)
    runtime.reset()
    try:
        observers = runtime._observers(runtime.settings())
        counters = [o for o in observers if isinstance(o, CallerTokenCounter)]
        assert len(counters) == 1
        assert not any(isinstance(o, (UsageRecorder, CallerLimiter)) for o in observers)
        kinds = {type(s) for s in counters[0].sinks}
        assert CallerLimiter in kinds
    finally:
        await runtime.aclose()


@pytest.fixture(autouse=True)
def _no_app_settings(monkeypatch):
    import os

    for key in list(os.environ):
        if key.startswith(("GATEWAY_", "AzureWebJobsStorage")):
            monkeypatch.delenv(key)


def _reporting(usage: dict) -> CallOutcome:
    outcome = _outcome(CALLER, 20, 50)
    assert outcome.result is not None
    return replace(outcome, result=replace(outcome.result, response={"usage": usage}))


def test_reasoning_tokens_are_counted_for_chat_and_responses_as_azure_reports_them():
    chat = caller_tokens(
        _reporting(
            {
                "prompt_tokens_details": {"cached_tokens": 8},
                "completion_tokens_details": {"reasoning_tokens": 30},
            }
        )
    )
    assert chat is not None
    assert (chat.counts.cached_input_tokens, chat.counts.reasoning_output_tokens) == (8, 30)
    responses = caller_tokens(
        _reporting(
            {
                "input_tokens_details": {"cached_tokens": 4},
                "output_tokens_details": {"reasoning_tokens": 99},  # above the output: clamped
            }
        )
    )
    assert responses is not None
    assert (responses.counts.cached_input_tokens, responses.counts.reasoning_output_tokens) == (
        4,
        50,
    )
