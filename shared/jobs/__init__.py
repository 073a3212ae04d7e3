"""The backlog: a versioned job contract, a job store with exactly one terminal state per job,
the Service Bus worker, throttled parking in a Storage queue, the re-drive timer and the two
poison handlers. ``function_app.py`` reaches all of it through ``Backlog`` (see ``shared.runtime``).
"""

from ._bus import Bus, Outgoing, QueueNotFound
from ._cancel import JobNotCancellable
from ._claim import JobTooLarge
from ._conclude import Checkpoint, JobServices, conclude, reply_message_id
from ._contract import (
    SCHEMA_VERSION,
    SCOPE_SEPARATOR,
    InvalidJobMessage,
    JobIdConflict,
    JobMessage,
    JobReply,
    new_job_id,
    parse_job_message,
    payload_hash,
    reply_to_refusal,
    scoped_job_id,
    valid_job_id,
)
from ._delivery import Delivery, Outcome
from ._functions_adapter import delivery_from_servicebus, text_from_queue_message
from ._memory_store import InMemoryJobStore
from ._parking import ParkedJob, ParkingLot, decode_envelope
from ._payloads import PayloadStore
from ._records import TERMINAL, JobRecord, Terminal
from ._redrive import TimerReport
from ._schedule import TimerSchedule, redrive_horizon_s
from ._service import Backlog, BacklogClients, LanePlugin, Submission, build_backlog
from ._store import FinishResult, JobStore, TableJobStore
from ._triggers import BacklogTriggers
from ._unreachable import unreachable

__all__ = [
    "SCHEMA_VERSION",
    "SCOPE_SEPARATOR",
    "TERMINAL",
    "Backlog",
    "BacklogClients",
    "BacklogTriggers",
    "Bus",
    "Checkpoint",
    "Delivery",
    "FinishResult",
    "InMemoryJobStore",
    "InvalidJobMessage",
    "JobIdConflict",
    "JobMessage",
    "JobNotCancellable",
    "JobRecord",
    "JobReply",
    "JobServices",
    "JobStore",
    "JobTooLarge",
    "LanePlugin",
    "Outcome",
    "Outgoing",
    "ParkedJob",
    "ParkingLot",
    "PayloadStore",
    "QueueNotFound",
    "Submission",
    "TableJobStore",
    "Terminal",
    "TimerReport",
    "TimerSchedule",
    "build_backlog",
    "conclude",
    "decode_envelope",
    "delivery_from_servicebus",
    "new_job_id",
    "parse_job_message",
    "payload_hash",
    "redrive_horizon_s",
    "reply_message_id",
    "reply_to_refusal",
    "scoped_job_id",
    "text_from_queue_message",
    "unreachable",
    "valid_job_id",
]
