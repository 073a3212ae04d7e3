"""What the job store holds about a job, and the terminal outcome written exactly once."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

__all__ = ["TERMINAL", "TRANSITIONS", "JobRecord", "JobStatus", "ReplyState", "Terminal"]

__all__ += ["CANCELLABLE"]

JobStatus = Literal["queued", "running", "parked", "batched", "succeeded", "failed", "cancelled"]
ReplyState = Literal["none", "pending", "sent", "undeliverable"]
TERMINAL: frozenset[str] = frozenset({"succeeded", "failed", "cancelled"})
# The states a caller's cancel may end (``POST /api/v1/jobs/{id}/cancel``): the job waits (queued,
# parked) or sits in the batch lane (batched: waiting for a file, or in a submitted batch, whose
# line for it is then dropped: ``finish`` never overwrites a terminal state). A running job is not
# cancellable: its model call is in flight, and its one terminal state is the call's outcome.
CANCELLABLE: frozenset[str] = frozenset({"queued", "parked", "batched"})

# The state machine: queued -> running -> parked -> queued ... -> one terminal state. Every
# non-terminal state may end (``finish``: succeeded, failed; cancelled only from ``CANCELLABLE``);
# a terminal state never changes. running -> running is a
# redelivery of the message that runs the job (same runner); queued -> queued and running -> queued
# are re-sends (a re-drive whose send must be repeated, a dead-lettered job re-driven).
TRANSITIONS: dict[str, frozenset[str]] = {
    "queued": frozenset({"queued", "running", "batched"}),
    "batched": frozenset({"batched", "queued"}),  # the batch lane: in a batch, or re-routed
    "running": frozenset({"running", "parked", "queued"}),
    "parked": frozenset({"queued"}),
}


@dataclass(frozen=True, slots=True)
class Terminal:
    """The one terminal outcome of a job: a result, or an error with a stable code."""

    status: Literal["succeeded", "failed", "cancelled"]
    result: dict[str, Any] | None = None
    error: dict[str, Any] | None = None  # {"code", "message", "details"}
    finish_reason: str | None = None
    region: str | None = None
    deployment: str | None = None
    usage: dict[str, Any] | None = None

    @classmethod
    def success(cls, result: dict[str, Any], **meta: Any) -> Terminal:
        return cls(status="succeeded", result=result, **meta)

    @classmethod
    def cancelled(cls, by: str | None) -> Terminal:
        """The caller's cancel: an error with the stable code ``job_cancelled``."""
        return cls(
            status="cancelled",
            error={
                "code": "job_cancelled",
                "message": "The job was cancelled before it ran.",
                "details": {"cancelled_by": by} if by else {},
            },
        )

    @classmethod
    def failure(
        cls, code: str, message: str, details: dict[str, Any] | None = None, **meta: Any
    ) -> Terminal:
        return cls(
            status="failed",
            error={"code": code, "message": message, "details": details or {}},
            **meta,
        )


@dataclass(frozen=True, slots=True)
class JobRecord:
    """One job's row. ``etag`` is the optimistic-concurrency token of the version read."""

    job_id: str
    status: JobStatus
    kind: str | None = None
    model: str | None = None
    caller: str | None = None
    reply_to: str | None = None
    priority: int = 5
    deadline: str | None = None
    payload_hash: str | None = None  # JobMessage.payload_hash() of the message that created the row
    created_at: str | None = None
    updated_at: str | None = None
    terminal_at: str | None = None
    deliveries: int = 0
    parks: int = 0
    redrives: int = 0
    retry_at: float | None = None
    result_blob: str | None = None
    result_chars: int = 0
    finish_reason: str | None = None
    region: str | None = None
    deployment: str | None = None
    usage: dict[str, Any] | None = None
    error: dict[str, Any] | None = None
    reply_state: ReplyState = "none"
    reply_owner: str | None = None
    reply_lease_until: float | None = None
    runner: str | None = None  # the delivery (``Delivery.owner``) that set ``running``; "" = none
    park_id: str | None = None  # the one live parked copy (its envelope carries the same id)
    lane: str | None = None  # the batch lane's hooks (shared/batchlane): "standard" | "batch"
    batch_id: str | None = None  # the lane's batch this job went into
    etag: str | None = field(default=None, compare=False)
    inline_result: str | None = field(default=None, repr=False)

    @property
    def terminal(self) -> bool:
        return self.status in TERMINAL

    def public(self) -> dict[str, Any]:
        """The job as the status endpoint shows it (without the result body)."""
        out: dict[str, Any] = {
            "id": self.job_id,
            "object": "job",
            "status": self.status,
            "kind": self.kind,
            "model": self.model,
            "priority": self.priority,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
            "deliveries": self.deliveries,
            "parks": self.parks,
            "lane": self.lane or "standard",
        }
        if self.deadline:
            out["deadline"] = self.deadline
        if self.status == "parked" and self.retry_at:
            out["retry_at"] = self.retry_at
        if self.terminal:
            out["completed_at"] = self.terminal_at
            out["reply"] = self.reply_state
        if self.finish_reason:
            out["finish_reason"] = self.finish_reason
        if self.error:
            out["error"] = self.error
        return out
