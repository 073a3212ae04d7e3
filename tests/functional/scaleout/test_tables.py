"""The one table helper every store uses (``shared.storage``: ``TableTarget``, ``EtagTable``)
against Azurite with the real azure-data-tables SDK."""

from __future__ import annotations

import pytest
from azure.core.exceptions import ResourceNotFoundError

from shared.storage import EtagTable, RowConflict, TableTarget


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
        with pytest.raises(ResourceNotFoundError):  # the table, not the row: raised
            await table.get("p", "r")
        assert await table.get("p", "r") == (None, None)  # created again
    finally:
        await table.aclose()


def test_a_target_needs_a_connection_or_an_endpoint_with_credentials():
    with pytest.raises(ValueError):
        TableTarget("t", endpoint="https://acct.table.core.windows.net")
    described = TableTarget("t", connection="UseDevelopmentStorage=true").describe()
    assert described == {"kind": "table", "table": "t", "auth": "connection_string"}
