"""The job store: a persistence interface (in the spirit of Powertools' idempotency layer) and its
Azure Table Storage implementation.

Exactly-once terminal state: every write that changes a row is conditional on the ETag that was
read (``update_entity(match_condition=IfNotModified)``) or is an insert that fails when the row
exists. ``finish`` therefore has one winner; a redelivered or duplicate message finds the row
terminal and writes nothing. The reply is claimed with a lease in the same row, so it is sent by
one delivery at a time, and marked ``sent`` afterwards.

The row belongs to the payload that created it: it stores that payload's hash, and ``ensure``
raises ``JobIdConflict`` for the same job id with a different payload (Powertools'
``IdempotencyValidationError``). Such a message is recorded in its own row of the job's partition
(``record_conflict``), never in the job's.

Large results spill to blob storage under a name unique to the writer (``<job>/<uuid>.json``):
a loser of the ``finish`` race deletes its own blob and never overwrites the winner's.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol, cast

from ..storage import EtagTable
from ._contract import JobIdConflict, JobMessage
from ._records import TRANSITIONS, JobRecord, Terminal

if TYPE_CHECKING:
    from azure.data.tables.aio import TableClient

    from ._payloads import PayloadStore

__all__ = [
    "TERMINAL_ROW_PREFIX",
    "FinishResult",
    "JobStore",
    "TableJobStore",
    "Transition",
    "conflict_row_key",
]

logger = logging.getLogger(__name__)
_ROW = "job"
_MAX_CONFLICT_RETRIES = 20
# One audit row per winning terminal write, in the job's partition, written in the same
# transaction as the terminal state: the chaos tests count terminal writes from these rows.
TERMINAL_ROW_PREFIX = "terminal-"
_CONFLICT_STATUS = (404, 409, 412)

Guard = Callable[[JobRecord], bool]


class Transition(NamedTuple):
    """What ``advance`` did: the record as stored now, and whether this call moved it."""

    record: JobRecord | None
    moved: bool


class FinishResult(tuple[Any, ...]):
    """``(record, won)``: the terminal record as stored, and whether this call wrote it."""

    __slots__ = ()

    def __new__(cls, record: JobRecord, won: bool) -> FinishResult:
        return super().__new__(cls, (record, won))

    @property
    def record(self) -> JobRecord:
        return cast(JobRecord, self[0])

    @property
    def won(self) -> bool:
        return bool(self[1])


class JobStore(Protocol):
    """What the backlog needs from persistence. Every method is idempotent under redelivery.
    Methods taking ``current`` (the record as last read or written) use its ETag and save a read."""

    async def get(self, job_id: str) -> JobRecord | None: ...

    async def ensure(self, job: JobMessage) -> tuple[JobRecord, bool]:
        """The job's record, created as ``queued`` if missing; the flag says whether it was created.
        Raises ``JobIdConflict`` when the row exists with a different payload hash."""
        ...

    async def record_conflict(self, job: JobMessage, error: dict[str, Any], *, owner: str) -> bool:
        """Record a conflicting message as a terminal failure beside, never in, the job's row;
        True when this call created the record (False: a redelivery of the same message)."""
        ...

    async def advance(
        self,
        job_id: str,
        status: str,
        *,
        current: JobRecord | None = None,
        allow: Guard | None = None,
        **changes: Any,
    ) -> Transition:
        """Move a non-terminal job to ``status`` along ``TRANSITIONS``, conditional on the ETag of
        the version that was checked (``allow(record)`` too, when given); on a conflict re-read and
        check again. Never touches a terminal job; ``moved`` False when the move is not allowed."""
        ...

    async def finish(
        self,
        job_id: str,
        outcome: Terminal,
        *,
        owner: str,
        job: JobMessage | None = None,
        reply_to: str | None = None,
        current: JobRecord | None = None,
        allow: Guard | None = None,
    ) -> FinishResult:
        """Write the terminal outcome unless one exists (or ``allow`` refuses the row as it is:
        then ``won`` is False and nothing is written); the winner holds the reply lease."""
        ...

    async def claim_reply(self, job_id: str, *, owner: str) -> JobRecord | None:
        """Take the reply lease when the reply is pending and the lease is ours or expired."""
        ...

    async def mark_replied(self, lease: JobRecord, *, state: str = "sent") -> bool:
        """Record the reply as sent, only while ``lease`` (the record from ``claim_reply`` or
        ``finish``) still holds the lease: never over another owner's lease."""
        ...

    async def load_result(self, record: JobRecord) -> dict[str, Any] | None: ...

    async def discard(self, record: JobRecord) -> bool:
        """Delete a row just created by ``ensure`` whose message could not be sent, unless it
        changed since (conditional on its ETag); True when deleted."""
        ...


def _now_iso() -> str:
    # Wall-clock stamps for people (created_at/updated_at/terminal_at); no decision reads them
    # (leases and re-drive claims use the injected ``clock``).
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class TableJobStore:
    """JobStore on Azure Table Storage (Azurite locally); big results in blobs via ``payloads``."""

    def __init__(
        self,
        table: TableClient,
        payloads: PayloadStore,
        *,
        inline_result_chars: int = 30_000,
        reply_lease_s: float = 60.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._table = table
        self._payloads = payloads
        self._inline = inline_result_chars
        self._lease_s = reply_lease_s
        self._clock = clock
        self._rows = EtagTable(table)  # the one table helper: creates the table on first use

    async def _ensure_table(self) -> None:
        await self._rows.ready()

    # -- reading ------------------------------------------------------------------------------

    async def get(self, job_id: str) -> JobRecord | None:
        from azure.core.exceptions import ResourceNotFoundError

        await self._ensure_table()
        try:
            entity = await self._table.get_entity(partition_key=job_id, row_key=_ROW)
        except ResourceNotFoundError:
            return None
        return _record(entity)

    async def load_result(self, record: JobRecord) -> dict[str, Any] | None:
        if record.inline_result is not None:
            return cast("dict[str, Any]", json.loads(record.inline_result))
        if record.result_blob:
            return cast("dict[str, Any]", json.loads(await self._payloads.get(record.result_blob)))
        return None

    # -- writing ------------------------------------------------------------------------------

    async def ensure(self, job: JobMessage) -> tuple[JobRecord, bool]:
        from azure.core.exceptions import ResourceExistsError

        existing = await self.get(job.job_id)  # also creates the table on first use
        if existing is not None:
            return _same_payload(existing, job), False
        now = _now_iso()
        entity = {
            "PartitionKey": job.job_id,
            "RowKey": _ROW,
            "status": "queued",
            **_job_fields(job),
            "created_at": now,
            "updated_at": now,
            "deliveries": 0,
            "parks": 0,
            "redrives": 0,
            "reply_state": "none",
        }
        entity = {k: v for k, v in entity.items() if v is not None}
        try:
            meta = await self._table.create_entity(entity)
        except ResourceExistsError:
            raced = await self.get(job.job_id)
            assert raced is not None
            return _same_payload(raced, job), False
        return _merge(JobRecord(job_id=job.job_id, status="queued"), entity, meta.get("etag")), True

    async def terminal_writes(self, job_id: str) -> int:
        """How many terminal writes won for ``job_id`` (its audit rows): 1 for a finished job."""
        query = (
            f"PartitionKey eq '{job_id.replace(chr(39), chr(39) * 2)}' and "
            f"RowKey ge '{TERMINAL_ROW_PREFIX}' and RowKey lt 'terminal.'"
        )
        return len([e async for e in self._table.query_entities(query)])

    async def discard(self, record: JobRecord) -> bool:
        from azure.core import MatchConditions
        from azure.core.exceptions import AzureError

        try:
            await self._table.delete_entity(
                partition_key=record.job_id,
                row_key=_ROW,
                etag=record.etag,
                match_condition=MatchConditions.IfNotModified,
            )
        except AzureError:
            logger.warning(
                "job %s: the row of a failed submission could not be removed",
                record.job_id,
                extra={"correlation_id": record.job_id},
            )
            return False
        return True

    async def record_conflict(self, job: JobMessage, error: dict[str, Any], *, owner: str) -> bool:
        from azure.core.exceptions import ResourceExistsError

        await self._ensure_table()
        digest = job.payload_hash()
        entity = {
            "PartitionKey": job.job_id,
            "RowKey": conflict_row_key(digest),
            **_job_fields(job),
            "status": "failed",
            "error": json.dumps(error),
            "owner": owner,
            "created_at": _now_iso(),
        }
        try:
            await self._table.create_entity({k: v for k, v in entity.items() if v is not None})
        except ResourceExistsError:
            return False
        return True

    async def advance(
        self,
        job_id: str,
        status: str,
        *,
        current: JobRecord | None = None,
        allow: Guard | None = None,
        **changes: Any,
    ) -> Transition:
        """``changes`` hold absolute values or ``("+", N)`` increments. ``current``, if given, saves a read."""
        from azure.core import MatchConditions
        from azure.core.exceptions import ResourceModifiedError, ResourceNotFoundError
        from azure.data.tables import UpdateMode

        fresh = current is None
        for _ in range(_MAX_CONFLICT_RETRIES):
            if current is None:
                current, fresh = await self.get(job_id), True
            if current is None or current.terminal:
                if fresh:
                    return Transition(current, False)
                current = None  # a caller's copy may be old: decide on the row as it is
                continue
            if status not in TRANSITIONS.get(current.status, ()) or (
                allow is not None and not allow(current)
            ):
                if fresh:
                    return Transition(current, False)
                current = None
                continue
            patch: dict[str, Any] = {
                "PartitionKey": job_id,
                "RowKey": _ROW,
                "status": status,
                "updated_at": _now_iso(),
            }
            for key, value in changes.items():
                if isinstance(value, tuple) and value and value[0] == "+":
                    patch[key] = int(getattr(current, key) or 0) + int(value[1])
                elif value is not None:
                    patch[key] = value
            try:
                meta = await self._table.update_entity(
                    patch,
                    mode=UpdateMode.MERGE,
                    etag=current.etag,
                    match_condition=MatchConditions.IfNotModified,
                )
            except (ResourceModifiedError, ResourceNotFoundError):
                current = None
                continue
            return Transition(_merge(current, patch, meta.get("etag")), True)
        raise RuntimeError(f"job {job_id}: too much write contention on advance")

    async def finish(
        self,
        job_id: str,
        outcome: Terminal,
        *,
        owner: str,
        job: JobMessage | None = None,
        reply_to: str | None = None,
        current: JobRecord | None = None,
        allow: Guard | None = None,
    ) -> FinishResult:
        from azure.core import MatchConditions
        from azure.data.tables import TableTransactionError, UpdateMode

        await self._ensure_table()
        fields = await self._terminal_fields(job_id, outcome)
        blob = fields.get("result_blob")
        known = current
        for _ in range(_MAX_CONFLICT_RETRIES):
            fresh = known is None
            current = known if known is not None else await self.get(job_id)
            known = None
            if current is not None and current.terminal:
                if blob:
                    await self._payloads.delete(blob)
                return FinishResult(current, False)
            if current is not None and allow is not None and not allow(current):
                if not fresh:
                    continue  # the caller's copy may be old: decide on the row as it is
                if blob:
                    await self._payloads.delete(blob)
                return FinishResult(current, False)
            target = (
                (current.reply_to if current is not None else None)
                or (job.reply_to if job else None)
                or reply_to
            )
            now = self._clock()
            patch = dict(fields)
            patch.update(
                {
                    "PartitionKey": job_id,
                    "RowKey": _ROW,
                    "reply_to": target,
                    "reply_state": "pending" if target else "none",
                    "reply_owner": owner,
                    "reply_lease_until": now + self._lease_s,
                }
            )
            patch = {k: v for k, v in patch.items() if v is not None}
            audit = {
                "PartitionKey": job_id,
                "RowKey": f"{TERMINAL_ROW_PREFIX}{uuid.uuid4().hex}",
                "status": outcome.status,
                "owner": owner,
                "written_at": _now_iso(),
            }
            try:
                if current is None:
                    base = _base_fields(job, job_id)
                    base.update(patch)
                    base = {k: v for k, v in base.items() if v is not None}
                    results = await self._table.submit_transaction(
                        [("create", base), ("create", audit)]
                    )
                    stored = _merge(
                        JobRecord(job_id=job_id, status=outcome.status),
                        base,
                        _etag_of(results[0]),
                    )
                else:
                    results = await self._table.submit_transaction(
                        [
                            (
                                "update",
                                patch,
                                {
                                    "mode": UpdateMode.MERGE,
                                    "etag": current.etag,
                                    "match_condition": MatchConditions.IfNotModified,
                                },
                            ),
                            ("create", audit),
                        ]
                    )
                    stored = _merge(current, patch, _etag_of(results[0]))
            except TableTransactionError as exc:
                if exc.status_code in _CONFLICT_STATUS:
                    continue
                raise
            return FinishResult(stored, True)
        raise RuntimeError(f"job {job_id}: too much write contention on finish")

    async def claim_reply(self, job_id: str, *, owner: str) -> JobRecord | None:
        from azure.core import MatchConditions
        from azure.core.exceptions import ResourceModifiedError
        from azure.data.tables import UpdateMode

        for _ in range(_MAX_CONFLICT_RETRIES):
            current = await self.get(job_id)
            if current is None or not current.terminal or current.reply_state != "pending":
                return None
            now = self._clock()
            mine = current.reply_owner == owner
            expired = (current.reply_lease_until or 0.0) <= now
            if not (mine or expired):
                return None
            patch = {
                "PartitionKey": job_id,
                "RowKey": _ROW,
                "reply_owner": owner,
                "reply_lease_until": now + self._lease_s,
            }
            try:
                meta = await self._table.update_entity(
                    patch,
                    mode=UpdateMode.MERGE,
                    etag=current.etag,
                    match_condition=MatchConditions.IfNotModified,
                )
            except ResourceModifiedError:
                continue
            return _merge(current, patch, meta.get("etag"))
        return None

    async def mark_replied(self, lease: JobRecord, *, state: str = "sent") -> bool:
        from azure.core import MatchConditions
        from azure.core.exceptions import ResourceModifiedError
        from azure.data.tables import UpdateMode

        current: JobRecord | None = lease
        for _ in range(_MAX_CONFLICT_RETRIES):
            if (
                current is None
                or current.reply_state != "pending"
                or current.reply_owner != lease.reply_owner
            ):
                return False  # sent already, or the lease expired and another owner took it
            try:
                await self._table.update_entity(
                    {
                        "PartitionKey": lease.job_id,
                        "RowKey": _ROW,
                        "reply_state": state,
                        "replied_at": _now_iso(),
                    },
                    mode=UpdateMode.MERGE,
                    etag=current.etag,
                    match_condition=MatchConditions.IfNotModified,
                )
            except ResourceModifiedError:
                current = await self.get(lease.job_id)
                continue
            return True
        return False

    async def _terminal_fields(self, job_id: str, outcome: Terminal) -> dict[str, Any]:
        now = _now_iso()
        fields: dict[str, Any] = {
            "status": outcome.status,
            "terminal_at": now,
            "updated_at": now,
            "finish_reason": outcome.finish_reason,
            "region": outcome.region,
            "deployment": outcome.deployment,
            "usage": json.dumps(outcome.usage) if outcome.usage else None,
            "error": json.dumps(outcome.error) if outcome.error else None,
        }
        if outcome.result is not None:
            text = json.dumps(outcome.result, separators=(",", ":"))
            fields["result_chars"] = len(text)
            if len(text) <= self._inline:
                fields["result"] = text
            else:
                name = f"results/{job_id}/{uuid.uuid4().hex}.json"
                await self._payloads.put(name, text.encode("utf-8"))
                fields["result_blob"] = name
        return {k: v for k, v in fields.items() if v is not None}


def _etag_of(result: Any) -> str | None:
    """The ETag from one operation's answer in a transaction result."""
    if isinstance(result, dict):
        return result.get("etag")
    return None


def _base_fields(job: JobMessage | None, job_id: str) -> dict[str, Any]:
    now = _now_iso()
    base: dict[str, Any] = {"created_at": now, "deliveries": 0, "parks": 0, "redrives": 0}
    if job is not None:
        base.update(_job_fields(job))
    return base


def _job_fields(job: JobMessage) -> dict[str, Any]:
    """The columns a job row takes from its message, whichever write creates the row."""
    return {
        "kind": job.kind,
        "model": job.model,
        "caller": job.caller,
        "reply_to": job.reply_to,
        "priority": job.priority,
        "deadline": job.deadline.isoformat() if job.deadline else None,
        "payload_hash": job.payload_hash(),
        "lane": job.lane,
    }


def conflict_row_key(digest: str) -> str:
    """The row (in the job's partition) recording a conflicting payload; ``digest`` is its hash."""
    return "conflict-" + digest.removeprefix("sha256:")


def _same_payload(record: JobRecord, job: JobMessage) -> JobRecord:
    """``record`` if ``job`` is the work it was created for; rows without a hash (written before
    hashes were stored, or first written terminal for a message that did not parse) match anything."""
    digest = job.payload_hash()
    if record.payload_hash and record.payload_hash != digest:
        raise JobIdConflict(job.job_id, existing_hash=record.payload_hash, submitted_hash=digest)
    return record


def _merge(current: JobRecord, patch: dict[str, Any], etag: str | None) -> JobRecord:
    """``current`` with a written patch applied, without reading the row back."""
    fields = JobRecord.__dataclass_fields__
    values: dict[str, Any] = {}
    for key, value in patch.items():
        if key == "result":
            values["inline_result"] = value
        elif key in ("usage", "error") and isinstance(value, str):
            values[key] = json.loads(value)
        elif key in fields and key not in ("job_id", "etag"):
            values[key] = value
    return replace(current, etag=etag, **values)


def _record(entity: Any) -> JobRecord:
    get = entity.get
    fields = {name for name in JobRecord.__dataclass_fields__}
    values: dict[str, Any] = {
        k: get(k) for k in fields if get(k) is not None and k not in ("job_id", "etag")
    }
    for key in ("usage", "error"):
        if isinstance(values.get(key), str):
            values[key] = json.loads(values[key])
    values.pop("inline_result", None)
    record = JobRecord(job_id=entity["PartitionKey"], etag=entity.metadata.get("etag"), **values)
    if get("result") is not None:
        record = replace(record, inline_result=get("result"))
    return record
