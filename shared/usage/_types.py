"""Usage rows: tokens per (hour, caller, alias, deployment, lane), counted by one instance."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

__all__ = ["Counts", "UsageKey", "hour_of", "hour_start"]


def hour_of(epoch_s: float) -> str:
    """The UTC hour bucket of an epoch time, ``YYYYMMDDHH`` (sorts as text)."""
    return datetime.fromtimestamp(epoch_s, UTC).strftime("%Y%m%d%H")


def hour_start(hour: str) -> datetime:
    return datetime.strptime(hour, "%Y%m%d%H").replace(tzinfo=UTC)


@dataclass(frozen=True, slots=True, order=True)
class UsageKey:
    hour: str  # YYYYMMDDHH, UTC
    caller: str  # "key:<fingerprint>", "principal:<name>" or "anonymous"
    alias: str
    deployment: str
    lane: str = "online"  # "batch" for the Batch API lane (priced with the batch discount)


@dataclass(slots=True)
class Counts:
    requests: int = 0
    input_tokens: int = 0  # prompt tokens as Azure reports them (cached ones included)
    cached_input_tokens: int = 0  # of which served from the prompt cache
    output_tokens: int = 0
    # of which the model spent reasoning (billed as output; reasoning models only)
    reasoning_output_tokens: int = 0

    def add(self, other: Counts) -> None:
        self.requests += other.requests
        self.input_tokens += other.input_tokens
        self.cached_input_tokens += other.cached_input_tokens
        self.output_tokens += other.output_tokens
        self.reasoning_output_tokens += other.reasoning_output_tokens

    def copy(self) -> Counts:
        return Counts(
            self.requests,
            self.input_tokens,
            self.cached_input_tokens,
            self.output_tokens,
            self.reasoning_output_tokens,
        )

    @property
    def total_tokens(self) -> int:
        return self.input_tokens + self.output_tokens
