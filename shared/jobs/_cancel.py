"""Cancelling a job (``POST /api/v1/jobs/{id}/cancel``): a waiting job ends ``cancelled``, once.

The cancel is the job's terminal write (``conclude``: conditional on the ETag, so exactly one
terminal state wins), allowed only while the row is in ``CANCELLABLE``. Whatever still holds a copy
of the job finds it terminal and drops it: the worker (a queued message), the re-drive (a parked
copy), and the batch lane (a pending row, removed here too, or a line of a submitted batch, whose
result ``finish`` refuses to write; the reply is the cancel's, sent once). A running job or a
finished one answers ``JobNotCancellable``; cancelling a cancelled job again is a no-op (and
finishes a reply that a crash left pending).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from ._conclude import conclude, deliver_reply
from ._records import CANCELLABLE, JobRecord, Terminal

if TYPE_CHECKING:
    from ._conclude import JobServices

__all__ = ["JobNotCancellable", "cancel_job"]

logger = logging.getLogger(__name__)


class JobNotCancellable(Exception):
    """409: ``job_not_cancellable`` (running) or ``job_already_finished`` (succeeded or failed)."""

    def __init__(self, record: JobRecord) -> None:
        self.record = record
        if record.terminal:
            self.code = "job_already_finished"
            message = f"Job '{record.job_id}' already {record.status}; it cannot be cancelled."
        else:
            self.code = "job_not_cancellable"
            message = (
                f"Job '{record.job_id}' is {record.status}: its model call is in flight, "
                "so it will finish with that call's outcome."
            )
        super().__init__(message)


def _cancellable(record: JobRecord) -> bool:
    return record.status in CANCELLABLE


async def cancel_job(svc: JobServices, job_id: str, *, by: str | None) -> JobRecord | None:
    """Cancel ``job_id``; the record as stored now (None: no such job). Raises
    ``JobNotCancellable`` when the job runs or has finished otherwise."""
    record = await svc.store.get(job_id)
    if record is None:
        return None
    owner = (
        f"cancel:{job_id}"  # one owner for every cancel call: a repeated call may resume the reply
    )
    if record.status == "cancelled":
        await deliver_reply(svc, record, owner=owner)
        return record
    if not _cancellable(record):
        raise JobNotCancellable(record)
    ended = await conclude(
        svc, job_id, Terminal.cancelled(by), owner=owner, current=record, allow=_cancellable
    )
    if ended.record.status != "cancelled":
        raise JobNotCancellable(ended.record)  # it started or finished meanwhile
    if ended.won and record.status == "batched" and not record.batch_id:
        lane = svc.batch_lane  # waiting for a batch file: its pending row goes (a race is harmless)
        if lane is not None and record.model:
            await lane.store.drop_pending(record.model, [job_id])
    return ended.record
