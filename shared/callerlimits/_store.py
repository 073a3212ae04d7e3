"""Rows of the per-caller windows, read and written under their ETag (the same Table Storage
pattern as the shared region state and the deployment quota ledger): a write names the ETag it
read, or creates the row; a lost race raises ``WindowConflict`` and the caller reads again.

Partition ``callers``; RowKey a hash of the row's key (callers may hold characters a RowKey may
not), the key itself a property; the row's fields are plain properties.
"""

from __future__ import annotations

import hashlib
import itertools
from typing import TYPE_CHECKING, Any, Protocol

from shared.storage import EtagTable, RowConflict

if TYPE_CHECKING:
    from azure.data.tables.aio import TableClient

__all__ = ["InMemoryWindowStore", "TableWindowStore", "WindowConflict", "WindowStore"]

_PARTITION = "callers"


# The app's one lost-ETag-race error (``shared.storage.RowConflict``), under the windows' name.
WindowConflict = RowConflict


class WindowStore(Protocol):
    async def read(self, key: str) -> tuple[dict[str, Any] | None, str | None]: ...

    async def write(self, key: str, row: dict[str, Any], etag: str | None) -> str: ...

    async def read_all(self) -> dict[str, dict[str, Any]]: ...

    async def aclose(self) -> None: ...


class InMemoryWindowStore:
    def __init__(self) -> None:
        self._rows: dict[str, tuple[dict[str, Any], str]] = {}
        self._etags = itertools.count(1)

    async def read(self, key: str) -> tuple[dict[str, Any] | None, str | None]:
        found = self._rows.get(key)
        return (dict(found[0]), found[1]) if found else (None, None)

    async def write(self, key: str, row: dict[str, Any], etag: str | None) -> str:
        current = self._rows.get(key)
        if (current is None) != (etag is None) or (current is not None and current[1] != etag):
            raise WindowConflict(key)
        new = str(next(self._etags))
        self._rows[key] = (dict(row), new)
        return new

    async def read_all(self) -> dict[str, dict[str, Any]]:
        return {key: dict(row) for key, (row, _) in self._rows.items()}

    async def aclose(self) -> None:
        return None


def _row_key(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()[:40]


class TableWindowStore:
    """Rows in an Azure Storage table (created on first use). ``client``: an async TableClient."""

    def __init__(self, client: TableClient) -> None:
        self._rows = EtagTable(client)

    async def read(self, key: str) -> tuple[dict[str, Any] | None, str | None]:
        entity, etag = await self._rows.get(_PARTITION, _row_key(key))
        return (None, None) if entity is None else (_fields(entity), etag)

    async def write(self, key: str, row: dict[str, Any], etag: str | None) -> str:
        entity = {"PartitionKey": _PARTITION, "RowKey": _row_key(key), "key": key, **row}
        return await self._rows.put(entity, etag)  # RowConflict on a lost race

    async def read_all(self) -> dict[str, dict[str, Any]]:
        out = {}
        async for entity in self._rows.query(f"PartitionKey eq '{_PARTITION}'"):
            out[str(entity["key"])] = _fields(entity)
        return out

    async def aclose(self) -> None:
        await self._rows.aclose()


def _fields(entity: Any) -> dict[str, Any]:
    return {k: v for k, v in entity.items() if k not in ("PartitionKey", "RowKey", "key")}
