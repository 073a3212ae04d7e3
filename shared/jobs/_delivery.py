"""What a trigger hands the backlog: our own frozen view of a Service Bus delivery."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = ["PROP_PARKS", "PROP_PRIORITY", "PROP_REDRIVES", "Delivery", "Outcome"]

PROP_PRIORITY = "priority"
PROP_PARKS = "backlog_parks"
PROP_REDRIVES = "backlog_redrives"


@dataclass(frozen=True, slots=True)
class Delivery:
    """One delivery of one Service Bus message (from the main queue or its dead-letter queue)."""

    body: bytes
    message_id: str | None = None
    delivery_count: int = 1
    sequence_number: int | None = None
    application_properties: Mapping[str, Any] = field(default_factory=dict)
    correlation_id: str | None = None
    dead_letter_reason: str | None = None
    dead_letter_description: str | None = None

    @property
    def owner(self) -> str:
        """Identifies this message across its redeliveries (not across duplicates of the same job)."""
        return f"sb:{self.message_id}:{self.sequence_number}"

    def int_property(self, name: str, default: int = 0) -> int:
        value = self.application_properties.get(name, default)
        try:
            return int(value)
        except (TypeError, ValueError):
            return default


class Outcome:
    """How a delivery ended. Transient failures are not an outcome: they raise."""

    SUCCEEDED = "succeeded"
    FAILED = "failed"  # terminal failure recorded (and replied)
    PARKED = "parked"  # throttled everywhere: parked until its retry time
    BATCHED = "batched"  # handed to the batch lane (shared/batchlane), which finishes it
    DUPLICATE = "duplicate"  # already terminal: nothing written, reply ensured
    STALE = "stale"  # not the job's live copy (it is parked, or another delivery runs it): dropped
    REDRIVEN = "redriven"  # dead-lettered for a transient reason: sent back to the backlog
    IGNORED = "ignored"  # nothing identifies a job: alert logged only
    CONFLICT = (
        "conflict"  # the job id exists with another payload: recorded apart, replied, job untouched
    )
