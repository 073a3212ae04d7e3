"""Hedged first byte: a late first byte sends the same request to the next region too, the first
to answer wins and the other is cancelled at once; a slow region costs a hedge, not a failure.

Two simulated regions (real openai SDK, real HTTP); eastus2 is tried first. The hedge threshold
is pinned at 1 s (floor = ceiling), so which attempt wins does not depend on the machine's
speed: the simulator's ``hang`` never answers and ``slow`` answers seconds later. The race
itself runs in real time (the first-byte deadline it races against does); the hedge cap's
window runs on a ``ManualClock``. Latencies are asserted only against bounds far from the
expected ones.
"""

from __future__ import annotations

import time

import pytest

from shared.aoai import BadRequest, FailureKind, ManualClock

from ._helpers import chat, chat_requests, ctx

PREFER_EAST = {"eastus2": 0, "swedencentral": 1}
EAST, SWEDEN = "gpt-4o-prod", "gpt4o-sweden"
HEDGE_AT_1S = {"hedge_floor_s": 1.0, "hedge_ceiling_s": 1.0}


def _outcomes(attempts) -> list[tuple[str, FailureKind | None, bool]]:
    return [(a.region, a.outcome, a.hedge) for a in attempts]


def _raced(attempts) -> set[tuple[str, FailureKind | None, bool]]:
    """The attempts of one race (each is recorded when it ends: the order is the machine's)."""
    return set(_outcomes(attempts))


def _hedge_won(attempts) -> bool:
    return any(a.hedge and a.outcome is None for a in attempts)


def _east(gateway) -> dict:
    return gateway.health_report()["regions"]["eastus2"]


def _hedge_report(gateway, region: str = "eastus2", deployment: str = EAST) -> dict:
    return gateway.health_report()["regions"][region]["deployments"][deployment]["hedge"]


@pytest.fixture
def hedged(sim_factory, gateway_settings_factory, gateway_factory):
    """``hedged(**settings) -> (sim, gateway, clock)``: eastus2 first, hedge threshold 1 s."""

    def build(**options):
        sim = sim_factory()
        clock = ManualClock(time.time())
        settings = gateway_settings_factory(
            sim,
            priorities=PREFER_EAST,
            **{"read_timeout_s": 30.0, "first_byte_timeout_s": 10.0, **HEDGE_AT_1S, **options},
        )
        return sim, gateway_factory(settings, clock=clock), clock

    return build


async def test_a_silent_region_is_hedged_and_the_loser_is_not_a_failure(hedged):
    sim, gateway, _clock = hedged()
    sim.region("eastus2").fault("hang", count=1, deployment=EAST)
    started = time.monotonic()
    result = await gateway.chat(chat(), ctx())
    took = time.monotonic() - started
    assert result.region == "swedencentral"
    assert _raced(result.attempts) == {
        ("eastus2", FailureKind.HEDGE_LOST, False),
        ("swedencentral", None, True),
    }
    assert took < 8.0  # hedged after ~1 s, not after the 10 s first-byte deadline
    circuit = _east(gateway)["circuit"]
    assert circuit["state"] == "closed" and circuit["consecutive_failures"] == 0
    report = _hedge_report(gateway)
    assert (report["hedges"], report["hedges_won"], report["hedges_lost"]) == (1, 1, 0)
    # The cancelled attempt's charge was released: east's budget is whole again.
    east_budget = _east(gateway)["deployments"][EAST]
    assert east_budget["remaining_tokens"] == east_budget["tpm"]
    # The next call goes to eastus2 again (the hang is over), in one attempt.
    again = await gateway.chat(chat(), ctx())
    assert _outcomes(again.attempts) == [("eastus2", None, False)]


async def test_a_region_slow_after_a_restart_costs_hedges_not_failures(hedged):
    # Its first calls take longer than the first-byte deadline itself (here 3 s, the default's
    # 10 s scaled down): without the hedge each would be a timeout that opens the circuit.
    sim, gateway, _clock = hedged(first_byte_timeout_s=3.0, hedge_max_share=1.0)
    east = sim.region("eastus2")
    east.fault("slow", delay_ms=5000, count=2, deployment=EAST)
    for _ in range(2):
        stream = await gateway.open_chat_stream(chat(stream=True), ctx())
        try:
            chunks = [chunk async for chunk in stream]
        finally:
            await stream.aclose()
        assert chunks and stream.region == "swedencentral"
        assert _raced(stream.attempts) == {
            ("eastus2", FailureKind.HEDGE_LOST, False),
            ("swedencentral", None, True),
        }
        circuit = _east(gateway)["circuit"]
        assert circuit["state"] == "closed" and circuit["consecutive_failures"] == 0
    assert _hedge_report(gateway)["hedges_won"] == 2
    # Restarted and fast again: served by eastus2 in one attempt.
    result = await gateway.chat(chat(), ctx())
    assert _outcomes(result.attempts) == [("eastus2", None, False)]


async def test_the_first_answer_wins_when_the_hedge_is_slower(hedged):
    # east's first byte comes at ~2.5 s, after the hedge started at 1 s; sweden hangs.
    sim, gateway, _clock = hedged()
    sim.region("eastus2").fault("slow", delay_ms=2500, count=1, deployment=EAST)
    sim.region("swedencentral").fault("hang", count=1, deployment=SWEDEN)
    result = await gateway.chat(chat(), ctx())
    assert _raced(result.attempts) == {
        ("swedencentral", FailureKind.HEDGE_LOST, True),
        ("eastus2", None, False),
    }
    report = _hedge_report(gateway)
    assert (report["hedges"], report["hedges_won"], report["hedges_lost"]) == (1, 0, 1)
    sweden = gateway.health_report()["regions"]["swedencentral"]
    assert sweden["circuit"]["consecutive_failures"] == 0
    sweden_budget = sweden["deployments"][SWEDEN]
    assert sweden_budget["remaining_tokens"] == sweden_budget["tpm"]  # its charge was refunded


async def test_hedges_are_capped_per_deployment_and_window(hedged):
    sim, gateway, clock = hedged(hedge_max_share=0.05, hedge_window_s=60.0)
    east = sim.region("eastus2")
    east.fault("slow", delay_ms=2000, count=2, deployment=EAST)
    first = await gateway.chat(chat(), ctx())
    assert first.region == "swedencentral" and _hedge_won(first.attempts)
    # Two calls in the window allow one hedge (at least one per window, else 5 %): the
    # second slow call waits for eastus2's answer instead of hedging.
    second = await gateway.chat(chat(), ctx())
    assert _outcomes(second.attempts) == [("eastus2", None, False)]
    report = _hedge_report(gateway)
    assert (report["hedges"], report["hedges_capped"]) == (1, 1)
    # A window later the cap allows a hedge again.
    clock.advance(61.0)
    east.fault("slow", delay_ms=2000, count=1, deployment=EAST)
    third = await gateway.chat(chat(), ctx())
    assert third.region == "swedencentral" and _hedge_won(third.attempts)
    assert _hedge_report(gateway)["hedges"] == 2


async def test_a_streaming_generation_is_never_hedged_once_its_first_byte_came(
    sim_factory, gateway_settings_factory, gateway_factory
):
    # Chunks 1.5 s apart, beyond the 1 s hedge threshold: the generation still completes on
    # eastus2 in one attempt, and swedencentral never sees the request.
    sim = sim_factory(per_token_ms=1500)
    settings = gateway_settings_factory(
        sim, priorities=PREFER_EAST, read_timeout_s=30.0, **HEDGE_AT_1S
    )
    gateway = gateway_factory(settings)
    result = await gateway.chat(chat(max_tokens=4), ctx())
    assert _outcomes(result.attempts) == [("eastus2", None, False)]
    assert result.usage.completion_tokens >= 2
    assert chat_requests(sim.region("swedencentral").stats(), SWEDEN) == 0
    assert _hedge_report(gateway)["hedges"] == 0


async def test_plain_json_chats_are_not_hedged(hedged):
    # stream_upstream off: the headers come only with the whole answer, so nothing to hedge on.
    sim, gateway, _clock = hedged(stream_upstream=False)
    sim.region("eastus2").fault("slow", delay_ms=2000, count=1, deployment=EAST)
    result = await gateway.chat(chat(), ctx())
    assert _outcomes(result.attempts) == [("eastus2", None, False)]
    assert chat_requests(sim.region("swedencentral").stats(), SWEDEN) == 0


async def test_a_half_open_probe_that_loses_keeps_the_circuit_open_without_a_failure(hedged):
    # A hung region hidden by hedges still gets one probe per cool-off, not one per call.
    sim, gateway, clock = hedged(circuit_failure_threshold=2, circuit_cooloff_s=30.0)
    east = sim.region("eastus2")
    east.fault("error", status=500, count=2, deployment=EAST)
    for _ in range(2):
        result = await gateway.chat(chat(), ctx())
        assert _outcomes(result.attempts) == [
            ("eastus2", FailureKind.SERVER_ERROR, False),
            ("swedencentral", None, False),
        ]
    opened = _east(gateway)["circuit"]
    assert opened["state"] == "open" and opened["consecutive_failures"] == 2
    clock.advance(31.0)  # half-open: the next call probes eastus2, which hangs
    east.fault("hang", count=1, deployment=EAST)
    probe = await gateway.chat(chat(), ctx())
    assert _raced(probe.attempts) == {
        ("eastus2", FailureKind.HEDGE_LOST, False),
        ("swedencentral", None, True),
    }
    held = _east(gateway)["circuit"]
    assert held["state"] == "open" and held["open_until"] == clock.now() + 30.0
    assert held["consecutive_failures"] == 2 and not held["probe_in_flight"]
    after = await gateway.chat(chat(), ctx())
    assert _outcomes(after.attempts) == [("swedencentral", None, False)]


async def test_with_the_quota_ledger_the_hedge_leases_its_route_first(hedged, azurite, unique_name):
    # swedencentral has never been used, so it holds no lease: the hedge takes one from the
    # ledger table (Azurite) while eastus2's attempt keeps waiting, then is sent.
    sim, gateway, _clock = hedged(
        storage_connection=azurite.connection_string,
        health_table=unique_name("health"),
        ledger_table=unique_name("ledger"),
        ledger_timeout_s=15.0,
        # A slow Azurite on a busy machine must not let eastus2 reach its first-byte deadline
        # before the lease is taken.
        first_byte_timeout_s=25.0,
    )
    assert gateway.health_report()["ledger"].get("mode") != "off"
    sim.region("eastus2").fault("hang", count=1, deployment=EAST)
    result = await gateway.chat(chat(), ctx())
    assert _raced(result.attempts) == {
        ("eastus2", FailureKind.HEDGE_LOST, False),
        ("swedencentral", None, True),
    }, (result.attempts, gateway.health_report()["ledger"])
    assert chat_requests(sim.region("swedencentral").stats(), SWEDEN) == 1


async def test_an_error_of_the_request_itself_from_the_hedge_ends_the_call_at_once(hedged):
    # The hedge's 400 says the request is wrong: the call ends with it, the first attempt
    # (still silent) is cancelled and refunded, not left to run into its first-byte deadline.
    sim, gateway, _clock = hedged()
    sim.region("eastus2").fault("hang", count=1, deployment=EAST)
    sim.region("swedencentral").fault("error", status=400, count=1, deployment=SWEDEN)
    started = time.monotonic()
    with pytest.raises(BadRequest) as caught:
        await gateway.chat(chat(), ctx())
    assert time.monotonic() - started < 8.0  # not the 10 s first-byte deadline
    # The error carries the attempts as they stood when it was raised (the hedge's 400).
    assert ("swedencentral", FailureKind.BAD_REQUEST, True) in _raced(caught.value.attempts)
    circuit = _east(gateway)["circuit"]
    assert circuit["state"] == "closed" and circuit["consecutive_failures"] == 0
    east_budget = _east(gateway)["deployments"][EAST]
    assert east_budget["remaining_tokens"] == east_budget["tpm"]
