"""The timer's re-drive plan (pure), its horizon, and the cost kept in parking envelopes."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from shared.jobs import TimerSchedule, decode_envelope, redrive_horizon_s
from shared.jobs._pending import InMemoryPendingSchedule
from shared.jobs._plan import Allowance, plan_redrive
from shared.settings import load_backlog_settings

BASE = {
    "ServiceBusConnection": "Endpoint=sb://127.0.0.1/",
    "AzureWebJobsStorage": "UseDevelopmentStorage=true",
}


def test_free_capacity_goes_now_the_rest_at_the_sustained_rate():
    allowance = Allowance(
        free_requests=2, free_tokens=10_000, requests_per_s=1.0, tokens_per_s=1_000.0
    )
    delays = plan_redrive([100] * 5, allowance, horizon_s=3.0)
    assert delays == (0.0, 0.0, 1.0, 2.0, 3.0)


def test_tokens_bind_when_jobs_are_big():
    allowance = Allowance(
        free_requests=100, free_tokens=500, requests_per_s=10.0, tokens_per_s=100.0
    )
    delays = plan_redrive([300, 300, 300, 300], allowance, horizon_s=5.0)
    assert delays[0] == 0.0
    assert delays[1] == pytest.approx(1.0)  # 600 - 500 = 100 tokens at 100/s
    assert delays[2] == pytest.approx(4.0)
    assert delays[3] is None  # 7 s > horizon: deferred to the next run


def test_times_never_decrease_and_stay_within_the_horizon():
    allowance = Allowance(
        free_requests=3, free_tokens=1_000, requests_per_s=2.0, tokens_per_s=700.0
    )
    costs = [50, 400, 10, 900, 20, 20, 300, 5, 5, 5, 5, 5, 5]
    delays = plan_redrive(costs, allowance, horizon_s=4.0)
    sent = [d for d in delays if d is not None]
    assert sent == sorted(sent) and all(0.0 <= d <= 4.0 for d in sent)
    assert delays[len(sent) :] == (None,) * (
        len(costs) - len(sent)
    )  # strict priority: nothing overtakes a deferred job
    total = sum(costs[: len(sent)])
    assert total <= 1_000 + 700 * 4.0 and len(sent) <= 3 + 2 * 4.0


def test_nothing_free_and_nothing_replenishing_defers_everything():
    assert plan_redrive([10, 10], Allowance(0, 0), horizon_s=30.0) == (None, None)
    assert plan_redrive([], Allowance(5, 5, 1.0, 1.0), horizon_s=30.0) == ()


def test_a_job_bigger_than_any_run_goes_first_at_the_horizon_end_but_not_behind_others():
    allowance = Allowance(free_requests=10, free_tokens=100, requests_per_s=1.0, tokens_per_s=10.0)
    assert plan_redrive([5_000, 10], allowance, horizon_s=3.0) == (3.0, None)
    assert plan_redrive([10, 5_000], allowance, horizon_s=3.0) == (0.0, None)


def test_zero_horizon_is_what_is_free_now():
    allowance = Allowance(free_requests=2, free_tokens=10**9, requests_per_s=5.0, tokens_per_s=5.0)
    assert plan_redrive([1, 1, 1], allowance, horizon_s=0.0) == (0.0, 0.0, None)


def test_schedule_periods():
    assert TimerSchedule.parse("*/30 * * * * *").period_s() == 30.0
    assert TimerSchedule.parse("*/3 * * * * *").period_s() == 3.0
    assert TimerSchedule.parse("0 */5 * * * *").period_s() == 300.0
    assert TimerSchedule.parse("15 * * * * *").period_s() == 60.0
    assert TimerSchedule.parse("0 0 */2 * * *").period_s() == 7200.0
    assert (
        TimerSchedule.parse("*/7 * * * * *").period_s() is None
    )  # 7, 7, ..., then 4 across the minute


def test_horizon_from_the_setting_the_schedule_or_the_default():
    assert redrive_horizon_s(load_backlog_settings(BASE)) == 30.0  # default schedule */30
    assert (
        redrive_horizon_s(load_backlog_settings({**BASE, "RETRY_TIMER_SCHEDULE": "*/3 * * * * *"}))
        == 3.0
    )
    assert (
        redrive_horizon_s(load_backlog_settings({**BASE, "RETRY_TIMER_SCHEDULE": "0 */2 * * * *"}))
        == 120.0
    )
    assert (
        redrive_horizon_s(load_backlog_settings({**BASE, "RETRY_TIMER_SCHEDULE": "*/7 * * * * *"}))
        == 30.0
    )
    assert (
        redrive_horizon_s(load_backlog_settings({**BASE, "RETRY_TIMER_SCHEDULE": "0 0 9 * * 1-5"}))
        == 30.0
    )
    settings = load_backlog_settings(
        {**BASE, "RETRY_TIMER_SCHEDULE": "*/3 * * * * *", "BACKLOG_REDRIVE_HORIZON_S": "2.5"}
    )
    assert redrive_horizon_s(settings) == 2.5


def test_the_envelope_carries_the_cost_and_old_envelopes_have_none():
    old = {
        "v": 1,
        "job_id": "j1",
        "model": "gpt",
        "priority": 5,
        "parks": 1,
        "redrives": 0,
        "retry_at": 1.0,
        "deadline": None,
        "job": {},
    }
    assert decode_envelope(json.dumps(old)).cost is None
    parked = decode_envelope(json.dumps({**old, "cost": 334}))
    assert parked.cost == 334 and parked.envelope()["cost"] == 334
    assert "cost" not in decode_envelope(json.dumps(old)).envelope()
    assert decode_envelope(json.dumps({**old, "cost": "lots"})).cost is None


def test_jobs_an_earlier_run_scheduled_are_not_counted_twice():
    """A run starting while the last run's scheduled re-drives are still to come plans after
    them: the same allowance with 3 pending jobs starts where those 3 would have ended."""
    allowance = Allowance(free_requests=2, free_tokens=10_000, requests_per_s=1.0, tokens_per_s=1e6)
    fresh = plan_redrive([100] * 3, allowance, horizon_s=10.0)
    after_pending = plan_redrive(
        [100] * 3, replace(allowance, pending_requests=3, pending_tokens=300), horizon_s=10.0
    )
    assert fresh == (0.0, 0.0, 1.0)
    assert after_pending == (2.0, 3.0, 4.0)  # jobs 4..6 of the combined plan
    tight = replace(allowance, pending_requests=12, pending_tokens=1200)
    assert plan_redrive([100], tight, horizon_s=10.0) == (None,)  # nothing left this horizon
    assert tight.requests_within(10.0) == 0.0


async def test_the_pending_record_keeps_only_future_schedules():
    pending = InMemoryPendingSchedule()
    await pending.save("gpt-4o", [(10.0, 100), (20.0, 200)])
    assert await pending.load("gpt-4o", now=15.0) == [(20.0, 200)]
    assert await pending.load("other", now=0.0) == []
