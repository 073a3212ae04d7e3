"""What one alias can absorb right now, and the rates its quotas replenish at (``Capacity``)."""

from __future__ import annotations

from shared.pacing import SlidingWindow

from ._router import Route
from ._types import Capacity

__all__ = ["alias_capacity"]


def alias_capacity(alias: str, tiers: tuple[tuple[Route, ...], ...], now: float) -> Capacity:
    """Requests and tokens free now over the alias's usable deployments (not missing, cooling,
    exhausted or behind an open circuit), and their sustained rates; ``retry_at`` is the soonest
    time a blocked one frees up when none is free. With the ledger, a deployment's free figures
    are also bounded by the row's view of the current windows (``SharedQuota.window_view``);
    while it is unreachable, by the instance's conservative share of its own windows."""
    requests = tokens = count = 0
    sources: set[str] = set()
    requests_per_s = tokens_per_s = 0.0
    soonest: float | None = None

    def later(at: float) -> None:
        nonlocal soonest
        soonest = at if soonest is None or at < soonest else soonest

    for tier in tiers:
        for route in tier:
            dep, circuit = route.deployment, route.region.circuit
            blocked = dep.blocked_until(now)
            if dep.missing_until > now:
                continue
            if blocked or not circuit.available(now):
                later(blocked or circuit.open_until)
                continue
            budget = dep.budget
            shared = budget.shared
            # An unreachable ledger: the instance paces at its conservative share of the quota.
            share = shared.fallback_share if shared is not None and not shared.usable(now) else 1.0
            rate_requests, rate_tokens = budget.rates()
            requests_per_s += rate_requests * share
            tokens_per_s += rate_tokens * share
            free_requests = min(
                _remaining(budget.requests, now, share), _remaining(budget.burst, now, share)
            )
            free_tokens = _remaining(budget.tokens, now, share)
            view = shared.window_view(now) if shared is not None else None
            sources.add("local" if view is None else "ledger")
            if view is not None:
                free_requests = min(free_requests, view["free_requests"])
                free_tokens = min(free_tokens, view["free_tokens"])
            if free_requests <= 0 or free_tokens <= 0:
                later(budget.available_at(now, 1))
                continue
            requests += free_requests
            tokens += free_tokens
            count += 1
    return Capacity(
        alias=alias,
        requests=requests,
        tokens=tokens,
        deployments=count,
        retry_at=None if count else soonest,
        requests_per_s=requests_per_s,
        tokens_per_s=tokens_per_s,
        source=sources.pop() if len(sources) == 1 else ("mixed" if sources else "local"),
    )


def _remaining(window: SlidingWindow, now: float, share: float) -> int:
    """What is left of ``share`` of the window's limit (the whole limit at share 1)."""
    if share >= 1.0:
        return window.remaining(now)
    return window.remaining(now) - (window.limit - max(1, int(window.limit * share)))
