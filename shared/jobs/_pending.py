"""Re-drives already scheduled and not yet delivered: the next timer run must not plan over them.

A timer run sends parked jobs with Service Bus scheduled enqueue times spread over its horizon.
If the next run starts before the last of them is delivered (a late or early run, a run on
another instance), those jobs will still spend the quota the next run sees as free. Each run
therefore records, per alias, the (scheduled time, estimated tokens) of what it scheduled, and
the next run subtracts whatever is still in the future from its allowance (``Allowance.pending_*``).

The record is one Table Storage row per alias in the jobs table (partition ``~redrive``), so it
follows the timer from instance to instance; ``InMemoryPendingSchedule`` serves one process
(and tests). A record that cannot be read counts as empty: the plan is then as before.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from azure.data.tables.aio import TableClient

__all__ = ["InMemoryPendingSchedule", "PendingSchedule", "TablePendingSchedule"]

_PARTITION = "~redrive"


class PendingSchedule(Protocol):
    async def load(self, alias: str, now: float) -> list[tuple[float, int]]:
        """(scheduled time, tokens) of earlier re-drives of ``alias`` still in the future."""
        ...

    async def save(self, alias: str, entries: list[tuple[float, int]]) -> None: ...


class InMemoryPendingSchedule:
    def __init__(self) -> None:
        self._entries: dict[str, list[tuple[float, int]]] = {}

    async def load(self, alias: str, now: float) -> list[tuple[float, int]]:
        return [e for e in self._entries.get(alias, ()) if e[0] > now]

    async def save(self, alias: str, entries: list[tuple[float, int]]) -> None:
        self._entries[alias] = list(entries)


class TablePendingSchedule:
    """One row per alias in the jobs table (the timer runs on one instance at a time)."""

    def __init__(self, table: TableClient) -> None:
        self._table = table

    async def load(self, alias: str, now: float) -> list[tuple[float, int]]:
        from azure.core.exceptions import ResourceNotFoundError

        try:
            entity = await self._table.get_entity(partition_key=_PARTITION, row_key=_key(alias))
        except ResourceNotFoundError:
            return []
        try:
            raw = json.loads(entity.get("entries") or "[]")
            return [(float(at), int(cost)) for at, cost in raw if float(at) > now]
        except (ValueError, TypeError):
            return []

    async def save(self, alias: str, entries: list[tuple[float, int]]) -> None:
        from azure.data.tables import UpdateMode

        await self._table.upsert_entity(
            {
                "PartitionKey": _PARTITION,
                "RowKey": _key(alias),
                "entries": json.dumps([[round(at, 3), cost] for at, cost in entries]),
            },
            mode=UpdateMode.REPLACE,
        )


def _key(alias: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in alias)
