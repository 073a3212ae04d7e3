"""The one table helper every store uses (``shared.storage``: ``TableTarget``, ``EtagTable``)
against Azurite with the real azure-data-tables SDK."""

from __future__ import annotations

import pytest

from shared.storage import EtagTable, RowConflict, TableTarget


class _Recorded:
    """The real async TableClient, recording the name of each method called on it."""

    def __init__(self, client: object) -> None:
        self._client = client
        self.calls: list[str] = []

    def __getattr__(self, name: str) -> object:
        found = getattr(self._client, name)
        if callable(found):
            self.calls.append(name)
        return found


async def test_rows_are_created_once_and_replaced_only_under_their_etag(azurite, unique_name):
    table = EtagTable.at(TableTarget(unique_name("tables"), connection=azurite.connection_string))
    try:
        assert await table.get("p", "r") == (None, None)  # the table is created on first use
        etag = await table.put({"PartitionKey": "p", "RowKey": "r", "n": 1}, None)
        with pytest.raises(RowConflict):  # someone else created it first
            await table.put({"PartitionKey": "p", "RowKey": "r", "n": 9}, None)
        newer = await table.put({"PartitionKey": "p", "RowKey": "r", "n": 2}, etag)
        with pytest.raises(RowConflict):  # written since that ETag was read
            await table.put({"PartitionKey": "p", "RowKey": "r", "n": 3}, etag)
        entity, current = await table.get("p", "r")
        assert entity is not None and entity["n"] == 2 and current == newer
        await table.replace([{"PartitionKey": "p", "RowKey": "s", "n": 5}])
        rows = [e["RowKey"] async for e in table.query("PartitionKey eq 'p'")]
        assert sorted(rows) == ["r", "s"]
    finally:
        await table.aclose()


async def test_a_deleted_table_is_created_again_on_the_next_use(azurite, unique_name):
    name = unique_name("tables")
    table = EtagTable.at(TableTarget(name, connection=azurite.connection_string, timeout_s=15.0))
    try:
        await table.put({"PartitionKey": "p", "RowKey": "r"}, None)
        await table.client.delete_table()
        assert await table.get("p", "r") == (None, None)  # created again, then read
        await table.put({"PartitionKey": "p", "RowKey": "r"}, None)
        await table.client.delete_table()
        assert [e async for e in table.query("PartitionKey eq 'p'")] == []
        await table.client.delete_table()
        await table.replace([{"PartitionKey": "p", "RowKey": "s"}])
        assert (await table.get("p", "s"))[0] is not None
    finally:
        await table.aclose()


async def test_an_existing_table_costs_no_create_round_trip(azurite, unique_name):
    """A process's first read of a table that exists goes straight to the row (the first
    request after a start reads the shared health and the ledger before calling upstream)."""
    target = TableTarget(unique_name("tables"), connection=azurite.connection_string)
    first = EtagTable.at(target)
    recorded = _Recorded(target.client())
    second = EtagTable(recorded)
    try:
        assert await first.get("p", "r") == (None, None)  # a new table: created, then read
        await first.put({"PartitionKey": "p", "RowKey": "r", "n": 1}, None)
        entity, _ = await second.get("p", "r")
        assert entity is not None and entity["n"] == 1
        assert recorded.calls == ["get_entity"]
    finally:
        await second.aclose()
        await first.aclose()


async def test_a_missing_table_is_created_when_the_service_says_so(azurite, unique_name):
    target = TableTarget(unique_name("tables"), connection=azurite.connection_string)
    recorded = _Recorded(target.client())
    table = EtagTable(recorded)
    try:
        await table.put({"PartitionKey": "p", "RowKey": "r"}, None)
        assert recorded.calls == ["create_entity", "create_table", "create_entity"]
        with pytest.raises(RowConflict):  # the row exists: a conflict, not a missing table
            await table.put({"PartitionKey": "p", "RowKey": "r"}, None)
        assert recorded.calls[3:] == ["create_entity"]
    finally:
        await table.aclose()


def test_a_target_needs_a_connection_or_an_endpoint_with_credentials():
    with pytest.raises(ValueError):
        TableTarget("t", endpoint="https://acct.table.core.windows.net")
    described = TableTarget("t", connection="UseDevelopmentStorage=true").describe()
    assert described == {"kind": "table", "table": "t", "auth": "connection_string"}
