"""Wall-clock time, injectable so unit tests can move time by hand.

Every deadline, cooldown and window in the layer is kept in epoch seconds, because cooldowns
are shared with other instances through the health table and ``AllThrottled.retry_at`` is
an epoch time the HTTP API and the backlog hand on.
"""

from __future__ import annotations

import time
from typing import Protocol

__all__ = ["Clock", "SystemClock"]


class Clock(Protocol):
    def now(self) -> float:
        """Seconds since the epoch."""
        ...


class SystemClock:
    """The real clock."""

    __slots__ = ()

    @staticmethod
    def now() -> float:
        return time.time()
