"""Per-caller limits (``CallerLimiter``) on the in-memory window store, time driven by a clock
the test moves: the TPM window, the monthly budget, the pending counts and their flush, the
report, and storage trouble admitting calls."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from shared.callerlimits import (
    CallerBudgetExhausted,
    CallerLimiter,
    CallerLimits,
    CallerRateLimited,
    InMemoryWindowStore,
    month_of,
    next_month,
)
from shared.usage import CallerTokens, Counts

# 2026-12-08 00:00:00 UTC: a window boundary for every window_s below (a multiple of 60 s).
START = datetime(2026, 12, 8, tzinfo=UTC).timestamp()


class Clock:
    def __init__(self, at: float = START) -> None:
        self.at = at

    def __call__(self) -> float:
        return self.at


def limits(**default: Any) -> CallerLimits:
    return CallerLimits.model_validate({"default": default, "cache_s": 0})


def used(caller: str, tokens: int) -> CallerTokens:
    return CallerTokens(caller, "gpt-4o", "gpt-4o-prod", "online", Counts(1, tokens, 0, 0), tokens)


async def test_the_tpm_window_refuses_past_its_limit_and_frees_at_its_end():
    clock = Clock()
    quotas = CallerLimiter(limits(tpm=1000), InMemoryWindowStore(), now=clock)
    await quotas.admit("key:a", 600, "gpt-4o")
    await quotas.admit("key:a", 400, "gpt-4o")  # exactly at the limit: admitted
    clock.at += 30
    with pytest.raises(CallerRateLimited) as refused:
        await quotas.admit("key:a", 1, "gpt-4o")
    assert refused.value.retry_at == START + 60  # the window's end
    assert refused.value.retry_after_s == pytest.approx(30)
    assert refused.value.remaining == 0 and refused.value.limit == 1000
    assert await quotas.window_used("key:a") == 1000  # a refusal charges nothing
    await quotas.admit("key:b", 1000, "gpt-4o")  # another caller has its own window
    clock.at = START + 60  # the next window
    assert await quotas.window_used("key:a") == 0
    await quotas.admit("key:a", 1000, "gpt-4o")


async def test_a_call_bigger_than_the_whole_limit_runs_in_an_empty_window():
    clock = Clock()
    quotas = CallerLimiter(limits(tpm=100), InMemoryWindowStore(), now=clock)
    await quotas.admit("key:a", 5000, "gpt-4o")
    with pytest.raises(CallerRateLimited):
        await quotas.admit("key:a", 5000, "gpt-4o")


async def test_the_monthly_budget_counts_used_tokens_and_resets_with_the_month():
    clock = Clock()
    store = InMemoryWindowStore()
    quotas = CallerLimiter(limits(monthly_tokens=1000), store, now=clock)
    await quotas.admit("key:a", 10, "gpt-4o")  # admission does not charge the month
    quotas.count(used("key:a", 999))
    assert await quotas.monthly_used("key:a") == 999  # pending, not yet written
    assert await store.read("month|key:a") == (None, None)
    await quotas.admit("key:a", 10, "gpt-4o")
    quotas.count(used("key:a", 1))
    with pytest.raises(CallerBudgetExhausted) as refused:
        await quotas.admit("key:a", 10, "gpt-4o")
    assert refused.value.details() == {
        "monthly_tokens": 1000,
        "used_tokens": 1000,
        "reset_date": "2027-01-01",
    }
    await quotas.flush()
    row, _ = await store.read("month|key:a")
    assert row == {"month": "202612", "tokens": 1000}
    # another instance reads the row, not this one's memory
    other = CallerLimiter(limits(monthly_tokens=1000), store, now=clock)
    with pytest.raises(CallerBudgetExhausted):
        await other.admit("key:a", 10, "gpt-4o")
    clock.at = datetime(2027, 1, 1, tzinfo=UTC).timestamp()
    await other.admit("key:a", 10, "gpt-4o")  # a new month: the old row counts for nothing
    await quotas.aclose()


async def test_only_callers_with_a_monthly_budget_are_counted():
    store = InMemoryWindowStore()
    quotas = CallerLimiter(
        CallerLimits.model_validate(
            {"default": {"tpm": 10}, "callers": {"key:b": {"monthly_tokens": 50}}}
        ),
        store,
        now=Clock(),
    )
    quotas.count(used("key:a", 7))
    quotas.count(used("key:b", 7))
    await quotas.flush()
    assert (await store.read("month|key:a"))[0] is None
    assert (await store.read("month|key:b"))[0] == {"month": "202612", "tokens": 7}


class FailingStore(InMemoryWindowStore):
    def __init__(self) -> None:
        super().__init__()
        self.down = True

    async def read(self, key: str) -> tuple[dict[str, Any] | None, str | None]:
        if self.down:
            raise OSError("table unreachable")
        return await super().read(key)

    async def write(self, key: str, row: dict[str, Any], etag: str | None) -> str:
        if self.down:
            raise OSError("table unreachable")
        return await super().write(key, row, etag)


async def test_storage_trouble_admits_calls_and_keeps_the_monthly_counts_pending():
    store = FailingStore()
    quotas = CallerLimiter(limits(tpm=1, monthly_tokens=100), store, now=Clock())
    for _ in range(3):
        await quotas.admit("key:a", 50, "gpt-4o")  # no window to check: admitted
    quotas.count(used("key:a", 40))
    await quotas.flush()
    assert await quotas.monthly_used("key:a") == 40  # still pending, not lost
    store.down = False
    await quotas.flush()
    assert (await store.read("month|key:a"))[0] == {"month": "202612", "tokens": 40}


async def test_the_report_lists_configured_and_seen_callers_with_their_current_use():
    clock = Clock()
    quotas = CallerLimiter(
        CallerLimits.model_validate(
            {
                "default": {"tpm": 100},
                "callers": {"principal:batch": {"monthly_tokens": 500, "priority": 2}},
            }
        ),
        InMemoryWindowStore(),
        now=clock,
    )
    await quotas.admit("key:seen", 30, "gpt-4o")
    quotas.count(used("principal:batch", 20))
    report = await quotas.report()  # flushes first
    assert report == [
        {
            "caller": "key:seen",
            "configured": False,
            "tpm": 100,
            "window_tokens": 30,
            "monthly_tokens": None,
            "month_tokens": 0,
            "priority": None,
        },
        {
            "caller": "principal:batch",
            "configured": True,
            "tpm": 100,
            "window_tokens": 0,
            "monthly_tokens": 500,
            "month_tokens": 20,
            "priority": 2,
        },
    ]
    clock.at += 60  # the window rolled over: its tokens no longer count
    assert [r["window_tokens"] for r in await quotas.report()] == [0, 0]


def test_month_helpers():
    assert month_of(START) == "202612"
    assert next_month(START) == "2027-01-01"
    assert next_month(datetime(2026, 5, 31, 23, tzinfo=UTC).timestamp()) == "2026-06-01"
