"""Time, injectable so tests can move it by hand.

Every deadline, cooldown and window in the layer is kept in epoch seconds (``now``), because
cooldowns are shared with other instances through the health table and ``AllThrottled.retry_at``
is an epoch time the HTTP API and the backlog hand on. Durations (latency, time to first token,
the call's deadline) are measured on ``monotonic``, which never jumps. No module of the layer
reads ``time`` itself: it asks the clock it was given.
"""

from __future__ import annotations

import time
from typing import Protocol

__all__ = ["Clock", "ManualClock", "SystemClock"]


class Clock(Protocol):
    def now(self) -> float:
        """Seconds since the epoch."""
        ...

    def monotonic(self) -> float:
        """Seconds on a clock that only moves forward (for durations)."""
        ...


class SystemClock:
    """The real clock."""

    __slots__ = ()

    @staticmethod
    def now() -> float:
        return time.time()

    @staticmethod
    def monotonic() -> float:
        return time.perf_counter()


class ManualClock:
    """A clock that moves only when told to (``advance``): both readings move together."""

    __slots__ = ("_elapsed", "_epoch")

    def __init__(self, start: float = 1_000_000.0) -> None:
        self._epoch = start
        self._elapsed = 0.0

    def now(self) -> float:
        return self._epoch + self._elapsed

    def monotonic(self) -> float:
        return self._elapsed

    def advance(self, seconds: float) -> None:
        if seconds < 0:
            raise ValueError("a clock does not go back")
        self._elapsed += seconds
