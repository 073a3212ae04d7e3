"""Usage accounting without storage: the recorder's counts and flushes (``UsageRecorder`` on
the in-memory store, time from a clock the test moves), the report's sums and prices
(``summarize``, ``to_csv``), and the bounds the usage route puts on a query."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping
from datetime import UTC, datetime
from types import SimpleNamespace
from urllib.parse import urlencode

import pytest
from starlette.requests import Request

from shared.settings import GatewaySettings, PriceTable
from shared.usage import (
    CallerTokens,
    Counts,
    InMemoryUsageStore,
    UsageKey,
    UsageRecorder,
    UsageSettings,
    hour_of,
    summarize,
    to_csv,
)

START = datetime(2026, 12, 8, 10, 30, tzinfo=UTC).timestamp()


def tokens(
    caller: str = "key:a",
    *,
    lane: str = "online",
    prompt: int = 10,
    cached: int = 0,
    completion: int = 5,
    deployment: str = "gpt-4o-prod",
) -> CallerTokens:
    return CallerTokens(
        caller,
        "gpt-4o",
        deployment,
        lane,
        Counts(1, prompt, cached, completion),
        prompt + completion,
    )


async def test_counts_are_kept_per_hour_caller_alias_deployment_and_lane_and_written_as_totals():
    now = [START]
    store = InMemoryUsageStore()
    recorder = UsageRecorder(store, now=lambda: now[0], instance="i1", flush_s=3600)
    recorder.count(tokens())
    recorder.count(tokens(prompt=20))
    recorder.count(tokens(lane="batch"))
    now[0] += 3600  # the next hour: a row of its own
    recorder.count(tokens(caller="key:b"))
    assert await recorder.flush() is True
    rows = {(k.hour, k.caller, k.lane): c for (k, _), c in store.rows.items()}
    assert rows == {
        ("2026120810", "key:a", "online"): Counts(2, 30, 0, 10),
        ("2026120810", "key:a", "batch"): Counts(1, 10, 0, 5),
        ("2026120811", "key:b", "online"): Counts(1, 10, 0, 5),
    }
    # totals, not deltas: writing again after more counts replaces the row, never adds twice
    recorder.count(tokens(caller="key:b"))
    await recorder.flush()
    await recorder.flush()
    (b,) = [c for (k, _), c in store.rows.items() if k.caller == "key:b"]
    assert b == Counts(2, 20, 0, 10)
    await recorder.aclose()


async def test_instances_own_their_rows_and_a_read_sums_them():
    store = InMemoryUsageStore()
    first = UsageRecorder(store, now=lambda: START, instance="i1", flush_s=3600)
    second = UsageRecorder(store, now=lambda: START, instance="i2", flush_s=3600)
    first.count(tokens())
    second.count(tokens())
    second.count(tokens(caller="key:b"))
    await first.flush()
    await second.flush()
    hour = hour_of(START)
    mine = await first.read(hour, hour, caller="key:a")
    assert sorted(c.requests for _, c in mine) == [1, 1]  # one row per instance
    assert len(await first.read(hour, hour)) == 3
    assert await first.read("2026120811", "2026120823") == []


class FailingStore(InMemoryUsageStore):
    def __init__(self) -> None:
        super().__init__()
        self.down = True

    async def write(self, instance: str, rows: Mapping[UsageKey, Counts]) -> None:
        if self.down:
            raise OSError("table unreachable")
        await super().write(instance, rows)


async def test_rows_a_failing_store_refused_are_written_on_the_next_try():
    store = FailingStore()
    recorder = UsageRecorder(store, now=lambda: START, instance="i1", flush_s=3600)
    recorder.count(tokens())
    assert await recorder.flush() is False
    recorder.count(tokens())
    store.down = False
    assert await recorder.flush() is True
    assert list(store.rows.values()) == [Counts(2, 20, 0, 10)]


async def test_written_rows_older_than_the_previous_hour_are_forgotten():
    now = [START]
    recorder = UsageRecorder(InMemoryUsageStore(), now=lambda: now[0], flush_s=3600)
    recorder.count(tokens())
    await recorder.flush()
    now[0] += 2 * 3600
    recorder.count(tokens(caller="key:b"))
    await recorder.flush()
    assert {k.caller for k in recorder._totals} == {"key:b"}  # memory stays bounded
    await recorder.aclose()


async def test_without_a_store_the_counts_stay_in_memory():
    recorder = UsageRecorder(None, now=lambda: START)
    recorder.count(tokens())
    hour = hour_of(START)
    assert [c for _, c in await recorder.read(hour, hour, caller="key:a")] == [Counts(1, 10, 0, 5)]
    assert await recorder.read(hour, hour, caller="key:b") == []


def test_the_report_sums_groups_and_prices_them():
    prices = PriceTable.model_validate(
        {
            "batch_discount": 0.5,
            "prices": {"gpt-4o": {"input": 2.0, "cached_input": 1.0, "output": 8.0}},
        }
    )
    rows = [
        (
            UsageKey("2026120810", "key:a", "gpt-4o", "gpt-4o-prod"),
            Counts(2, 1_000_000, 500_000, 100_000),
        ),
        (
            UsageKey("2026120810", "key:a", "gpt-4o", "gpt-4o-prod", "batch"),
            Counts(1, 1_000_000, 0, 0),
        ),
        (UsageKey("2026120811", "key:b", "mini", "mini-prod"), Counts(1, 40, 0, 2)),  # no price
    ]
    report = summarize(rows, ["caller"], prices)
    a, b = report["data"]
    # 0.5 M uncached at 2 + 0.5 M cached at 1 + 0.1 M output at 8 = 2.3; the batch line 2 * 0.5
    assert a == {
        "caller": "key:a",
        "requests": 3,
        "input_tokens": 2_000_000,
        "cached_input_tokens": 500_000,
        "output_tokens": 100_000,
        "reasoning_output_tokens": 0,
        "total_tokens": 2_100_000,
        "cost": 3.3,
        "unpriced_tokens": 0,
    }
    assert b["cost"] == 0.0 and b["unpriced_tokens"] == 42
    assert report["total"]["requests"] == 4 and report["total"]["unpriced_tokens"] == 42
    by_hour = summarize(rows, ["hour", "lane"], prices)["data"]
    assert [(r["hour"], r["lane"]) for r in by_hour] == [
        ("2026-12-08T10:00:00Z", "batch"),
        ("2026-12-08T10:00:00Z", "online"),
        ("2026-12-08T11:00:00Z", "online"),
    ]
    lines = to_csv(report, ["caller"]).splitlines()
    assert lines[0] == (
        "caller,requests,input_tokens,cached_input_tokens,output_tokens,reasoning_output_tokens,"
        "total_tokens,cost,unpriced_tokens"
    )
    assert lines[1].startswith("key:a,3,2000000,500000,100000,0,2100000,3.3,0")


REGION = {
    "name": "eastus2",
    "endpoint": "https://example.openai.azure.com",
    "api_key": "k",
    "models": {"gpt-4o": {"deployment": "gpt-4o-prod", "tpm": 1000, "rpm": 6}},
}


def _report(query: dict[str, str], recorder: UsageRecorder, *, everyone: bool = False):
    from shared.api._usage import usage_report

    services = SimpleNamespace(
        settings=lambda: GatewaySettings(regions=[REGION]),
        usage=lambda: recorder,
        usage_settings=lambda: UsageSettings(),
    )
    scope = {
        "type": "http",
        "method": "GET",
        "path": "/api/v1/usage",
        "headers": [(b"x-functions-key", b"alice-key")],
        "query_string": urlencode(query).encode(),
    }
    response = asyncio.run(usage_report(Request(scope), services, everyone=everyone))  # type: ignore[arg-type]
    return response.status_code, json.loads(response.body)


@pytest.mark.parametrize(
    ("query", "param"),
    [
        ({"from": "2026-12-08", "to": "2026-12-01"}, "to"),  # backwards
        ({"from": "0001-01-01", "to": "2026-01-01"}, "from"),  # more than a year of partitions
        ({"from": "yesterday"}, "from"),
        ({"group_by": "planet"}, "group_by"),
        ({"group_by": ","}, "group_by"),
    ],
)
def test_the_usage_route_refuses_queries_out_of_bounds(query, param):
    status, body = _report(query, UsageRecorder(None))
    assert status == 400
    assert body["error"]["code"] == "invalid_parameter" and body["error"]["param"] == param


def test_the_usage_route_reports_the_callers_own_rows_in_whole_hours():
    recorder = UsageRecorder(None, now=lambda: START)
    status, _ = _report({"from": "2026-12-08T10:59:00Z", "to": "2026-12-08T10:00"}, recorder)
    assert status == 400  # 'to' before 'from' even within the hour
    recorder.count(tokens(caller="key:someone-else"))
    query = {"from": "2026-12-08T10:59:00Z", "to": "2026-12-08T10:59:59Z"}
    status, mine = _report(query, recorder)
    assert status == 200 and mine["data"] == [] and mine["scope"].startswith("key:")
    status, everyone = _report(query, recorder, everyone=True)
    assert [r["caller"] for r in everyone["data"]] == ["key:someone-else"]  # its hour is included
    assert everyone["scope"] == "all"
