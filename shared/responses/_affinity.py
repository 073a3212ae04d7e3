"""Where a stored response lives: a row per response id, written when the gateway sees the
response created, read by every later request that names the id (``previous_response_id``,
retrieve, delete, cancel, input items).

A lookup table rather than an id that encodes its region: the ids stay Azure's own (clients,
logs and Azure support see the same id), and a region renamed or a deployment moved needs no id
rewriting; the cost is one table read per stateful request and one write per stored response.
The table is in the gateway's storage (``shared.storage.table_target``), so every instance and
every restart sees the same rows. Without storage configured the store is in memory: affinity
then holds within one instance only (the dev server, tests).

Each row also names the caller that created the response: another caller is answered as if the
id did not exist.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from shared.storage import EtagTable

if TYPE_CHECKING:
    from azure.data.tables.aio import TableClient

__all__ = [
    "AFFINITY_TABLE",
    "AffinityStore",
    "InMemoryAffinityStore",
    "ResponseHome",
    "TableAffinityStore",
    "affinity_store",
]

_log = logging.getLogger(__name__)

AFFINITY_TABLE = "gatewayresponses"
_ROW = "home"
_CACHE = 10_000  # rows this instance keeps in memory (also read-through for its own writes)


@dataclass(frozen=True, slots=True)
class ResponseHome:
    """The region and deployment that store a response, and the caller who created it."""

    region: str
    deployment: str
    caller: str


class AffinityStore(Protocol):
    """Remember and find where a response id lives."""

    async def remember(self, response_id: str, home: ResponseHome) -> None: ...

    async def find(self, response_id: str) -> ResponseHome | None: ...

    async def forget(self, response_id: str) -> None: ...

    async def aclose(self) -> None: ...


class InMemoryAffinityStore:
    """One process's rows (tests, and a gateway without storage)."""

    def __init__(self, limit: int = _CACHE) -> None:
        self._rows: OrderedDict[str, ResponseHome] = OrderedDict()
        self._limit = limit

    async def remember(self, response_id: str, home: ResponseHome) -> None:
        self._rows[response_id] = home
        self._rows.move_to_end(response_id)
        while len(self._rows) > self._limit:
            self._rows.popitem(last=False)

    async def find(self, response_id: str) -> ResponseHome | None:
        return self._rows.get(response_id)

    async def forget(self, response_id: str) -> None:
        self._rows.pop(response_id, None)

    async def aclose(self) -> None:
        return None


class TableAffinityStore:
    """Rows in a Table (PartitionKey = response id, RowKey ``home``), with this instance's
    recent rows cached: a write that fails still serves this instance's continuations, and is
    logged (other instances then answer 404 for that id)."""

    def __init__(self, table: EtagTable) -> None:
        self._table = table
        self._cache = InMemoryAffinityStore()

    async def remember(self, response_id: str, home: ResponseHome) -> None:
        await self._cache.remember(response_id, home)
        try:
            client = await self._table.ready()
            await client.upsert_entity(
                {
                    "PartitionKey": response_id,
                    "RowKey": _ROW,
                    "region": home.region,
                    "deployment": home.deployment,
                    "caller": home.caller,
                }
            )
        except Exception as exc:  # noqa: BLE001 - the answer still goes out; logged
            _log.warning(
                "response affinity not stored (%s): other instances will not find this response",
                type(exc).__name__,
            )

    async def find(self, response_id: str) -> ResponseHome | None:
        cached = await self._cache.find(response_id)
        if cached is not None:
            return cached
        from azure.core.exceptions import ResourceNotFoundError

        client = await self._table.ready()
        try:
            entity: Any = await client.get_entity(response_id, _ROW)
        except ResourceNotFoundError:
            return None
        home = ResponseHome(
            str(entity["region"]), str(entity["deployment"]), str(entity.get("caller", ""))
        )
        await self._cache.remember(response_id, home)
        return home

    async def forget(self, response_id: str) -> None:
        await self._cache.forget(response_id)
        client = await self._table.ready()
        await client.delete_entity(response_id, _ROW)

    async def aclose(self) -> None:
        await self._table.aclose()


def affinity_store(table: TableClient | None) -> AffinityStore:
    """The store on ``table`` (an async ``TableClient`` on the app's storage, built by the
    composition root); in memory when no storage is configured."""
    if table is None:
        _log.warning(
            "response affinity in memory: no storage configured; a stored response is found "
            "only by the instance that created it"
        )
        return InMemoryAffinityStore()
    return TableAffinityStore(EtagTable(table))
