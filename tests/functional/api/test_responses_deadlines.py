"""Non-streamed Responses creates get chat's first-byte and idle deadlines: the handlers (and the
backlog's ``create_response``) with a real Gateway against the simulator and its hang faults.
Upstream, such a create is sent as a stream and answered with its final response object, so a
hung region is left at the first-byte deadline (not the read timeout): a continuation pinned to
it is refused with 503 ``response_region_unavailable``, a ``store: false`` create fails over. The
answer is the very object the region stored.

Elapsed times are wall-clock with wide margins: the first-byte deadline is 1 s, the read timeout
30 s, and the bound asserted 15 s (the point is far below the read timeout)."""

from __future__ import annotations

import json
import time
from typing import Any

import httpx

from shared.aoai import CallContext, FailureKind, Gateway, UpstreamUnavailable
from shared.api import responses_create
from shared.responses import InMemoryAffinityStore, ResponsesRequest, create_response
from testpeers.gateway import settings_for_sim
from tests.functional.api._asgi import body_of, make_request

PREFER_EAST = {"eastus2": 0, "swedencentral": 1}
SLOW = {"read_timeout_s": 30.0, "call_deadline_s": 60.0, "first_byte_timeout_s": 1.0}
BOUND_S = 15.0


class _Heard:
    def __init__(self) -> None:
        self.outcomes: list[Any] = []

    def attempt_finished(self, event: Any) -> None:
        return None

    def call_finished(self, outcome: Any) -> None:
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


async def _create(services: _Services, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    request = make_request("POST", "/api/v1/responses", body, {"x-functions-key": "k"})
    response = await responses_create(request, services)
    return response.status_code, json.loads(await body_of(response))


async def test_a_pinned_continuation_on_a_hung_region_is_refused_at_the_first_byte_deadline(
    sim,
) -> None:
    settings = settings_for_sim(sim, priorities=PREFER_EAST, hedge_enabled=False, **SLOW)
    async with Gateway(settings) as gateway:
        services = _Services(settings, gateway)
        status, first = await _create(services, {"model": "gpt-4o", "input": "hello"})
        assert status == 200
        home = await services.response_affinity().find(first["id"])
        assert home is not None and home.region == "eastus2"

        sim.region("eastus2").fault("hang", duration_s=60)
        started = time.monotonic()
        status, refused = await _create(
            services,
            {"model": "gpt-4o", "input": "again", "previous_response_id": first["id"]},
        )
        elapsed = time.monotonic() - started
        sim.region("eastus2").reset()
    assert status == 503
    assert refused["error"]["code"] == "response_region_unavailable"
    assert "eastus2" in refused["error"]["message"]
    assert elapsed < BOUND_S  # the first-byte deadline (1 s), not the read timeout (30 s)


async def test_a_store_false_create_on_a_hung_region_fails_over(sim) -> None:
    settings = settings_for_sim(sim, priorities=PREFER_EAST, hedge_enabled=False, **SLOW)
    heard = _Heard()
    async with Gateway(settings, observers=[heard]) as gateway:
        services = _Services(settings, gateway)
        sim.region("eastus2").fault("hang", duration_s=60)
        started = time.monotonic()
        status, made = await _create(
            services, {"model": "gpt-4o", "input": "hello", "store": False}
        )
        elapsed = time.monotonic() - started
        sim.region("eastus2").reset()
    assert status == 200 and made["status"] == "completed"
    assert elapsed < BOUND_S
    (outcome,) = [o for o in heard.outcomes if o.operation == "responses"]
    assert outcome.result.region == "swedencentral"
    assert [a.outcome for a in outcome.result.attempts] == [FailureKind.TIMEOUT, None]
    assert await services.response_affinity().find(made["id"]) is None  # store: false


async def test_a_create_silent_mid_answer_fails_over_at_the_idle_deadline(sim) -> None:
    settings = settings_for_sim(
        sim, priorities=PREFER_EAST, hedge_enabled=False, idle_timeout_s=1.0, **SLOW
    )
    heard = _Heard()
    async with Gateway(settings, observers=[heard]) as gateway:
        services = _Services(settings, gateway)
        sim.region("eastus2").fault("hang", after_chunks=3, count=1, deployment="gpt-4o-prod")
        started = time.monotonic()
        status, made = await _create(services, {"model": "gpt-4o", "input": "hello"})
        elapsed = time.monotonic() - started
        sim.region("eastus2").reset()
    assert status == 200 and made["status"] == "completed"
    assert elapsed < BOUND_S
    (outcome,) = [o for o in heard.outcomes if o.operation == "responses"]
    assert [a.outcome for a in outcome.result.attempts] == [FailureKind.TIMEOUT, None]
    home = await services.response_affinity().find(made["id"])
    assert home is not None and home.region == "swedencentral"


async def test_the_answer_is_the_object_the_region_stored(sim) -> None:
    """Completed and incomplete (cut at max_output_tokens) answers, each the same JSON object as
    the simulator's stored response, read back from the region directly."""
    settings = settings_for_sim(sim, regions=["eastus2"])
    region = sim.region("eastus2")
    async with Gateway(settings) as gateway:
        services = _Services(settings, gateway)
        bodies = [
            {"model": "gpt-4o", "input": "hello", "instructions": "Be brief.", "metadata": {}},
            {"model": "gpt-4o", "input": "Tell me a long story.", "max_output_tokens": 16},
        ]
        answers = []
        for body in bodies:
            status, made = await _create(services, body)
            assert status == 200
            answers.append(made)
    assert [a["status"] for a in answers] == ["completed", "incomplete"]
    assert answers[1]["incomplete_details"] == {"reason": "max_output_tokens"}
    async with httpx.AsyncClient(
        base_url=region.v1_base_url, headers={"api-key": region.api_key}
    ) as client:
        for made in answers:
            stored = (await client.get(f"responses/{made['id']}")).raise_for_status().json()
            assert made == stored


async def test_a_backlog_continuation_on_a_hung_region_fails_at_the_first_byte_deadline(
    sim,
) -> None:
    settings = settings_for_sim(sim, priorities=PREFER_EAST, hedge_enabled=False, **SLOW)
    affinity = InMemoryAffinityStore()
    ctx = CallContext(correlation_id="job-1", caller="key:k", lane="backlog")
    async with Gateway(settings) as gateway:
        first = await create_response(
            gateway,
            affinity,
            ResponsesRequest(model="gpt-4o", input="hello"),
            ctx,
            default_max_tokens=64,
        )
        assert first.region == "eastus2" and first.response is not None
        sim.region("eastus2").fault("hang", duration_s=60)
        started = time.monotonic()
        try:
            await create_response(
                gateway,
                affinity,
                ResponsesRequest(
                    model="gpt-4o", input="again", previous_response_id=first.response["id"]
                ),
                ctx,
                default_max_tokens=64,
            )
        except UpstreamUnavailable:
            pass
        else:
            raise AssertionError("a continuation on a hung region was served")
        elapsed = time.monotonic() - started
        sim.region("eastus2").reset()
    assert elapsed < BOUND_S


HEDGE_AT_1S = {"hedge_floor_s": 1.0, "hedge_ceiling_s": 1.0, "first_byte_timeout_s": 10.0}


async def test_a_non_streamed_create_free_to_fail_over_is_hedged(sim) -> None:
    """Its first byte is the stream's first event, so a silent region costs a hedge (at 1 s),
    not the first-byte deadline (10 s) nor a failure against its circuit."""
    settings = settings_for_sim(
        sim, priorities=PREFER_EAST, read_timeout_s=30.0, call_deadline_s=60.0, **HEDGE_AT_1S
    )
    heard = _Heard()
    async with Gateway(settings, observers=[heard]) as gateway:
        services = _Services(settings, gateway)
        sim.region("eastus2").fault("hang", count=1, deployment="gpt-4o-prod")
        started = time.monotonic()
        status, made = await _create(services, {"model": "gpt-4o", "input": "hello"})
        elapsed = time.monotonic() - started
        circuit = gateway.health_report()["regions"]["eastus2"]["circuit"]
        sim.region("eastus2").reset()
    assert status == 200 and made["status"] == "completed"
    assert elapsed < 8.0  # hedged after about 1 s, not at the 10 s first-byte deadline
    (outcome,) = [o for o in heard.outcomes if o.operation == "responses"]
    assert {(a.region, a.outcome, a.hedge) for a in outcome.result.attempts} == {
        ("eastus2", FailureKind.HEDGE_LOST, False),
        ("swedencentral", None, True),
    }
    assert circuit["consecutive_failures"] == 0


async def test_a_json_create_is_not_hedged(sim) -> None:
    """With stream_upstream off a create is one JSON answer, whose headers come only when it is
    done: no first byte to judge it by, so it is not hedged (as a JSON chat is not); a silent
    region then costs the read timeout (3 s here) and fails over."""
    settings = settings_for_sim(
        sim,
        priorities=PREFER_EAST,
        stream_upstream=False,
        read_timeout_s=3.0,
        call_deadline_s=60.0,
        **HEDGE_AT_1S,
    )
    heard = _Heard()
    async with Gateway(settings, observers=[heard]) as gateway:
        services = _Services(settings, gateway)
        sim.region("eastus2").fault("hang", count=1, deployment="gpt-4o-prod")
        status, made = await _create(services, {"model": "gpt-4o", "input": "hello"})
        sim.region("eastus2").reset()
    assert status == 200 and made["status"] == "completed"
    (outcome,) = [o for o in heard.outcomes if o.operation == "responses"]
    assert [(a.region, a.outcome, a.hedge) for a in outcome.result.attempts] == [
        ("eastus2", FailureKind.TIMEOUT, False),
        ("swedencentral", None, False),
    ]
