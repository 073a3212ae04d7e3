"""The re-drive plan: when each parked job of one alias goes back on the backlog. Pure, no I/O.

One timer run plans over a horizon (the time until its next run). The alias can absorb what is
free now plus what its quota replenishes over the horizon, in requests and in tokens. Jobs are
taken in the order given (highest priority first); job k is scheduled at

    max(0, (R_k - free requests) / requests_per_s, (T_k - free tokens) / tokens_per_s)

seconds from now, where R_k = k + 1 and T_k are the requests and tokens of jobs 0..k: the
sustained rate spreads the re-drives over the horizon instead of releasing them at once (no
thundering herd). The first job that would go beyond the horizon, and every job after it, is
deferred to a later run, so a big job of high priority is not overtaken by smaller ones.
A first job too big to fit any horizon goes at the horizon's end (the access layer waits for an
empty window), so it cannot block its alias for good.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

__all__ = ["Allowance", "plan_redrive"]


@dataclass(frozen=True, slots=True)
class Allowance:
    """What one alias offers a timer run: free now, and replenished per second after that."""

    free_requests: int
    free_tokens: int
    requests_per_s: float = 0.0
    tokens_per_s: float = 0.0

    def requests_within(self, horizon_s: float) -> float:
        return max(0, self.free_requests) + self.requests_per_s * horizon_s

    def tokens_within(self, horizon_s: float) -> float:
        return max(0, self.free_tokens) + self.tokens_per_s * horizon_s


def plan_redrive(
    costs: Sequence[int], allowance: Allowance, horizon_s: float
) -> tuple[float | None, ...]:
    """Delay in seconds from now for each job (``costs`` in tokens, in priority order); None: deferred."""
    out: list[float | None] = []
    requests = tokens = 0
    for k, cost in enumerate(costs):
        requests = k + 1
        tokens += max(0, cost)
        wait_requests = _wait(requests, allowance.free_requests, allowance.requests_per_s)
        wait_tokens = _wait(tokens, allowance.free_tokens, allowance.tokens_per_s)
        if k == 0 and wait_tokens > horizon_s and wait_requests <= horizon_s:
            wait_tokens = horizon_s  # bigger than any run's allowance: send it once, at the end
        delay = max(0.0, wait_requests, wait_tokens)
        if delay > horizon_s:
            out.extend([None] * (len(costs) - k))
            break
        out.append(delay)
    return tuple(out)


def _wait(used: int, free: int, rate: float) -> float:
    over = used - max(0, free)
    if over <= 0:
        return 0.0
    return over / rate if rate > 0 else math.inf
