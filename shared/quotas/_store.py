"""Rows of the per-caller windows, read and written under their ETag (the same Table Storage
pattern as the shared health and the deployments' quota ledger): a write names the ETag it
read, or creates the row; a lost race raises ``WindowConflict`` and the caller reads again.

Partition ``callers``; RowKey a hash of the row's key (callers may hold characters a RowKey may
not), the key itself a property; the row's fields are plain properties.
"""

from __future__ import annotations

import hashlib
import itertools
from typing import Any, Protocol

__all__ = ["InMemoryWindowStore", "TableWindowStore", "WindowConflict", "WindowStore"]

_PARTITION = "callers"


class WindowConflict(Exception):
    """The row changed since it was read (or someone else created it): read it again."""


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

    def __init__(self, client: Any) -> None:
        self._client = client
        self._ready = False

    async def _table(self) -> Any:
        if not self._ready:
            from azure.core.exceptions import ResourceExistsError

            try:
                await self._client.create_table()
            except ResourceExistsError:
                pass
            self._ready = True
        return self._client

    async def read(self, key: str) -> tuple[dict[str, Any] | None, str | None]:
        from azure.core.exceptions import ResourceNotFoundError

        table = await self._table()
        try:
            entity = await table.get_entity(_PARTITION, _row_key(key))
        except ResourceNotFoundError:
            return None, None
        return _fields(entity), entity.metadata["etag"]

    async def write(self, key: str, row: dict[str, Any], etag: str | None) -> str:
        from azure.core import MatchConditions
        from azure.core.exceptions import ResourceExistsError, ResourceModifiedError
        from azure.data.tables import UpdateMode

        table = await self._table()
        entity = {"PartitionKey": _PARTITION, "RowKey": _row_key(key), "key": key, **row}
        try:
            if etag is None:
                meta = await table.create_entity(entity)
            else:
                meta = await table.update_entity(
                    entity,
                    mode=UpdateMode.REPLACE,
                    etag=etag,
                    match_condition=MatchConditions.IfNotModified,
                )
        except (ResourceExistsError, ResourceModifiedError) as exc:
            raise WindowConflict(key) from exc
        return str(meta.get("etag", ""))

    async def read_all(self) -> dict[str, dict[str, Any]]:
        table = await self._table()
        out = {}
        async for entity in table.query_entities(f"PartitionKey eq '{_PARTITION}'"):
            out[str(entity["key"])] = _fields(entity)
        return out

    async def aclose(self) -> None:
        await self._client.close()


def _fields(entity: Any) -> dict[str, Any]:
    return {k: v for k, v in entity.items() if k not in ("PartitionKey", "RowKey", "key")}
