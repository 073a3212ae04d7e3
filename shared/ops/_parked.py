"""Parked jobs, from the job store: each job's row says ``parked`` with its ``retry_at`` until
the timer re-drives it (the parking queue's messages are invisible until then, so the store,
not the queue, is what can be listed)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from azure.data.tables.aio import TableClient

__all__ = ["parked_jobs"]

_FIELDS = (
    "caller",
    "model",
    "kind",
    "priority",
    "parks",
    "redrives",
    "retry_at",
    "updated_at",
    "deadline",
)


async def parked_jobs(table: TableClient, *, limit: int = 200) -> list[dict[str, Any]]:
    """Jobs whose row is ``parked`` (``table``: the job store's async TableClient)."""
    out: list[dict[str, Any]] = []
    async for entity in table.query_entities("status eq 'parked'"):
        out.append({"job_id": entity["PartitionKey"], **{f: entity.get(f) for f in _FIELDS}})
        if len(out) >= limit:
            break
    return sorted(out, key=lambda j: j.get("retry_at") or 0.0)
