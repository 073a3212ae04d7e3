"""The Responses handlers with a real Gateway against the simulator: usage reaches the observers
as chat's does (non-streamed creates when they answer, streamed ones when their final event
arrives, cached input tokens included; the real usage recorder on an in-memory usage store);
per-caller limits; a stream broken mid-answer; the affinity table unreachable."""

from __future__ import annotations

import json
from typing import Any

from shared.aoai import CallOutcome, Gateway
from shared.api import responses_create
from shared.responses import InMemoryAffinityStore
from shared.usage import InMemoryUsageStore, UsageRecorder
from testpeers.gateway import settings_for_sim
from tests.functional.api._asgi import body_of, make_request

LONG = "gateway " * 700  # about 1,400 tokens: a continuation's context is then cached


class _Heard:
    def __init__(self) -> None:
        self.outcomes: list[CallOutcome] = []

    def attempt_finished(self, event: Any) -> None:
        return None

    def call_finished(self, outcome: CallOutcome) -> None:
        self.outcomes.append(outcome)


class _Services:
    def __init__(self, settings: Any, gateway: Gateway) -> None:
        self._settings, self._gateway = settings, gateway
        self._affinity = InMemoryAffinityStore()

    def settings(self) -> Any:
        return self._settings

    def gateway(self) -> Gateway:
        return self._gateway

    def response_affinity(self) -> InMemoryAffinityStore:
        return self._affinity


async def _create(services: _Services, body: dict[str, Any]) -> Any:
    request = make_request("POST", "/api/v1/responses", body, {"x-functions-key": "k"})
    return await responses_create(request, services)


async def test_usage_of_plain_and_streamed_responses(sim) -> None:
    settings = settings_for_sim(sim)
    heard, store = _Heard(), InMemoryUsageStore()
    usage = UsageRecorder(store, flush_s=3600)
    async with Gateway(settings, observers=[heard, usage]) as gateway:
        services = _Services(settings, gateway)
        first = await _create(services, {"model": "gpt-4o", "input": LONG})
        assert first.status_code == 200
        made = json.loads(await body_of(first))

        streamed = await _create(
            services,
            {
                "model": "gpt-4o",
                "input": "more",
                "previous_response_id": made["id"],
                "stream": True,
            },
        )
        events = [
            json.loads(line[len(b"data: ") :])
            for chunk in [c async for c in streamed.body_iterator]
            for line in chunk.splitlines()
            if line.startswith(b"data: ")
        ]
        final = events[-1]["response"]
        assert events[-1]["type"] == "response.completed"

    first_usage, final_usage = made["usage"], final["usage"]
    assert final_usage["input_tokens_details"]["cached_tokens"] >= 1024
    results = [o.result for o in heard.outcomes if o.operation == "responses"]
    assert len(results) == 2 and all(r is not None for r in results)
    assert [(r.usage.prompt_tokens, r.usage.completion_tokens) for r in results] == [  # type: ignore[union-attr]
        (first_usage["input_tokens"], first_usage["output_tokens"]),
        (final_usage["input_tokens"], final_usage["output_tokens"]),
    ]
    assert results[1].ttft_ms is not None  # type: ignore[union-attr]

    await usage.flush()
    (counts,) = [c for (key, _), c in store.rows.items() if key.alias == "gpt-4o"]
    assert counts.requests == 2
    assert counts.input_tokens == first_usage["input_tokens"] + final_usage["input_tokens"]
    assert counts.cached_input_tokens == final_usage["input_tokens_details"]["cached_tokens"]
    await usage.aclose()


async def test_caller_limits_apply_to_creates(sim) -> None:
    """Per-caller TPM (GATEWAY_CALLER_LIMITS) refuses a Responses create as it refuses chat."""
    from shared.callerlimits import CallerLimiter, InMemoryWindowStore
    from shared.settings import CallerLimits

    settings = settings_for_sim(sim)
    limits = CallerLimits.model_validate({"default": {"tpm": 300}})
    quotas = CallerLimiter(limits, InMemoryWindowStore())
    async with Gateway(settings, admission=quotas) as gateway:
        services = _Services(settings, gateway)
        body = {"model": "gpt-4o", "input": "hello", "max_output_tokens": 200}
        assert (await _create(services, body)).status_code == 200
        refused = await _create(services, body)
        assert refused.status_code == 429
        assert json.loads(await body_of(refused))["error"]["code"] == "caller_rate_limited"
        await quotas.aclose()


async def test_a_broken_stream_ends_with_an_error_event_and_counts_toward_the_circuit(sim) -> None:
    """Upstream resets a streamed create after three events: the caller gets those events and an
    ``error`` event; the region's circuit counts the failure, as for a chat stream's break."""
    from shared.aoai import ManualClock

    settings = settings_for_sim(sim, regions=["eastus2"])
    sim.region("eastus2").fault("reset", after_chunks=3, count=1, deployment="gpt-4o-prod")
    heard = _Heard()
    async with Gateway(settings, clock=ManualClock(), observers=[heard]) as gateway:
        services = _Services(settings, gateway)
        streamed = await _create(services, {"model": "gpt-4o", "input": "hello", "stream": True})
        events = [
            json.loads(line[len(b"data: ") :])
            for chunk in [c async for c in streamed.body_iterator]
            for line in chunk.splitlines()
            if line.startswith(b"data: ")
        ]
        assert [e["type"] for e in events] == [
            "response.created",
            "response.in_progress",
            "response.output_item.added",
            "error",
        ]
        assert events[-1]["code"] == "stream_interrupted"
        circuit = gateway.health_report()["regions"]["eastus2"]["circuit"]
        assert circuit["consecutive_failures"] == 1
    (outcome,) = [o for o in heard.outcomes if o.operation == "responses"]
    assert outcome.error is not None and outcome.result is None


class _UnreachableAffinity(InMemoryAffinityStore):
    """The affinity table's storage down (a collaborator of the handler under test)."""

    async def find(self, response_id: str) -> Any:
        raise ConnectionError("storage unreachable")


async def test_affinity_storage_down_is_a_clear_503(sim) -> None:
    settings = settings_for_sim(sim)
    async with Gateway(settings) as gateway:
        services = _Services(settings, gateway)
        services._affinity = _UnreachableAffinity()
        refused = await _create(
            services, {"model": "gpt-4o", "input": "more", "previous_response_id": "resp_x"}
        )
        assert refused.status_code == 503
        body = json.loads(await body_of(refused))
        assert body["error"]["code"] == "response_affinity_unavailable"
