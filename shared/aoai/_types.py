"""What goes into a call and what comes out of it."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Attempt", "CallContext", "CallResult", "Capacity", "FailureKind", "Usage"]


class FailureKind(enum.StrEnum):
    """Why one attempt against one deployment did not succeed."""

    THROTTLED = "throttled"  # 429
    CONNECTION = "connection"  # refused, reset, DNS
    TIMEOUT = "timeout"  # connect or read timeout
    SERVER_ERROR = "server_error"  # 5xx
    AUTH = "auth"  # 401/403
    NOT_FOUND = "not_found"  # 404 DeploymentNotFound
    CONTENT_FILTER = "content_filter"
    BAD_REQUEST = "bad_request"  # other 400s
    LOCAL = (
        "local"  # our process or the request itself (encoding, our bug): never the region's fault
    )
    SKIPPED = "skipped"  # not sent: circuit open, cooling down or over budget
    HEDGE_LOST = "hedge_lost"  # cancelled: the other attempt of a hedge race answered first


@dataclass(frozen=True, slots=True)
class CallContext:
    """Who is calling and how long the call may take, end to end."""

    correlation_id: str
    caller: str | None = None
    timeout_s: float | None = None  # None: the settings' call_deadline_s
    lane: str = "interactive"  # "backlog": leaves the interactive reserve of the shared quota


@dataclass(frozen=True, slots=True)
class Attempt:
    """One try against one deployment. ``outcome`` None means it succeeded."""

    region: str
    deployment: str
    outcome: FailureKind | None
    status: int | None
    elapsed_ms: float
    detail: str = ""
    cooldown_source: str | None = None  # a 429: the header the cooldown came from, or "default"
    hedge: bool = False  # sent as a hedge (a second attempt while the first had no first byte)

    def as_dict(self) -> dict[str, Any]:
        return {
            "region": self.region,
            "deployment": self.deployment,
            "outcome": self.outcome.value if self.outcome else "ok",
            "status": self.status,
            "elapsed_ms": round(self.elapsed_ms, 3),
            "detail": self.detail,
            **({"hedge": True} if self.hedge else {}),
        }


@dataclass(frozen=True, slots=True)
class Usage:
    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0
    estimated: bool = False  # the upstream sent no (valid) usage: the gateway's estimate


@dataclass(frozen=True, slots=True)
class CallResult:
    """What happened in one call: where it went, how many tries, what it cost."""

    alias: str
    region: str
    deployment: str
    attempts: tuple[Attempt, ...]
    latency_ms: float
    response: dict[str, Any] | None = None  # the upstream body (OpenAI shape); None for streams
    usage: Usage | None = None
    ttft_ms: float | None = None  # streams only
    finish_reason: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def content_filtered(self) -> bool:
        return self.finish_reason == "content_filter"


@dataclass(frozen=True, slots=True)
class Capacity:
    """What one alias can absorb right now, summed over deployments that are not cooling,
    exhausted, missing or behind an open circuit. The timer re-drives parked jobs within it.

    ``requests``/``tokens``/``deployments`` count what is free *now* (deployments whose own
    windows are full are left out). ``retry_at`` (epoch seconds) is the soonest time a blocked
    deployment frees up, when nothing is available now; None when something is available or
    nothing will free up.

    ``requests_per_s``/``tokens_per_s`` are the sustained rates the same usable deployments
    replenish at (effective RPM and TPM per quota minute, ``quota_minute_s`` honoured), whether
    or not their windows are full right now: what the quota adds per second from here on."""

    alias: str
    requests: int
    tokens: int
    deployments: int
    retry_at: float | None = None
    requests_per_s: float = 0.0
    tokens_per_s: float = 0.0
    # "ledger": the shared row's view of the current windows bounded every usable deployment;
    # "local": this instance's own windows (no ledger, unreachable, or no current row read);
    # "mixed": some of each.
    source: str = "local"
