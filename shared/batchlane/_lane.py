"""The batch lane: accept jobs, put them into batch files, submit, poll, finish or re-route.

Every step is recorded in the batch's row after it happened and can run again (see ``_store``):

| step     | does                                                      | if we crash after it, before the record   |
|----------|-----------------------------------------------------------|-------------------------------------------|
| accept   | job ``batched``, pending row (with the job row's ETag)    | redelivery writes both again              |
| assemble | blobs, then the batch row (``assembled``)                 | no row: the jobs are still pending        |
| prepare  | jobs point at the batch, pending rows dropped             | done again (idempotent writes)            |
| upload   | file uploaded, ``file_id`` recorded (``uploaded``)         | uploaded again (an orphan file, no batch) |
| create   | batch created for the file (``submitted``)                 | found again by its ``input_file_id``      |
| poll     | status and counts recorded; terminal -> ``applying``       | polled again                              |
| apply    | each line finishes its job (a conditional write: once),   | applied again: finished jobs stay as they |
|          | unfinished jobs re-routed; ``done``                        | are, re-route skips finished jobs         |
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import json
import logging
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..jobs import (
    Checkpoint,
    JobMessage,
    JobRecord,
    JobServices,
    Outgoing,
    PayloadStore,
    Terminal,
    conclude,
)
from ..usage import Counts, UsageKey, hour_of
from ._lines import (
    LineOutcome,
    enqueued_tokens,
    jsonl_lines,
    malformed_line,
    outcome_of,
    request_line,
)
from ._store import BatchRow, LaneStore, PendingJob

if TYPE_CHECKING:
    from openai import AsyncOpenAI

    from ..settings import BacklogSettings, GatewaySettings, RegionConfig
    from ..usage import UsageRecorder

__all__ = ["BATCHED", "BatchLane", "BatchTarget", "LaneReport"]

logger = logging.getLogger(__name__)

BATCHED = "batched"  # the job's status while it sits in the batch lane
_TERMINAL_BATCH = frozenset({"completed", "failed", "expired", "cancelled"})
_CONCURRENCY = 16
_MAX_BACKOFF_S = 3600.0
# A pending job's message larger than this (UTF-16 bytes, as Table storage counts a string
# property, at most 64 KiB) is kept in a blob beside the lane's other blobs, not in its row.
_INLINE_BODY_BYTES = 48 * 1024


@dataclass(frozen=True, slots=True)
class BatchTarget:
    """Where an alias's batches go: the first region (by priority) with a Global Batch deployment."""

    alias: str
    region: RegionConfig
    deployment: str
    enqueued_tokens: int


@dataclass
class LaneReport:
    """What one timer pass of the lane did."""

    accepted_files: int = 0
    uploaded: int = 0
    submitted: int = 0
    held_for_quota: int = 0
    token_limit_retries: int = 0
    finished: int = 0
    rerouted: int = 0
    expired_jobs: int = 0
    batches_done: int = 0


def batch_targets(settings: GatewaySettings) -> dict[str, BatchTarget]:
    """Alias -> its batch target, from the region table."""
    targets: dict[str, BatchTarget] = {}
    for region in sorted(settings.regions, key=lambda r: r.priority):
        for alias, dep in region.batch.items():
            targets.setdefault(
                alias, BatchTarget(alias, region, dep.deployment, dep.enqueued_tokens)
            )
    return targets


async def _no_checkpoint(stage: str, ref: str) -> None:
    return None


class BatchLane:
    """The lane over one job store, bus and lane table; clients come from ``clients(region)``."""

    def __init__(
        self,
        settings: BacklogSettings,
        targets: dict[str, BatchTarget],
        store: LaneStore,
        payloads: PayloadStore,
        clients: Callable[[RegionConfig], AsyncOpenAI],
        *,
        checkpoint: Checkpoint | None = None,
        usage: UsageRecorder | None = None,
    ) -> None:
        self._settings = settings
        self.targets = targets
        self.store = store
        self._payloads = payloads
        self._clients = clients
        self._checkpoint = checkpoint or _no_checkpoint
        self._usage = usage  # batch lines counted at the batch price
        self._lock = asyncio.Lock()
        self.closers: tuple[Callable[[], Awaitable[Any]], ...] = ()

    async def aclose(self) -> None:
        """Close the lane's own clients."""
        for closer in self.closers:
            await closer()

    # -- the lane decision ---------------------------------------------------------------------
    def wants(self, job: JobMessage, now: float) -> bool:
        """True when the job goes to the batch lane: ``batch``, or ``auto`` with time to spare."""
        if job.lane == "standard" or job.kind != "chat" or job.model not in self.targets:
            return False
        if job.lane == "batch":
            return True
        if job.deadline is None:
            return True
        spare = job.deadline.timestamp() - now
        return spare > self._settings.batch_window_s + self._settings.batch_margin_s

    async def accept(self, svc: JobServices, job: JobMessage, record: JobRecord) -> None:
        """Record the job as waiting for a batch file (idempotent)."""
        if record.batch_id:
            return  # a redelivery after it went into a batch (which finishes or re-routes it)
        assert job.kind == "chat"
        target = self.targets[job.model]
        line = request_line(job, target.deployment)
        # batched first, then the pending row with the row's ETag (a hint for ``_prepare``). A crash
        # between the two leaves the message unsettled: its redelivery comes here again.
        step = await _move(svc, job.job_id, BATCHED, current=record, lane="batch")
        if step.record is None or step.record.terminal:
            return  # cancelled (or finished) meanwhile: nothing to put into a file
        body = job.to_body().decode("utf-8")
        body_blob = None
        if _large(body):  # blob first, then the row naming it (a crash between: rewritten)
            body_blob = _body_blob(job.job_id)
            await self._payloads.put(body_blob, body.encode("utf-8"))
            body = ""
        pending = PendingJob(
            job.job_id,
            job.model,
            body,
            enqueued_tokens(job.request),  # type: ignore[arg-type]
            len(line),
            svc.clock(),
            step.record.etag if step.moved else None,
            body_blob,
        )
        await self.store.add_pending(pending)

    # -- the timer's pass ----------------------------------------------------------------------
    async def tick(self, svc: JobServices) -> LaneReport:
        """Move every open batch one or more steps, then flush waiting jobs into new files."""
        report = LaneReport()
        async with self._lock:
            unprepared: set[str] = set()  # aliases with a batch still ``assembled`` (step failed)
            for row in await self.store.batches():
                try:
                    await self._advance(svc, row, report)
                except Exception:
                    logger.exception("batch lane: batch %s could not advance", row.batch_ref)
                    if row.state == "assembled":
                        unprepared.add(row.alias)
            for alias in sorted(await self.store.pending_aliases()):
                if alias in unprepared:
                    # its pending rows may be that batch's members: no second batch of them
                    # (the step is tried again on the next tick, the pending rows wait)
                    continue
                if alias in self.targets:
                    try:
                        await self._assemble(svc, alias, report)
                    except Exception:
                        logger.exception("batch lane: jobs of %s could not be assembled", alias)
        return report

    async def _advance(self, svc: JobServices, row: BatchRow, report: LaneReport) -> None:
        now = svc.clock()
        if row.state == "assembled":
            row = await self._prepare(svc, row)
        if row.next_at > now:
            return
        if row.state == "prepared":
            row = await self._upload(row, report)
        if row.state == "uploaded":
            row = await self._create(row, report)
        if row.state == "submitted":
            row = await self._poll(svc, row, report)
        if row.state == "applying":
            await self._apply(svc, row, report)

    # -- assemble and prepare ------------------------------------------------------------------
    async def _assemble(self, svc: JobServices, alias: str, report: LaneReport) -> None:
        settings = self._settings
        waiting = await self.store.pending(alias)
        while waiting:
            take: list[PendingJob] = []
            size = 0
            for job in waiting:
                if take and (
                    len(take) >= settings.batch_max_requests
                    or size + job.line_bytes > settings.batch_max_bytes
                ):
                    break
                take.append(job)
                size += job.line_bytes
            full = len(take) < len(waiting) or len(take) >= settings.batch_max_requests
            oldest_waited = svc.clock() - take[0].since
            if not full and oldest_waited < settings.batch_max_wait_s:
                return
            await self._new_batch(svc, alias, take, report)
            waiting = waiting[len(take) :]

    async def _new_batch(
        self, svc: JobServices, alias: str, take: list[PendingJob], report: LaneReport
    ) -> None:
        target = self.targets[alias]
        ref = _batch_ref(alias, take)
        if await self.store.get_batch(ref) is not None:
            # the same jobs were assembled before and that row moved on (it would have been
            # advanced above if it were still open): only a fresh id may be written
            ref = f"lb-{uuid.uuid4().hex[:20]}"
        bodies = [await self._pending_body(p) for p in take]
        jobs = [JobMessage.model_validate_json(b) for b in bodies]
        members = "".join(b + "\n" for b in bodies).encode("utf-8")
        lines = b"".join(request_line(j, target.deployment) for j in jobs)
        deadlines = [j.deadline.timestamp() for j in jobs if j.deadline is not None]
        members_blob, input_blob = f"batchlane/{ref}/members.jsonl", f"batchlane/{ref}/input.jsonl"
        await self._payloads.put(members_blob, members)
        await self._payloads.put(input_blob, lines)
        row = BatchRow(
            batch_ref=ref,
            alias=alias,
            region=target.region.name,
            deployment=target.deployment,
            state="assembled",
            count=len(take),
            tokens=sum(p.tokens for p in take),
            created=svc.clock(),
            members_blob=members_blob,
            input_blob=input_blob,
            earliest_deadline=min(deadlines) if deadlines else None,
        )
        row = await self.store.create_batch(row)
        report.accepted_files += 1
        logger.info("batch lane: %s assembled with %d jobs for %s", ref, len(take), alias)
        await self._checkpoint("after_assemble", ref)
        await self._prepare(svc, row, {p.job_id: p.etag for p in take if p.etag})

    async def _pending_body(self, job: PendingJob) -> str:
        if job.body_blob:
            data: bytes = await self._payloads.get(job.body_blob)
            return data.decode("utf-8")
        return job.body

    async def _member_lines(self, row: BatchRow) -> list[str]:
        return jsonl_lines(await self._payloads.get(row.members_blob))

    async def _members(self, row: BatchRow) -> list[JobMessage]:
        return [JobMessage.model_validate_json(x) for x in await self._member_lines(row)]

    async def _prepare(
        self, svc: JobServices, row: BatchRow, hints: dict[str, str] | None = None
    ) -> BatchRow:
        """Each member points at the batch; its pending row goes. ``hints``: job id -> the row's
        ETag as ``accept`` left it, so the write needs no read (a stale one costs a re-read).
        The ETags written here are kept beside the batch for ``_apply``, the same way."""
        lines = await self._member_lines(row)
        members = [JobMessage.model_validate_json(x) for x in lines]
        sem = asyncio.Semaphore(_CONCURRENCY)
        known = hints or {}
        etags: dict[str, str] = {}

        async def mark(job: JobMessage) -> None:
            async with sem:
                step = await _move(
                    svc,
                    job.job_id,
                    BATCHED,
                    current=_hint(job, known.get(job.job_id)),
                    lane="batch",
                    batch_id=row.batch_ref,
                )
                if step.moved and step.record is not None and step.record.etag:
                    etags[job.job_id] = step.record.etag

        await asyncio.gather(*(mark(j) for j in members))
        await self._payloads.put(_etags_blob(row), json.dumps(etags).encode("utf-8"))
        await self.store.drop_pending(row.alias, [j.job_id for j in members])
        for job, line in zip(members, lines, strict=True):
            if _large(line):
                await self._payloads.delete(_body_blob(job.job_id))
        row = await self.store.update_batch(row, state="prepared")
        await self._checkpoint("after_prepare", row.batch_ref)
        return row

    # -- upload and create ---------------------------------------------------------------------
    def _client(self, row: BatchRow) -> AsyncOpenAI:
        return self._clients(self.targets[row.alias].region)

    async def _upload(self, row: BatchRow, report: LaneReport) -> BatchRow:
        data = await self._payloads.get(row.input_blob)
        uploaded = await self._client(row).files.create(
            file=(f"{row.batch_ref}.jsonl", io.BytesIO(data)), purpose="batch"
        )
        await self._checkpoint("after_upload", row.batch_ref)
        report.uploaded += 1
        return await self.store.update_batch(row, state="uploaded", file_id=uploaded.id)

    async def _create(self, row: BatchRow, report: LaneReport) -> BatchRow:
        from openai import NotFoundError

        client = self._client(row)
        existing = await self._find_batch(client, row.file_id)
        if existing is None:
            used = sum(
                other.tokens
                for other in await self.store.batches()
                if other.state == "submitted"
                and other.deployment == row.deployment
                and other.region == row.region
                and other.batch_ref != row.batch_ref
            )
            if used + row.tokens > self.targets[row.alias].enqueued_tokens:
                report.held_for_quota += 1
                logger.info(
                    "batch lane: %s waits for enqueued-token quota (%d + %d > %d)",
                    row.batch_ref,
                    used,
                    row.tokens,
                    self.targets[row.alias].enqueued_tokens,
                )
                return row
            try:
                existing = await client.batches.create(
                    input_file_id=row.file_id or "",
                    endpoint="/chat/completions",  # type: ignore[arg-type]  # Azure's form (also /v1/...)
                    completion_window="24h",
                    metadata={"lane_batch": row.batch_ref},
                )
            except NotFoundError:
                logger.warning(
                    "batch lane: %s: the upstream no longer knows file %s (404): uploaded again",
                    row.batch_ref,
                    row.file_id,
                )
                return await self.store.update_batch(row, state="prepared", file_id=None)
            await self._checkpoint("after_create", row.batch_ref)
        report.submitted += 1
        return await self.store.update_batch(
            row, state="submitted", aoai_batch_id=existing.id, aoai_status=existing.status
        )

    @staticmethod
    async def _find_batch(client: AsyncOpenAI, file_id: str | None) -> Any:
        """A batch already created for this file (a crash between create and its record)."""
        if not file_id:
            return None
        async for batch in client.batches.list(limit=100):
            if batch.input_file_id == file_id:
                return batch
        return None

    # -- poll ------------------------------------------------------------------------------------
    async def _poll(self, svc: JobServices, row: BatchRow, report: LaneReport) -> BatchRow:
        from openai import NotFoundError

        try:
            batch = await self._client(row).batches.retrieve(row.aoai_batch_id or "")
        except NotFoundError:
            # deleted or purged upstream (or a restarted endpoint): as a failed batch, whose
            # unfinished jobs go to the standard lane
            logger.warning(
                "batch lane: %s: the upstream no longer knows batch %s (404): its jobs are "
                "re-routed",
                row.batch_ref,
                row.aoai_batch_id,
            )
            row = await self.store.update_batch(
                row,
                state="applying",
                aoai_status="failed",
                output_file_id=None,
                error_file_id=None,
                error_code="batch_not_found",
            )
            await self._checkpoint("after_poll", row.batch_ref)
            return row
        counts = batch.request_counts.model_dump() if batch.request_counts else {}
        if batch.status == "failed" and _error_code(batch) == "token_limit_exceeded":
            attempts = row.attempts + 1
            delay = min(_MAX_BACKOFF_S, self._settings.batch_retry_s * 2 ** (attempts - 1))
            report.token_limit_retries += 1
            logger.info(
                "batch lane: %s refused (token_limit_exceeded); retry in %.0fs",
                row.batch_ref,
                delay,
            )
            return await self.store.update_batch(
                row,
                state="prepared",
                file_id=None,
                aoai_batch_id=None,
                aoai_status=None,
                attempts=attempts,
                next_at=svc.clock() + delay,
            )
        if batch.status in _TERMINAL_BATCH:
            row = await self.store.update_batch(
                row,
                state="applying",
                aoai_status=batch.status,
                request_counts=counts,
                output_file_id=batch.output_file_id,
                error_file_id=batch.error_file_id,
                error_code=_error_code(batch),
            )
            await self._checkpoint("after_poll", row.batch_ref)
            return row
        if batch.status != row.aoai_status or counts != row.request_counts:
            row = await self.store.update_batch(
                row, aoai_status=batch.status, request_counts=counts
            )
        return await self._reroute_near_deadline(svc, row, report)

    async def _reroute_near_deadline(
        self, svc: JobServices, row: BatchRow, report: LaneReport
    ) -> BatchRow:
        margin = self._settings.batch_margin_s
        now = svc.clock()
        if row.earliest_deadline is None or row.earliest_deadline - margin > now:
            return row
        later: list[float] = []
        for job in await self._members(row):
            if job.deadline is None:
                continue
            if job.deadline.timestamp() - margin <= now:
                await self._reroute(svc, job, row, report)
            else:
                later.append(job.deadline.timestamp())
        return await self.store.update_batch(row, earliest_deadline=min(later) if later else None)

    # -- apply -----------------------------------------------------------------------------------
    async def _apply(self, svc: JobServices, row: BatchRow, report: LaneReport) -> None:
        from openai import NotFoundError

        client = self._client(row)
        members = {j.job_id: j for j in await self._members(row)}
        outcomes: dict[str, Any] = {}
        for file_id in (row.output_file_id, row.error_file_id):
            if not file_id:
                continue
            try:
                content = await client.files.content(file_id)
            except NotFoundError:
                logger.warning(
                    "batch lane: %s: result file %s is gone (404): its jobs are re-routed",
                    row.batch_ref,
                    file_id,
                )
                continue
            # bytes that are not UTF-8 become U+FFFD: such a line fails to match or parse alone
            for raw in jsonl_lines(content.content, errors="replace"):
                outcome = _line_outcome(raw, row)
                if outcome is not None and outcome.job_id in members:
                    outcomes[outcome.job_id] = outcome
        await self._checkpoint("after_download", row.batch_ref)
        sem = asyncio.Semaphore(_CONCURRENCY)
        owner = f"batch:{row.batch_ref}"
        etags = await self._etags(row)

        async def settle(job: JobMessage) -> None:
            async with sem:
                outcome = outcomes.get(job.job_id)
                if outcome is not None and outcome.terminal is not None:
                    result = await conclude(
                        svc,
                        job.job_id,
                        outcome.terminal,
                        owner=owner,
                        job=job,
                        current=_hint(job, etags.get(job.job_id), row.batch_ref),
                    )
                    report.finished += int(result.won)
                    if result.won:
                        self._count_usage(svc, job, outcome.terminal)
                else:
                    await self._reroute(svc, job, row, report)

        await asyncio.gather(*(settle(j) for j in members.values()))
        await self._checkpoint("after_finish", row.batch_ref)
        await self.store.update_batch(row, state="done", finished_at=svc.clock())
        report.batches_done += 1
        logger.info(
            "batch lane: %s %s: %d lines applied, the rest re-routed",
            row.batch_ref,
            row.aoai_status,
            len(outcomes),
        )

    async def _etags(self, row: BatchRow) -> dict[str, str]:
        """The members' ETags ``_prepare`` wrote (hints only: none when the blob is missing)."""
        from azure.core.exceptions import ResourceNotFoundError

        try:
            data = await self._payloads.get(_etags_blob(row))
        except ResourceNotFoundError:
            return {}
        return dict(json.loads(data))

    def _count_usage(self, svc: JobServices, job: JobMessage, terminal: Terminal) -> None:
        """Count a finished line's tokens in the usage store, on lane ``batch`` (batch price)."""
        if self._usage is None or not terminal.usage or not terminal.deployment:
            return

        self._usage.add(
            UsageKey(
                hour_of(svc.clock()),
                job.caller or "anonymous",
                job.model,
                terminal.deployment,
                "batch",
            ),
            Counts(
                1,
                int(terminal.usage.get("prompt_tokens") or 0),
                0,
                int(terminal.usage.get("completion_tokens") or 0),
            ),
        )

    async def _reroute(
        self, svc: JobServices, job: JobMessage, row: BatchRow, report: LaneReport
    ) -> None:
        """Send an unfinished job to the standard lane, or fail it when its deadline passed."""
        record = await svc.store.get(job.job_id)
        if record is None or record.terminal or record.status not in (BATCHED, "queued"):
            return  # finished, or the standard lane runs it already
        owner = f"batch:{row.batch_ref}"
        if job.deadline_passed(svc.clock()):
            await conclude(
                svc,
                job.job_id,
                Terminal.failure(
                    "deadline_exceeded",
                    "The job's deadline passed while it waited in the batch lane.",
                    {
                        "deadline": job.deadline.isoformat() if job.deadline else None,
                        "lane": "batch",
                    },
                ),
                owner=owner,
                job=job,
                current=record,
            )
            report.expired_jobs += 1
            return
        if record.status == BATCHED:  # queued first: the worker runs only a queued job
            await _move(svc, job.job_id, "queued", current=record, lane="standard")
        standard = job.model_copy(update={"lane": "standard"})
        body = await svc.outgoing_body(job.job_id, standard.to_body(), job.reply_to)
        await svc.bus.send(
            self._settings.queue,
            Outgoing(
                body=body,
                message_id=f"{job.job_id}:standard",
                correlation_id=job.job_id,
                subject=job.kind,
                application_properties={"priority": job.priority, "model": job.model},
            ),
        )
        report.rerouted += 1


def _line_outcome(raw: str, row: BatchRow) -> LineOutcome | None:
    """One output/error line's outcome; a line that cannot be read fails its own job only."""
    try:
        item = json.loads(raw)
        if not isinstance(item, dict):
            raise ValueError(f"the line is a JSON {type(item).__name__}, not an object")
        return outcome_of(item, region=row.region, deployment=row.deployment)
    except (ValueError, TypeError, AttributeError, IndexError, RecursionError) as exc:
        outcome = malformed_line(raw, str(exc), region=row.region, deployment=row.deployment)
        logger.warning(
            "batch lane: %s: an output line could not be read (%s)%s",
            row.batch_ref,
            type(exc).__name__,
            f"; job {outcome.job_id} fails" if outcome is not None else "; it names no job",
        )
        return outcome


def _large(body: str) -> bool:
    return len(body.encode("utf-16-le", "surrogatepass")) > _INLINE_BODY_BYTES


def _body_blob(job_id: str) -> str:
    return f"batchlane/pending/{job_id}.json"


def _batch_ref(alias: str, take: list[PendingJob]) -> str:
    """The batch's id from its member set: assembling the same pending jobs again (a step after
    the row's creation failed) names the same row and blobs, never a second batch of them."""
    digest = hashlib.sha256("\n".join([alias, *sorted(p.job_id for p in take)]).encode("utf-8"))
    return f"lb-{digest.hexdigest()[:20]}"


def _etags_blob(row: BatchRow) -> str:
    return f"batchlane/{row.batch_ref}/etags.json"


def _hint(job: JobMessage, etag: str | None, batch_ref: str | None = None) -> JobRecord | None:
    """The job's row as the lane last wrote it (``batched``, with that write's ETag), so the next
    conditional write needs no read. Only a hint: the job store writes nothing unless the ETag
    still matches, and on a mismatch reads the row and decides on it as it is."""
    if etag is None:
        return None
    return JobRecord(
        job_id=job.job_id,
        status="batched",
        kind=job.kind,
        model=job.model,
        caller=job.caller,
        reply_to=job.reply_to,
        priority=job.priority,
        lane="batch",
        batch_id=batch_ref,
        etag=etag,
    )


async def _move(svc: JobServices, job_id: str, status: str, **changes: Any) -> Any:
    """The lane's one job-status write (a non-terminal move along the job store's TRANSITIONS;
    never touches a finished job)."""
    return await svc.store.advance(job_id, status, **changes)


def _error_code(batch: Any) -> str | None:
    errors = getattr(batch, "errors", None)
    data = getattr(errors, "data", None) or []
    return getattr(data[0], "code", None) if data else None
