"""A call waits for the gateway's own pacing, also after an attempt, never for Azure's 429s.

Two simulated regions (real openai SDK). The gateway believes each deployment takes one request
per 10-second window (``rpm`` 6; the simulator takes far more), so a region it has just used is
held back by its own pacing until the window slides. Time is a ``ManualClock``; the call loop's
waits go through the ``sleep`` seam, which moves that clock instead of sleeping, so what a test
checks about time holds however slow the machine is.
"""

from __future__ import annotations

import time
import uuid

import pytest

from shared.aoai import AllThrottled, CallContext, FailureKind, ManualClock
from testpeers.gateway import RecordedSleeps

from ._helpers import TWO_SMALL_REGIONS, chat, chat_requests

REGIONS = TWO_SMALL_REGIONS
EAST, SWEDEN = "gpt-4o-prod", "gpt4o-sweden"
WINDOW_S = 10.0  # the gateway's request window (a sixth of the 60-second quota minute)


def _ctx(lane: str = "interactive", timeout_s: float | None = None) -> CallContext:
    return CallContext(uuid.uuid4().hex, caller="tests", timeout_s=timeout_s, lane=lane)


def _outcomes(attempts) -> list[tuple[str, FailureKind | None]]:
    return [(a.region, a.outcome) for a in attempts]


async def _both_full_then_eastus2_throttles(sim, gateway, clock) -> None:
    """eastus2's window frees 2 s from the end of this, swedencentral's 5 s; eastus2 will
    answer the next request 429."""
    assert (await gateway.chat(chat(), _ctx())).region == "eastus2"  # eastus2 frees at 10
    clock.advance(3.0)
    assert (await gateway.chat(chat(), _ctx())).region == "swedencentral"  # frees at 13
    clock.advance(5.0)
    sim.region("eastus2").fault("throttle", count=1, retry_after_s=30, deployment=EAST)


@pytest.fixture
def paced(sim_factory, gateway_settings_factory, gateway_factory):
    """``paced(first, **settings) -> (sim, gateway, clock, waits)``: region ``first`` is tried
    first (priority 0), each deployment takes one request per window on the gateway's side."""

    def build(first: str, **options):
        sim = sim_factory(REGIONS, minute_seconds=60)
        clock = ManualClock(float(int(time.time())))  # whole seconds: exact sums
        waits = RecordedSleeps(clock, yield_to_others=True)
        settings = gateway_settings_factory(
            sim,
            priorities={first: 0},
            deployment_overrides={EAST: {"rpm": 6}, SWEDEN: {"rpm": 6}},
            **options,
        )
        return sim, gateway_factory(settings, clock=clock, sleep=waits), clock, waits

    return build


@pytest.mark.parametrize("lane", ["interactive", "backlog"])
async def test_after_a_429_the_call_waits_for_the_other_regions_pacing_edge(paced, lane):
    sim, gateway, clock, waits = paced("swedencentral", throttle_wait_s=5.0)
    assert (await gateway.chat(chat(), _ctx(lane))).region == "swedencentral"
    clock.advance(6.0)  # swedencentral's window frees in 4 s
    sim.region("eastus2").fault("throttle", count=1, retry_after_s=30, deployment=EAST)
    result = await gateway.chat(chat(), _ctx(lane))
    assert _outcomes(result.attempts) == [
        ("eastus2", FailureKind.THROTTLED),
        ("swedencentral", None),
    ]
    assert waits.waits == [pytest.approx(WINDOW_S - 6.0)]
    assert chat_requests(sim.region("swedencentral").stats(), SWEDEN) == 2


async def test_a_tried_region_held_back_by_its_pacing_is_not_waited_for(paced):
    # The limit would allow waiting for swedencentral's window too: not why it is not waited for.
    sim, gateway, clock, waits = paced("eastus2", throttle_wait_s=20.0)
    assert (await gateway.chat(chat(), _ctx())).region == "eastus2"  # eastus2: full for 10 s
    clock.advance(5.0)
    sweden = sim.region("swedencentral")
    sweden.fault("throttle", count=1, retry_after_ms=200, deployment=SWEDEN)
    sim.region("eastus2").fault("throttle", count=1, retry_after_s=30, deployment=EAST)
    with pytest.raises(AllThrottled) as caught:
        await gateway.chat(chat(), _ctx())
    # swedencentral answers 429 (cools for 0.2 s, its window is full for 10 s); the call waits
    # 5 s for eastus2's window, which answers 429 too. swedencentral's cooldown is over by
    # then and only its pacing holds it back, but it was tried: no wait, no second request.
    assert _outcomes(caught.value.attempts) == [
        ("swedencentral", FailureKind.THROTTLED),
        ("eastus2", FailureKind.THROTTLED),
    ]
    assert waits.waits == [pytest.approx(5.0)]
    assert chat_requests(sweden.stats(), SWEDEN) == 1
    # swedencentral's window, plus the arrival margin: it has not answered a success, so the
    # phase of its windows is unknown and they are paced as rolling ones (0.5 s of a 10 s window)
    assert caught.value.retry_after_s == pytest.approx(WINDOW_S - 5.0 + 0.5)


async def test_only_cooling_regions_left_answers_at_once_with_the_soonest_cooldown(paced):
    sim, gateway, clock, waits = paced("eastus2", throttle_wait_s=5.0)
    assert (await gateway.chat(chat(), _ctx())).region == "eastus2"
    clock.advance(5.0)
    sim.region("swedencentral").fault("throttle", count=1, retry_after_s=30, deployment=SWEDEN)
    sim.region("eastus2").fault("throttle", count=1, retry_after_ms=800, deployment=EAST)
    with pytest.raises(AllThrottled) as caught:
        await gateway.chat(chat(), _ctx())
    # Waited for eastus2's own pacing after swedencentral's 429, then both cool down after
    # Azure's 429s: answered at once, with the sooner cooldown (eastus2's 0.8 s).
    assert _outcomes(caught.value.attempts) == [
        ("swedencentral", FailureKind.THROTTLED),
        ("eastus2", FailureKind.THROTTLED),
    ]
    assert waits.waits == [pytest.approx(5.0)]
    assert caught.value.retry_after_s == pytest.approx(0.8)


@pytest.mark.parametrize(
    ("wait_limit_s", "timeout_s", "served"),
    [
        (6.0, None, True),  # 2 s + 3 s of waits fit the call's 6 s
        (4.0, None, False),  # the second wait would make 5 s of the call's 4 s
        (6.0, 4.5, False),  # the second wait would end after the call's deadline
    ],
)
async def test_the_waits_of_one_call_stay_within_the_limit_and_the_deadline(
    paced, wait_limit_s, timeout_s, served
):
    sim, gateway, clock, waits = paced("eastus2", throttle_wait_s=wait_limit_s)
    await _both_full_then_eastus2_throttles(sim, gateway, clock)
    call = gateway.chat(chat(), _ctx(timeout_s=timeout_s))
    if served:
        result = await call
        assert _outcomes(result.attempts) == [
            ("eastus2", FailureKind.THROTTLED),
            ("swedencentral", None),
        ]
        assert waits.waits == [pytest.approx(2.0), pytest.approx(3.0)]
        return
    with pytest.raises(AllThrottled) as caught:
        await call
    assert _outcomes(caught.value.attempts) == [
        ("eastus2", FailureKind.THROTTLED),
        ("swedencentral", FailureKind.SKIPPED),
    ]
    assert waits.waits == [pytest.approx(2.0)]
    assert caught.value.retry_after_s == pytest.approx(3.0)  # swedencentral's window


async def test_a_backlog_job_waits_up_to_the_backlogs_own_limit(paced):
    """``GATEWAY_BACKLOG_THROTTLE_WAIT_S``: a backlog job waits for pacing that an interactive
    call (``GATEWAY_THROTTLE_WAIT_S``) would answer 429 for: back-pressure instead of parking."""
    for lane, served in (("interactive", False), ("backlog", True)):
        sim, gateway, clock, waits = paced(
            "eastus2", throttle_wait_s=1.0, backlog_throttle_wait_s=6.0
        )
        await _both_full_then_eastus2_throttles(sim, gateway, clock)
        call = gateway.chat(chat(), _ctx(lane=lane))
        if served:
            result = await call
            assert _outcomes(result.attempts) == [
                ("eastus2", FailureKind.THROTTLED),
                ("swedencentral", None),
            ]
            assert waits.waits == [pytest.approx(2.0), pytest.approx(3.0)]
        else:
            with pytest.raises(AllThrottled):
                await call
            assert waits.waits == []
