"""The backlog: a versioned job contract, a job store with exactly one terminal state per job,
the Service Bus worker, throttled parking in a Storage queue, the re-drive timer and the two
poison handlers. ``function_app.py`` reaches all of it through ``Backlog`` (see ``shared.runtime``).
"""

from ._bus import Bus, Outgoing, QueueNotFound
from ._cancel import JobNotCancellable
from ._contract import (
    SCHEMA_VERSION,
    InvalidJobMessage,
    JobIdConflict,
    JobMessage,
    JobReply,
    new_job_id,
    parse_job_message,
    payload_hash,
)
from ._core import Checkpoint, JobServices, conclude, reply_message_id
from ._delivery import Delivery, Outcome
from ._functions_adapter import delivery_from_servicebus, text_from_queue_message
from ._http import cancel_job, job_status, submit_job
from ._memory_store import InMemoryJobStore
from ._parking import ParkedJob, ParkingLot, decode_envelope
from ._payloads import PayloadStore
from ._records import TERMINAL, JobRecord, Terminal
from ._redrive import TimerReport
from ._schedule import TimerSchedule, redrive_horizon_s
from ._service import Backlog, BacklogClients, LanePlugin, Submission, build_backlog
from ._store import FinishResult, JobStore, TableJobStore
from ._triggers import BacklogTriggers

__all__ = [
    "SCHEMA_VERSION",
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
    "cancel_job",
    "conclude",
    "decode_envelope",
    "delivery_from_servicebus",
    "job_status",
    "new_job_id",
    "parse_job_message",
    "payload_hash",
    "redrive_horizon_s",
    "reply_message_id",
    "submit_job",
    "text_from_queue_message",
]
