"""Per-caller state stays bounded and a caller's usage report is read by keys: on Azurite through
the real azure-data-tables SDK (the usage table), and with the in-memory window store (the caller
quotas' cache)."""

from __future__ import annotations

from shared.callerlimits import CallerLimiter, InMemoryWindowStore
from shared.settings import CallerLimits
from shared.storage import StorageTarget
from shared.usage import Counts, TableUsageStore, UsageKey


async def test_a_callers_report_reads_its_own_key_range_only(azurite, unique_name) -> None:
    client = StorageTarget(connection=azurite.connection_string).table(unique_name("usage"))
    store = TableUsageStore(client)
    try:
        rows = {
            UsageKey("2026120710", caller, "gpt-4o", "gpt-4o-prod"): Counts(1, 10, 0, 5)
            for caller in ("key:alice", "key:bob", "principal:carol")
        }
        await store.write("instance-1", rows)
        # A row of the layout before caller-prefixed keys: the operators' report still reads it.
        table = await store._rows.ready()
        await table.upsert_entity(
            {
                "PartitionKey": "h2026120710",
                "RowKey": "f" * 40,
                "hour": "2026120710",
                "caller": "key:alice",
                "alias": "gpt-4o",
                "deployment": "gpt-4o-prod",
                "lane": "online",
                "requests": 1,
                "input_tokens": 7,
                "cached_input_tokens": 0,
                "output_tokens": 1,
            }
        )
        own = await store.read("2026120700", "2026120723", caller="key:alice")
        assert [(k.caller, c.input_tokens) for k, c in own] == [("key:alice", 10)]
        everyone = await store.read("2026120700", "2026120723")
        assert sorted(k.caller for k, _ in everyone) == [
            "key:alice",
            "key:alice",
            "key:bob",
            "principal:carol",
        ]
    finally:
        await store.aclose()


async def test_the_monthly_count_cache_stays_bounded() -> None:
    clock = [1_000_000.0]
    limits = CallerLimits.model_validate({"default": {"monthly_tokens": 10**9}, "cache_s": 2})
    quotas = CallerLimiter(limits, InMemoryWindowStore(), now=lambda: clock[0])
    try:
        for n in range(5000):  # every distinct identity a key holder could present
            await quotas.monthly_used(f"key:caller-{n}")
            if n % 1000 == 999:
                clock[0] += 1.0  # the clock seam: a second per thousand callers
        assert len(quotas._cache) <= 4096  # the bound (private: nothing else shows it)
        assert await quotas.monthly_used("key:caller-4999") == 0  # recent entries still served
    finally:
        await quotas.aclose()
