"""The operations surface: what every instance knows about regions and deployments and how to
clear it, parked jobs, the backlog's dead letters, and the caller limits in force. The HTTP
handlers (``/api/ops/...``, master key) and the command-line client (``python -m gatewayctl``)
both sit on these."""

from ._deadletters import peek_dead_letters, redrive_dead_letters
from ._parked import parked_jobs
from ._verdicts import UnknownTarget, clear, shared_state

__all__ = [
    "UnknownTarget",
    "clear",
    "parked_jobs",
    "peek_dead_letters",
    "redrive_dead_letters",
    "shared_state",
]
