"""The simulator's rolling-window limiter (``limit_window: "rolling"``), with an injected clock:
requests and tokens counted over the last window's length, remaining/reset headers only on a
429, retry-after from when the oldest counted usage leaves the window."""

from __future__ import annotations

import pytest

from aoai_sim._limits import DeploymentLimiter
from aoai_sim.config import ConfigError, parse_config


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def rolling(tpm: int = 1000, rpm: int = 12) -> tuple[DeploymentLimiter, FakeClock]:
    clock = FakeClock()
    # minute 6 s: requests per 1 s (rpm / 6 = 2), tokens per 6 s
    return DeploymentLimiter(tpm, rpm, minute_seconds=6, clock=clock, window="rolling"), clock


def test_requests_are_counted_over_the_last_window_not_a_fixed_one() -> None:
    lim, clock = rolling()
    clock.now += 0.9  # a fixed window anchored at creation would end at 101.0
    assert lim.try_acquire(10).allowed
    clock.now += 0.05
    assert lim.try_acquire(10).allowed
    clock.now += 0.2  # 101.15: past the fixed edge, but both calls are within the last second
    refused = lim.try_acquire(10)
    assert not refused.allowed and refused.calls_exceeded
    # the oldest (at 100.9) leaves the window at 101.9
    assert refused.retry_after_s == pytest.approx(0.75)
    assert refused.reset_requests_s == pytest.approx(0.75)
    clock.now = 101.9
    assert lim.try_acquire(10).allowed  # one slot back
    assert not lim.try_acquire(10).allowed
    clock.now = 101.95
    assert lim.try_acquire(10).allowed


def test_tokens_roll_and_retry_after_is_when_enough_of_them_leave() -> None:
    lim, clock = rolling(tpm=1000, rpm=600)
    assert lim.try_acquire(400).allowed
    clock.now += 2.0
    assert lim.try_acquire(400).allowed
    clock.now += 2.0  # 104.0
    refused = lim.try_acquire(300)
    assert not refused.allowed and not refused.calls_exceeded
    # 100 over: the first 400 (at 100.0) must leave, at 106.0
    assert refused.retry_after_s == pytest.approx(2.0)
    assert refused.remaining_tokens == 200
    clock.now = 106.0
    assert lim.try_acquire(300).allowed


def test_headers_on_success_carry_only_the_limits_and_a_429_says_the_rest() -> None:
    lim, clock = rolling()
    ok = dict(lim.try_acquire(10).headers())
    assert ok == {"x-ratelimit-limit-requests": "2", "x-ratelimit-limit-tokens": "1000"}
    clock.now += 0.25
    lim.try_acquire(10)
    refused = dict(lim.try_acquire(10).headers())
    assert refused["x-ratelimit-remaining-requests"] == "0"
    assert refused["x-ratelimit-reset-requests"] == "0.75s"
    assert refused["retry-after"] == "1" and refused["retry-after-ms"] == "750"
    # the fixed mode keeps every header on every response
    fixed = DeploymentLimiter(1000, 12, minute_seconds=6, clock=FakeClock())
    assert "x-ratelimit-reset-requests" in dict(fixed.try_acquire(10).headers())


def test_reset_forgets_the_rolling_log() -> None:
    lim, _clock = rolling()
    lim.try_acquire(10)
    lim.try_acquire(10)
    assert not lim.try_acquire(10).allowed
    lim.reset()
    assert lim.try_acquire(10).allowed


def test_config_limit_window_per_region_and_deployment() -> None:
    base = {"name": "d", "model": "gpt-4o"}
    cfg = parse_config(
        {
            "regions": [
                {"name": "a", "port": 1, "limit_window": "rolling", "deployments": [base]},
                {
                    "name": "b",
                    "port": 2,
                    "deployments": [base, {**base, "name": "e", "limit_window": "rolling"}],
                },
            ]
        }
    )
    windows = [[d.limit_window for d in r.deployments] for r in cfg.regions]
    assert windows == [["rolling"], ["fixed", "rolling"]]
    with pytest.raises(ConfigError, match="limit_window"):
        parse_config(
            {"regions": [{"name": "a", "port": 1, "deployments": [{**base, "limit_window": "x"}]}]}
        )
    with pytest.raises(ValueError):
        DeploymentLimiter(1000, 12, 6, window="sliding")
