"""Where usage rows live: ``UsageStore`` and its Table Storage and in-memory implementations.

Each instance owns its rows (the instance id is part of the row), and writes its running
totals for them as absolute values (upsert, replace). So instances never contend for a row and
never need a read-modify-write, and a retried write cannot count twice. Reading sums the
instances' rows.

Table layout: PartitionKey ``h<YYYYMMDDHH>`` (UTC hour, so a time range is a PartitionKey range),
RowKey ``<hash of caller>.<hash of alias, deployment, lane and instance>`` (callers may hold
characters a RowKey may not), with each of them also stored as a property. A caller's own report
is then a key range in each hour's partition (``RowKey`` from ``<hash>.`` to ``<hash>/``), never a
scan of everyone's rows. Rows written before this layout (a RowKey without the dot) are read by
the operators' report only.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Protocol

from shared.storage import EtagTable

from ._types import Counts, UsageKey

if TYPE_CHECKING:
    from azure.data.tables.aio import TableClient

__all__ = ["InMemoryUsageStore", "TableUsageStore", "UsageStore"]


class UsageStore(Protocol):
    async def write(self, instance: str, rows: Mapping[UsageKey, Counts]) -> None: ...

    async def read(
        self, first_hour: str, last_hour: str, *, caller: str | None = None
    ) -> list[tuple[UsageKey, Counts]]: ...

    async def aclose(self) -> None: ...


class InMemoryUsageStore:
    """Rows in a dict; share one between recorders to stand for one table."""

    def __init__(self) -> None:
        self.rows: dict[tuple[UsageKey, str], Counts] = {}

    async def write(self, instance: str, rows: Mapping[UsageKey, Counts]) -> None:
        for key, counts in rows.items():
            self.rows[(key, instance)] = counts.copy()

    async def read(
        self, first_hour: str, last_hour: str, *, caller: str | None = None
    ) -> list[tuple[UsageKey, Counts]]:
        return [
            (key, counts.copy())
            for (key, _), counts in self.rows.items()
            if first_hour <= key.hour <= last_hour and (caller is None or key.caller == caller)
        ]

    async def aclose(self) -> None:
        return None


def _caller_prefix(caller: str) -> str:
    return hashlib.sha256(caller.encode("utf-8")).hexdigest()[:16]


def _row_key(key: UsageKey, instance: str) -> str:
    raw = "\x1f".join((key.alias, key.deployment, key.lane, instance))
    rest = hashlib.sha256(raw.encode("utf-8")).hexdigest()[:24]
    return f"{_caller_prefix(key.caller)}.{rest}"


def _quote(value: str) -> str:
    return value.replace("'", "''")


class TableUsageStore:
    """Usage rows in an Azure Storage table (created on first use). ``client`` is an async
    ``azure.data.tables.aio.TableClient``, built by the composition root (``shared.runtime``)."""

    def __init__(self, client: TableClient) -> None:
        self._rows = EtagTable(client)

    async def write(self, instance: str, rows: Mapping[UsageKey, Counts]) -> None:
        from azure.data.tables import UpdateMode

        table = await self._rows.ready()
        by_hour: dict[str, list[dict[str, Any]]] = {}
        for key, counts in rows.items():
            by_hour.setdefault(key.hour, []).append(
                {
                    "PartitionKey": f"h{key.hour}",
                    "RowKey": _row_key(key, instance),
                    "hour": key.hour,
                    "caller": key.caller,
                    "alias": key.alias,
                    "deployment": key.deployment,
                    "lane": key.lane,
                    "instance": instance,
                    "requests": counts.requests,
                    "input_tokens": counts.input_tokens,
                    "cached_input_tokens": counts.cached_input_tokens,
                    "output_tokens": counts.output_tokens,
                    "reasoning_output_tokens": counts.reasoning_output_tokens,
                }
            )
        for entities in by_hour.values():
            # One transaction per partition, at most 100 operations each.
            for start in range(0, len(entities), 100):
                await table.submit_transaction(
                    [
                        ("upsert", e, {"mode": UpdateMode.REPLACE})
                        for e in entities[start : start + 100]
                    ]
                )

    async def read(
        self, first_hour: str, last_hour: str, *, caller: str | None = None
    ) -> list[tuple[UsageKey, Counts]]:
        query = (
            f"PartitionKey ge 'h{_quote(first_hour)}' and PartitionKey le 'h{_quote(last_hour)}'"
        )
        if caller is not None:  # a key range in each partition ('/' follows '.')
            prefix = _caller_prefix(caller)
            query += (
                f" and RowKey ge '{prefix}.' and RowKey lt '{prefix}/'"
                f" and caller eq '{_quote(caller)}'"
            )
        out: list[tuple[UsageKey, Counts]] = []
        async for e in self._rows.query(query):
            key = UsageKey(
                str(e["hour"]),
                str(e["caller"]),
                str(e["alias"]),
                str(e["deployment"]),
                str(e.get("lane", "online")),
            )
            out.append(
                (
                    key,
                    Counts(
                        int(e.get("requests", 0)),
                        int(e.get("input_tokens", 0)),
                        int(e.get("cached_input_tokens", 0)),
                        int(e.get("output_tokens", 0)),
                        int(e.get("reasoning_output_tokens", 0)),  # rows before it: none
                    ),
                )
            )
        return out

    async def aclose(self) -> None:
        await self._rows.aclose()
