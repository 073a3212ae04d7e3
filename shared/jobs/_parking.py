"""Parking throttled jobs in a Storage queue, invisible until their retry time.

A parked message is an envelope (JSON, base64-encoded on the wire like the Functions queue
trigger expects by default, ``extensions.queues.messageEncoding = base64``)::

    {"v": 1, "job_id", "model", "priority", "parks", "redrives", "retry_at", "deadline",
     "cost", "park_id", "job_blob": "parked/<job>/<park_id>.json"}

The job message itself is always in the blob (``ParkingLot.body_blob``), never only in the
message: a parked message is invisible until its retry time, and the operations re-drive
(``ops/parked/redrive``) must reach the body now, from the job row's ``park_id``. Envelopes
parked before that carry the job inline (``"job": {...}``); they are still read.

``park_id`` names this parked copy; the job row records the one live copy's id, so a copy the
row does not name (parked twice after a lost record, or the job moved on) is dropped, never run.

``cost`` is the tokens the access layer charges the job (``Gateway.estimate_cost``), so the timer
can plan re-drives in tokens without reading the job; envelopes parked before it existed lack
it (``ParkedJob.cost`` None: the timer uses the default estimate).

Visibility is capped at 7 days (the Storage limit) and messages never expire (ttl -1), so a
parked job is not lost silently. Queue names: the parking queue and ``<parking>-poison``.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from shared.settings import MAX_VISIBILITY_S

from ._contract import JobMessage, parse_job_message

if TYPE_CHECKING:
    from azure.storage.queue.aio import QueueClient

    from ._payloads import PayloadStore

__all__ = ["ParkedJob", "ParkingLot", "decode_envelope"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class ParkedJob:
    """One parked envelope, plus the queue handle (id, pop receipt) of the copy we hold."""

    job_id: str
    model: str
    priority: int
    parks: int
    redrives: int
    retry_at: float
    deadline: float | None
    job: dict[str, Any] | None
    job_blob: str | None
    reason: str | None = None
    handle: Any = None
    cost: int | None = None  # estimated tokens; None in envelopes from before the field existed
    park_id: str | None = None  # this copy's id (the job row names the live one)

    def envelope(self, **changes: Any) -> dict[str, Any]:
        out = {
            "v": 1,
            "job_id": self.job_id,
            "model": self.model,
            "priority": self.priority,
            "parks": self.parks,
            "redrives": self.redrives,
            "retry_at": self.retry_at,
            "deadline": self.deadline,
        }
        if self.cost is not None:
            out["cost"] = self.cost
        if self.park_id is not None:
            out["park_id"] = self.park_id
        if self.job is not None:
            out["job"] = self.job
        if self.job_blob is not None:
            out["job_blob"] = self.job_blob
        if self.reason is not None:
            out["reason"] = self.reason
        out.update(changes)
        return out


def decode_envelope(text: str, handle: Any = None) -> ParkedJob:
    """Parse a parking envelope; ValueError when it is not one."""
    raw = json.loads(text)
    if not isinstance(raw, dict) or raw.get("v") != 1 or not isinstance(raw.get("job_id"), str):
        raise ValueError("not a parking envelope")
    return ParkedJob(
        job_id=raw["job_id"],
        model=str(raw.get("model", "")),
        priority=int(raw.get("priority", 5)),
        parks=int(raw.get("parks", 0)),
        redrives=int(raw.get("redrives", 0)),
        retry_at=float(raw.get("retry_at", 0.0)),
        deadline=float(raw["deadline"]) if raw.get("deadline") is not None else None,
        job=raw.get("job"),
        job_blob=raw.get("job_blob"),
        reason=raw.get("reason"),
        handle=handle,
        cost=_cost(raw.get("cost")),
        park_id=raw["park_id"] if isinstance(raw.get("park_id"), str) else None,
    )


def _cost(value: Any) -> int | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
        return None
    return int(value)


class ParkingLot:
    """The parking queue and its poison queue. Clients must use base64 text encode/decode policies."""

    def __init__(
        self,
        queue: QueueClient,
        poison: QueueClient,
        payloads: PayloadStore,
        *,
        max_park_s: float = MAX_VISIBILITY_S,
        min_park_s: float = 1.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._queue = queue
        self._poison = poison
        self._payloads = payloads
        self._max_park_s = min(max_park_s, MAX_VISIBILITY_S)
        self._min_park_s = min_park_s
        self._clock = clock
        self._ready: set[str] = set()

    async def _create(self, client: QueueClient) -> None:
        from azure.core.exceptions import ResourceExistsError

        if client.queue_name in self._ready:
            return
        try:
            await client.create_queue()
        except ResourceExistsError:
            pass
        self._ready.add(client.queue_name)

    def visibility_for(self, retry_at: float, deadline: float | None) -> int:
        """Seconds until the job should be looked at again: its retry time, no later than its deadline."""
        due = retry_at if deadline is None else min(retry_at, deadline)
        wait = max(self._min_park_s, due - self._clock())
        return int(
            min(self._max_park_s, max(1.0, round(wait + 0.4999)))
        )  # whole seconds, rounded up

    async def park(
        self,
        job: JobMessage,
        *,
        retry_at: float,
        parks: int,
        redrives: int,
        cost: int | None = None,
        park_id: str | None = None,
    ) -> int:
        """Park ``job`` until ``retry_at``; returns the visibility timeout used (seconds).
        ``cost``: its estimated tokens, kept in the envelope for the timer's plan."""
        body = job.to_body()
        deadline = job.deadline.timestamp() if job.deadline else None
        parked = ParkedJob(
            job_id=job.job_id,
            model=job.model,
            priority=job.priority,
            parks=parks,
            redrives=redrives,
            retry_at=retry_at,
            deadline=deadline,
            job=None,
            job_blob=self.body_blob(job.job_id, park_id or uuid.uuid4().hex),
            cost=cost,
            park_id=park_id,
        )
        await self._payloads.put(parked.job_blob or "", body)
        visibility = self.visibility_for(retry_at, deadline)
        await self._create(self._queue)
        await self._queue.send_message(
            json.dumps(parked.envelope()), visibility_timeout=visibility, time_to_live=-1
        )
        return visibility

    @staticmethod
    def body_blob(job_id: str, park_id: str) -> str:
        """Where ``park`` keeps the body of the parked copy ``park_id`` of ``job_id``."""
        return f"parked/{job_id}/{park_id}.json"

    async def due(
        self, *, max_messages: int, claim_s: float, batch: int = 32
    ) -> AsyncIterator[ParkedJob | tuple[str, Any]]:
        """Parked jobs whose time has come, each hidden for ``claim_s`` while the caller moves it.
        A message that is not an envelope comes out as ``(error, handle)``."""
        await self._create(self._queue)
        taken = 0
        while taken < max_messages:
            pager = self._queue.receive_messages(
                messages_per_page=min(batch, max_messages - taken),
                visibility_timeout=int(max(1, claim_s)),
                max_messages=min(batch, max_messages - taken),
            )
            page = [message async for message in pager]
            if not page:
                return
            taken += len(page)
            for message in page:
                try:
                    yield decode_envelope(message.content, handle=message)
                except (ValueError, TypeError) as exc:
                    yield (f"unreadable parked message: {exc.__class__.__name__}", message)

    async def job_of(self, parked: ParkedJob) -> JobMessage:
        """The parked job message (from the envelope or its blob); InvalidJobMessage if corrupt."""
        body = (
            json.dumps(parked.job).encode()
            if parked.job is not None
            else await self._payloads.get(parked.job_blob or "")
        )
        return parse_job_message(body, fallback_job_id=parked.job_id)

    async def job_body(self, parked: ParkedJob) -> bytes:
        if parked.job is not None:
            return json.dumps(parked.job).encode()
        return await self._payloads.get(parked.job_blob or "")

    async def defer(self, handle: Any, delay_s: float) -> None:
        await self._queue.update_message(
            handle, pop_receipt=handle.pop_receipt, visibility_timeout=int(max(1, delay_s))
        )

    async def remove(self, parked_or_handle: ParkedJob | Any) -> None:
        from azure.core.exceptions import ResourceNotFoundError

        handle = (
            parked_or_handle.handle if isinstance(parked_or_handle, ParkedJob) else parked_or_handle
        )
        try:
            await self._queue.delete_message(handle)
        except ResourceNotFoundError:  # already gone (or our claim expired and another run took it)
            pass

    async def forget_blob(self, parked: ParkedJob) -> None:
        if parked.job_blob:
            await self._payloads.delete(parked.job_blob)

    async def to_poison(self, parked: ParkedJob, reason: str) -> None:
        """Move to ``<parking>-poison`` with ``reason``; the poison trigger turns it into a terminal failure."""
        await self._create(self._poison)
        await self._poison.send_message(json.dumps(parked.envelope(reason=reason)), time_to_live=-1)
        await self.remove(parked)

    async def to_poison_raw(self, text: str, handle: Any, reason: str) -> None:
        await self._create(self._poison)
        await self._poison.send_message(
            json.dumps({"v": 0, "reason": reason, "raw": text[:20_000]}), time_to_live=-1
        )
        await self.remove(handle)

    async def aclose(self) -> None:
        await self._queue.close()
        await self._poison.close()
