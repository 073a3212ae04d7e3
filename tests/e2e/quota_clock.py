"""Pin the per-caller TPM windows of ``runtime.caller_limiter()`` to a clock the test moves.

The windows are fixed and aligned to the wall clock (``int(now // window_s)``, shared by every
instance through the table), so a test that reads the real time can see its window roll over
between two calls on a slow machine: a refused caller is suddenly admitted again. Tests that
assert on one window's contents pin the clock at the start of a window instead."""

from __future__ import annotations

import time

import pytest

from shared import runtime
from shared.aoai import ManualClock

__all__ = ["pin_caller_windows"]


def pin_caller_windows(monkeypatch: pytest.MonkeyPatch, window_s: float = 60.0) -> ManualClock:
    """A clock one second into the current window, now read by the process's caller quotas
    (call after ``app_env``). Pass it as ``now=clock.now`` to any other ``CallerLimiter``."""
    quotas = runtime.caller_limiter()
    assert quotas is not None, "no GATEWAY_CALLER_LIMITS configured"
    clock = ManualClock((time.time() // window_s) * window_s + 1.0)
    # CallerLimiter(now=...) is the seam; runtime builds it with the real clock.
    monkeypatch.setattr(quotas, "_now", clock.now)
    return clock
