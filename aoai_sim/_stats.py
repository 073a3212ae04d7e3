"""Counters of what one region saw, in total and per deployment."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

__all__ = ["FAILURE_KINDS", "RegionStats"]

FAILURE_KINDS = (
    "reset",
    "hang",
    "reset_mid_stream",
    "hang_mid_stream",
    "error",
    "throttle",
    "rate_limit",
    "auth",
    "not_found",
    "content_filter",
    "bad_request",
    "bad_answer",  # the bad_answer fault: a 200 with a body that is not the answer
)
_FIELDS = (
    "requests",
    "served",
    "throttled",
    "tokens_charged",
    "prompt_tokens",
    "completion_tokens",
    "streamed",
    "slowed",
    "completions_filtered",
    "embeddings_base64",  # embeddings answers sent as base64 (the rest as float arrays)
    "usage_omitted",  # answers sent without usage or model (the omit_usage fault)
)


class _Counters:
    __slots__ = ("failures", "status", "values")

    def __init__(self) -> None:
        self.values = dict.fromkeys(_FIELDS, 0)
        self.failures = dict.fromkeys(FAILURE_KINDS, 0)
        self.status: dict[str, int] = {}

    def to_dict(self) -> dict[str, Any]:
        return {**self.values, "failures": dict(self.failures), "by_status": dict(self.status)}


class RegionStats:
    """Totals plus one counter set per configured deployment."""

    def __init__(self, deployments: Iterable[str]) -> None:
        self._names = tuple(deployments)
        self.reset()

    def reset(self) -> None:
        """Zero everything."""
        self._total = _Counters()
        self._deps = {name: _Counters() for name in self._names}
        self.in_flight = 0
        self.max_in_flight = 0

    def _targets(self, deployment: str | None) -> tuple[_Counters, ...]:
        dep = self._deps.get(deployment) if deployment is not None else None
        return (self._total, dep) if dep is not None else (self._total,)

    def add(self, deployment: str | None, name: str, amount: int = 1) -> None:
        """Add ``amount`` to counter ``name``."""
        for c in self._targets(deployment):
            c.values[name] += amount

    def fail(self, deployment: str | None, kind: str) -> None:
        """Count one failure of ``kind`` (429s also count as throttled)."""
        for c in self._targets(deployment):
            c.failures[kind] += 1
            if kind in ("throttle", "rate_limit"):
                c.values["throttled"] += 1

    def status(self, deployment: str | None, status: int) -> None:
        """Count one response status (2xx also counts as served)."""
        key = str(status)
        for c in self._targets(deployment):
            c.status[key] = c.status.get(key, 0) + 1
            if 200 <= status < 300:
                c.values["served"] += 1

    def to_dict(self) -> dict[str, Any]:
        """JSON view for GET /_sim/stats."""
        return {
            **self._total.to_dict(),
            "in_flight": self.in_flight,
            "max_in_flight": self.max_in_flight,
            "deployments": {name: c.to_dict() for name, c in self._deps.items()},
        }
