"""The hedge policy's numbers: the adaptive threshold and the share cap (``_hedge.Hedger``)."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from shared.aoai._hedge import MIN_SAMPLES, Hedger
from shared.settings import GatewaySettings

REGION = {
    "name": "eastus2",
    "endpoint": "https://example.openai.azure.com",
    "api_key": "k",
    "models": {"gpt-4o": {"deployment": "gpt-4o-prod", "tpm": 1000, "rpm": 6}},
}
KEY = "deployment/eastus2/gpt-4o-prod"


def _hedger(**options) -> Hedger:
    return Hedger(GatewaySettings(regions=[REGION], **options))


def test_the_threshold_is_the_ceiling_until_there_are_enough_samples_then_p95_clamped():
    hedger = _hedger()  # floor 1 s, ceiling 5 s, p95
    assert hedger.threshold(KEY) == 5.0
    for _ in range(MIN_SAMPLES):
        hedger.first_byte(KEY, 0.02)
    assert hedger.threshold(KEY) == 1.0  # fast deployment: the floor
    for seconds in [2.0] * 90 + [3.5] * 10:  # p95 of the last 200 samples
        hedger.first_byte(KEY, seconds)
    assert hedger.threshold(KEY) == 3.5
    for _ in range(200):
        hedger.first_byte(KEY, 30.0)
    assert hedger.threshold(KEY) == 5.0  # never past the ceiling


def test_the_ceiling_never_passes_the_first_byte_deadline_and_a_floor_at_it_turns_hedging_off():
    assert _hedger(first_byte_timeout_s=4.0).threshold(KEY) == 4.0
    assert not _hedger(first_byte_timeout_s=1.0).enabled
    assert not _hedger(hedge_enabled=False).enabled


def test_floor_above_ceiling_is_refused():
    with pytest.raises(ValidationError, match="hedge_floor_s"):
        GatewaySettings(regions=[REGION], hedge_floor_s=3.0, hedge_ceiling_s=2.0)


def test_hedges_are_capped_at_a_share_of_the_calls_in_the_window_at_least_one():
    hedger = _hedger(hedge_max_share=0.05, hedge_window_s=60.0)
    now = 1000.0
    hedger.sent(KEY, now)
    assert hedger.allow(KEY, now)  # at least one per window
    hedger.started(KEY, now)
    assert not hedger.allow(KEY, now)
    for i in range(39):  # 40 calls: 5 % is 2 hedges
        hedger.sent(KEY, now + i * 0.1)
    assert hedger.allow(KEY, now + 4)
    hedger.started(KEY, now + 4)
    assert not hedger.allow(KEY, now + 4)
    report = hedger.report(KEY, now + 4)
    assert (report["hedges"], report["hedges_capped"], report["calls_in_window"]) == (2, 2, 40)
    # A window later the calls and hedges have left it: one hedge is allowed again.
    assert hedger.allow(KEY, now + 65)
    assert hedger.report(KEY, now + 65)["hedges_in_window"] == 0


def test_the_threshold_is_the_quantile_of_the_last_samples_as_they_roll():
    # The samples are kept sorted as they come and go (no sort per call): the threshold is
    # still the p95 of exactly the last 200, whatever order they came in.
    import random

    hedger = _hedger(hedge_floor_s=0.001, hedge_ceiling_s=10.0)
    rng = random.Random(27)
    window: list[float] = []
    for n in range(1000):
        seconds = round(rng.uniform(0.01, 9.0), 3)
        hedger.first_byte(KEY, seconds)
        window = [*window, seconds][-200:]
        if n % 37 == 0 and len(window) >= MIN_SAMPLES:
            ordered = sorted(window)
            assert hedger.threshold(KEY) == ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))]
