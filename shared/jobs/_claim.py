"""Claim check: a job body too large for a Service Bus message travels through blob storage.

The queue then carries a small reference (still a JSON object naming the job, so a lost blob ends
the job as an invalid message, replied, instead of stranding it)::

    {"schema_version": 1, "job_id": "...", "reply_to": "...", "claim_check": "jobs/<job>/<sha>.json"}

The blob name is derived from the body, so re-sending the same job (a retry, a re-drive) writes
the same blob. ``max_message_bytes`` is the tier's limit (Standard 256 KB, Premium up to 100 MB).
"""

from __future__ import annotations

import hashlib
import json
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._payloads import PayloadStore

__all__ = ["CLAIM_PREFIX", "JobTooLarge", "pack", "unpack"]

CLAIM_PREFIX = "jobs/"
# Room for the message's own properties and headers beside the body.
_HEADROOM = 8 * 1024
_CLAIM_KEY = b'"claim_check"'


class JobTooLarge(ValueError):
    """The job body is over ``max_job_bytes``: refused before anything is written."""

    code = "job_too_large"

    def __init__(self, size: int, limit: int) -> None:
        self.size = size
        self.limit = limit
        super().__init__(
            f"The job is {size} bytes; the largest accepted is {limit} bytes (BACKLOG_MAX_JOB_BYTES)."
        )


async def pack(
    payloads: PayloadStore | None,
    job_id: str,
    body: bytes,
    *,
    max_message_bytes: int,
    reply_to: str | None = None,
) -> bytes:
    """``body`` itself when it fits a message, else a claim-check reference (blob written first)."""
    if len(body) + _HEADROOM <= max_message_bytes or payloads is None:
        return body
    name = f"{CLAIM_PREFIX}{job_id}/{hashlib.sha256(body).hexdigest()[:32]}.json"
    await payloads.put(name, body)
    ref: dict[str, Any] = {"schema_version": 1, "job_id": job_id, "claim_check": name}
    if reply_to:
        ref["reply_to"] = reply_to
    return json.dumps(ref).encode("utf-8")


async def unpack(payloads: PayloadStore | None, body: bytes) -> bytes:
    """The job body a message carries, fetched from blob for a claim check. A missing blob gives
    the reference back (it does not parse as a job: a terminal ``invalid_message``); any other
    storage failure raises, so the message is redelivered."""
    if payloads is None or len(body) > 4096 or _CLAIM_KEY not in body:
        return body
    try:
        ref = json.loads(body)
    except ValueError:
        return body
    name = ref.get("claim_check") if isinstance(ref, dict) else None
    if not isinstance(name, str) or not name.startswith(CLAIM_PREFIX):
        return body
    from azure.core.exceptions import ResourceNotFoundError

    try:
        return await payloads.get(name)
    except ResourceNotFoundError:
        return body
