"""The batch lane's rows in Table Storage: jobs waiting for a file, and one row per batch.

``pending-<alias>`` partition: one row per job waiting to be put into a file (row key = job id,
the job's message in ``body``, or in the blob ``body_blob`` names when it is too large for a
Table property). ``batch`` partition: one row per batch (row key = our batch id,
``lb-<hex>``, a hash of its member set) recording every step: ``state`` goes ``assembled`` -> ``prepared`` -> ``uploaded``
(``file_id``) -> ``submitted`` (``aoai_batch_id``) -> ``applying`` -> ``done``. Each step is written
after it happened and every step can run again: that is what makes a crash anywhere safe.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from ..storage import EtagTable

if TYPE_CHECKING:
    from azure.data.tables.aio import TableClient

__all__ = ["OPEN_STATES", "BatchRow", "LaneStore", "PendingJob"]

_BATCH_PK = "batch"
OPEN_STATES = ("assembled", "prepared", "uploaded", "submitted", "applying")


@dataclass(frozen=True, slots=True)
class PendingJob:
    """A job waiting for a batch file."""

    job_id: str
    alias: str
    body: str  # the JobMessage JSON ("" when it is in ``body_blob``)
    tokens: int
    line_bytes: int
    since: float
    etag: str | None = None  # the job row's ETag after ``accept``: a hint that saves a read
    body_blob: str | None = None  # a large message's blob (a Table property holds 64 KiB)


@dataclass(frozen=True, slots=True)
class BatchRow:
    """One batch of the lane, as recorded."""

    batch_ref: str
    alias: str
    region: str
    deployment: str
    state: str
    count: int
    tokens: int
    created: float
    members_blob: str
    input_blob: str
    earliest_deadline: float | None = None
    file_id: str | None = None
    aoai_batch_id: str | None = None
    aoai_status: str | None = None
    request_counts: dict[str, int] = field(default_factory=dict)
    output_file_id: str | None = None
    error_file_id: str | None = None
    error_code: str | None = None
    attempts: int = 0
    next_at: float = 0.0
    finished_at: float | None = None
    etag: str | None = field(default=None, compare=False)

    def public(self) -> dict[str, Any]:
        """What a job's status shows of its batch."""
        return {
            "id": self.batch_ref,
            "batch_id": self.aoai_batch_id,
            "state": self.state,
            "status": self.aoai_status,
            "request_counts": self.request_counts or None,
            "deployment": self.deployment,
            "region": self.region,
        }


def _row(entity: Any) -> BatchRow:
    values = {k: entity.get(k) for k in BatchRow.__dataclass_fields__ if k not in ("etag",)}
    values["batch_ref"] = entity["RowKey"]
    values["request_counts"] = json.loads(entity.get("request_counts") or "{}")
    values = {k: v for k, v in values.items() if v is not None}
    return BatchRow(etag=entity.metadata.get("etag"), **values)


class LaneStore:
    """Reads and writes the lane's rows."""

    def __init__(self, table: TableClient) -> None:
        self._table = table
        self._rows = EtagTable(table)  # the one table helper: creates the table on first use

    async def _ensure(self) -> None:
        await self._rows.ready()

    # -- pending jobs --------------------------------------------------------------------------
    async def add_pending(self, job: PendingJob) -> None:
        """Idempotent: a redelivered job overwrites its own row."""
        from azure.data.tables import UpdateMode

        await self._ensure()
        await self._table.upsert_entity(
            {
                "PartitionKey": f"pending-{job.alias}",
                "RowKey": job.job_id,
                "alias": job.alias,
                "body": job.body,
                "tokens": job.tokens,
                "line_bytes": job.line_bytes,
                "since": job.since,
                **({"job_etag": job.etag} if job.etag else {}),
                **({"body_blob": job.body_blob} if job.body_blob else {}),
            },
            mode=UpdateMode.REPLACE,
        )

    async def pending_aliases(self) -> set[str]:
        """Aliases with jobs waiting (a scan of partition keys starting with ``pending-``)."""
        await self._ensure()
        query = "PartitionKey ge 'pending-' and PartitionKey lt 'pending.'"
        aliases = set()
        async for entity in self._table.query_entities(query, select=["alias"]):
            aliases.add(entity["alias"])
        return aliases

    async def pending(self, alias: str) -> list[PendingJob]:
        """The alias's waiting jobs, oldest first."""
        await self._ensure()
        rows = []
        async for e in self._table.query_entities(
            "PartitionKey eq @pk", parameters={"pk": f"pending-{alias}"}
        ):
            rows.append(
                PendingJob(
                    e["RowKey"],
                    alias,
                    e["body"],
                    int(e["tokens"]),
                    int(e["line_bytes"]),
                    e["since"],
                    e.get("job_etag"),
                    e.get("body_blob"),
                )
            )
        rows.sort(key=lambda p: (p.since, p.job_id))
        return rows

    async def drop_pending(self, alias: str, job_ids: list[str]) -> None:
        """Delete pending rows (missing ones are fine), 100 per transaction."""
        from azure.core.exceptions import ResourceNotFoundError
        from azure.data.tables import TableTransactionError

        pk = f"pending-{alias}"
        for start in range(0, len(job_ids), 100):
            chunk = job_ids[start : start + 100]
            try:
                await self._table.submit_transaction(
                    [("delete", {"PartitionKey": pk, "RowKey": j}) for j in chunk]
                )
            except (TableTransactionError, ResourceNotFoundError):
                for job_id in chunk:  # one of them is gone already (a resumed step): one by one
                    try:
                        await self._table.delete_entity(partition_key=pk, row_key=job_id)
                    except ResourceNotFoundError:
                        pass

    # -- batches -------------------------------------------------------------------------------
    async def create_batch(self, row: BatchRow) -> BatchRow:
        await self._ensure()
        entity = self._entity(row)
        meta = await self._table.create_entity(entity)
        return replace(row, etag=meta.get("etag"))

    async def update_batch(self, row: BatchRow, **changes: Any) -> BatchRow:
        """Write ``changes`` (conditional on the row's ETag: one timer at a time moves a batch)."""
        from azure.core import MatchConditions
        from azure.data.tables import UpdateMode

        new = replace(row, **changes)
        meta = await self._table.update_entity(
            self._entity(new),
            mode=UpdateMode.REPLACE,
            etag=row.etag,
            match_condition=MatchConditions.IfNotModified,
        )
        return replace(new, etag=meta.get("etag"))

    async def get_batch(self, batch_ref: str) -> BatchRow | None:
        from azure.core.exceptions import ResourceNotFoundError

        await self._ensure()
        try:
            return _row(await self._table.get_entity(_BATCH_PK, batch_ref))
        except ResourceNotFoundError:
            return None

    async def batches(self, *, open_only: bool = True) -> list[BatchRow]:
        """Batch rows, oldest first (open ones only: finished rows are not read at all)."""
        await self._ensure()
        rows = []
        query = "PartitionKey eq @pk" + (" and state ne @done" if open_only else "")
        async for e in self._table.query_entities(
            query, parameters={"pk": _BATCH_PK, "done": "done"}
        ):
            row = _row(e)
            if not open_only or row.state in OPEN_STATES:
                rows.append(row)
        rows.sort(key=lambda r: (r.created, r.batch_ref))
        return rows

    @staticmethod
    def _entity(row: BatchRow) -> dict[str, Any]:
        entity: dict[str, Any] = {"PartitionKey": _BATCH_PK, "RowKey": row.batch_ref}
        for name in BatchRow.__dataclass_fields__:
            if name in ("batch_ref", "etag"):
                continue
            value = getattr(row, name)
            if name == "request_counts":
                value = json.dumps(value or {})
            if value is not None:
                entity[name] = value
        return entity
