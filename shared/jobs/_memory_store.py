"""``InMemoryJobStore``: the job store in process memory, the twin of ``TableJobStore``.

Same protocol (``JobStore``), same decisions, same conditional-write semantics: each row has an
ETag that changes on every write; a write based on a record whose ETag is no longer the row's
loses (and the method re-reads and decides again, exactly where the table store catches
``ResourceModifiedError`` / a failed transaction); ``finish`` writes one audit row with each
winning terminal write; ``ensure`` raises ``JobIdConflict`` for the same id with another payload;
conflicting messages are recorded beside the job's row. Large results go to an in-memory blob
map under a name unique to the writer, and a loser of the ``finish`` race deletes its own.

For unit tests of the backlog's logic (no Azurite) and for a single process without storage;
``tests/functional/jobs/test_store_contract.py`` runs one suite against both stores.
"""

from __future__ import annotations

import itertools
import json
import logging
import time
import uuid
from collections.abc import Callable
from typing import Any, cast

from ._contract import JobMessage
from ._records import TRANSITIONS, JobRecord, Terminal
from ._store import (
    _MAX_CONFLICT_RETRIES,
    TERMINAL_ROW_PREFIX,
    FinishResult,
    Guard,
    Transition,
    _base_fields,
    _job_fields,
    _merge,
    _now_iso,
    _same_payload,
    conflict_row_key,
)

__all__ = ["InMemoryJobStore"]

logger = logging.getLogger(__name__)


class InMemoryJobStore:
    """JobStore in memory; big results (over ``inline_result_chars``) in ``blobs``."""

    def __init__(
        self,
        *,
        inline_result_chars: int = 30_000,
        reply_lease_s: float = 60.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._inline = inline_result_chars
        self._lease_s = reply_lease_s
        self._clock = clock
        self._rows: dict[str, JobRecord] = {}  # job id -> the job's row, as stored (its ETag)
        self._side: dict[tuple[str, str], dict[str, Any]] = {}  # conflict and audit rows
        self._etags = itertools.count(1)
        self.blobs: dict[str, bytes] = {}  # the results container

    def _etag(self) -> str:
        return f'W/"mem-{next(self._etags)}"'

    # -- reading ------------------------------------------------------------------------------

    async def get(self, job_id: str) -> JobRecord | None:
        return self._rows.get(job_id)

    async def load_result(self, record: JobRecord) -> dict[str, Any] | None:
        if record.inline_result is not None:
            return cast("dict[str, Any]", json.loads(record.inline_result))
        if record.result_blob:
            return cast("dict[str, Any]", json.loads(self.blobs[record.result_blob]))
        return None

    async def terminal_writes(self, job_id: str) -> int:
        """How many terminal writes won for ``job_id`` (its audit rows): 1 for a finished job."""
        return sum(
            1 for pk, rk in self._side if pk == job_id and rk.startswith(TERMINAL_ROW_PREFIX)
        )

    def conflicts(self, job_id: str) -> list[dict[str, Any]]:
        """The conflicting messages recorded beside ``job_id``'s row."""
        return [
            row for (pk, rk), row in self._side.items() if pk == job_id and rk[:9] == "conflict-"
        ]

    # -- writing ------------------------------------------------------------------------------

    def _write(self, job_id: str, expected: str | None, patch: dict[str, Any]) -> str | None:
        """Merge ``patch`` into the row if its ETag is still ``expected``; the new ETag, or None
        when the row changed or is gone (the table's 412 / 404)."""
        stored = self._rows.get(job_id)
        if stored is None or stored.etag != expected:
            return None
        etag = self._etag()
        self._rows[job_id] = _merge(stored, patch, etag)
        return etag

    async def ensure(self, job: JobMessage) -> tuple[JobRecord, bool]:
        existing = self._rows.get(job.job_id)
        if existing is not None:
            return _same_payload(existing, job), False
        now = _now_iso()
        entity = {
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
        record = _merge(JobRecord(job_id=job.job_id, status="queued"), entity, self._etag())
        self._rows[job.job_id] = record
        return record, True

    async def discard(self, record: JobRecord) -> bool:
        stored = self._rows.get(record.job_id)
        if stored is None or stored.etag != record.etag:
            logger.warning(
                "job %s: the row of a failed submission could not be removed",
                record.job_id,
                extra={"correlation_id": record.job_id},
            )
            return False
        del self._rows[record.job_id]
        return True

    async def record_conflict(self, job: JobMessage, error: dict[str, Any], *, owner: str) -> bool:
        key = (job.job_id, conflict_row_key(job.payload_hash()))
        if key in self._side:
            return False
        row = {
            **_job_fields(job),
            "status": "failed",
            "error": json.dumps(error),
            "owner": owner,
            "created_at": _now_iso(),
        }
        self._side[key] = {k: v for k, v in row.items() if v is not None}
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
        fresh = current is None
        for _ in range(_MAX_CONFLICT_RETRIES):
            if current is None:
                current, fresh = self._rows.get(job_id), True
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
            patch: dict[str, Any] = {"status": status, "updated_at": _now_iso()}
            for key, value in changes.items():
                if isinstance(value, tuple) and value and value[0] == "+":
                    patch[key] = int(getattr(current, key) or 0) + int(value[1])
                elif value is not None:
                    patch[key] = value
            etag = self._write(job_id, current.etag, patch)
            if etag is None:
                current = None
                continue
            return Transition(_merge(current, patch, etag), True)
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
        fields = self._terminal_fields(job_id, outcome)
        blob = fields.get("result_blob")
        known = current
        for _ in range(_MAX_CONFLICT_RETRIES):
            fresh = known is None
            current = known if known is not None else self._rows.get(job_id)
            known = None
            if current is not None and current.terminal:
                if blob:
                    self.blobs.pop(blob, None)
                return FinishResult(current, False)
            if current is not None and allow is not None and not allow(current):
                if not fresh:
                    continue  # the caller's copy may be old: decide on the row as it is
                if blob:
                    self.blobs.pop(blob, None)
                return FinishResult(current, False)
            target = (
                (current.reply_to if current is not None else None)
                or (job.reply_to if job else None)
                or reply_to
            )
            patch = dict(fields)
            patch.update(
                {
                    "reply_to": target,
                    "reply_state": "pending" if target else "none",
                    "reply_owner": owner,
                    "reply_lease_until": self._clock() + self._lease_s,
                }
            )
            patch = {k: v for k, v in patch.items() if v is not None}
            if current is None:
                if job_id in self._rows:
                    continue  # created meanwhile (the table's 409)
                base = _base_fields(job, job_id)
                base.update(patch)
                base = {k: v for k, v in base.items() if v is not None}
                etag = self._etag()
                stored = _merge(JobRecord(job_id=job_id, status=outcome.status), base, etag)
                self._rows[job_id] = stored
            else:
                written = self._write(job_id, current.etag, patch)
                if written is None:
                    continue  # changed or gone since read (the table's 412 / 404)
                stored = _merge(current, patch, written)
            self._side[(job_id, f"{TERMINAL_ROW_PREFIX}{uuid.uuid4().hex}")] = {
                "status": outcome.status,
                "owner": owner,
                "written_at": _now_iso(),
            }
            return FinishResult(stored, True)
        raise RuntimeError(f"job {job_id}: too much write contention on finish")

    async def claim_reply(self, job_id: str, *, owner: str) -> JobRecord | None:
        for _ in range(_MAX_CONFLICT_RETRIES):
            current = self._rows.get(job_id)
            if current is None or not current.terminal or current.reply_state != "pending":
                return None
            now = self._clock()
            mine = current.reply_owner == owner
            expired = (current.reply_lease_until or 0.0) <= now
            if not (mine or expired):
                return None
            patch = {"reply_owner": owner, "reply_lease_until": now + self._lease_s}
            etag = self._write(job_id, current.etag, patch)
            if etag is None:
                continue
            return _merge(current, patch, etag)
        return None

    async def mark_replied(self, lease: JobRecord, *, state: str = "sent") -> bool:
        current: JobRecord | None = lease
        for _ in range(_MAX_CONFLICT_RETRIES):
            if (
                current is None
                or current.reply_state != "pending"
                or current.reply_owner != lease.reply_owner
            ):
                return False  # sent already, or the lease expired and another owner took it
            patch = {"reply_state": state, "replied_at": _now_iso()}
            if self._write(lease.job_id, current.etag, patch) is None:
                current = self._rows.get(lease.job_id)
                continue
            return True
        return False

    def _terminal_fields(self, job_id: str, outcome: Terminal) -> dict[str, Any]:
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
                self.blobs[name] = text.encode("utf-8")
                fields["result_blob"] = name
        return {k: v for k, v in fields.items() if v is not None}

    async def aclose(self) -> None:
        return None
