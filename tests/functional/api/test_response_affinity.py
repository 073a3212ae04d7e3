"""The Responses API's affinity store on Azurite through the real azure-data-tables SDK: a row
written by one instance is found by another (and after a restart: a new store on the same table),
forgotten for all; and the in-memory twin used without storage."""

from __future__ import annotations

from shared.responses import (
    InMemoryAffinityStore,
    ResponseHome,
    TableAffinityStore,
    affinity_store,
)

HOME = ResponseHome("swedencentral", "gpt4o-sweden", "key:abc123")


def _table(connection: str, name: str):
    from shared.storage import StorageTarget

    return StorageTarget(connection=connection).table(name)


async def test_table_rows_are_shared_across_instances_and_restarts(azurite, unique_name):
    table = unique_name("responses")
    first = affinity_store(_table(azurite.connection_string, table))
    second = affinity_store(_table(azurite.connection_string, table))
    assert isinstance(first, TableAffinityStore) and isinstance(second, TableAffinityStore)
    try:
        assert await second.find("resp_1") is None
        await first.remember("resp_1", HOME)
        assert await second.find("resp_1") == HOME  # another instance
        await first.aclose()
        first = affinity_store(_table(azurite.connection_string, table))  # a restart
        assert await first.find("resp_1") == HOME
        await second.forget("resp_1")
        restarted = affinity_store(_table(azurite.connection_string, table))
        try:
            assert await restarted.find("resp_1") is None
        finally:
            await restarted.aclose()
    finally:
        await first.aclose()
        await second.aclose()


async def test_in_memory_without_storage():
    store = affinity_store(None)
    assert isinstance(store, InMemoryAffinityStore)
    await store.remember("resp_2", HOME)
    assert await store.find("resp_2") == HOME
    await store.forget("resp_2")
    assert await store.find("resp_2") is None
    bounded = InMemoryAffinityStore(limit=2)
    for n in range(3):
        await bounded.remember(f"r{n}", HOME)
    assert await bounded.find("r0") is None and await bounded.find("r2") == HOME
