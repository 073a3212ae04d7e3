"""The operations surface: what every instance knows about regions and deployments and how to
clear it, parked jobs, the backlog's dead letters, and the caller limits in force. The HTTP
handlers (``/api/ops/...``, master key) and the command-line client (``python -m gatewayctl``)
both sit on these."""

from ._deadletters import peek_dead_letters, redrive_dead_letters
from ._health import UnknownTarget, clear, shared_state
from ._http import (
    ops_callers,
    ops_clear,
    ops_dead_letters,
    ops_job_cancel,
    ops_job_status,
    ops_parked,
    ops_parked_redrive,
    ops_redrive,
    ops_state,
)
from ._parked import parked_jobs

__all__ = [
    "UnknownTarget",
    "clear",
    "ops_callers",
    "ops_clear",
    "ops_dead_letters",
    "ops_job_cancel",
    "ops_job_status",
    "ops_parked",
    "ops_parked_redrive",
    "ops_redrive",
    "ops_state",
    "parked_jobs",
    "peek_dead_letters",
    "redrive_dead_letters",
    "shared_state",
]
