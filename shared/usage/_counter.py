"""The one per-caller token counter: reads each finished call's tokens once and feeds them to
every sink (usage accounting, ``UsageRecorder``; per-caller monthly limits, ``CallerQuotas``).

``CallerTokenCounter`` is the observer on the access layer's seam; a sink only implements
``count``. Counted: calls that returned a result with usage (chat, embeddings, streams that
completed), with the tokens Azure reported.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from ._types import Counts

if TYPE_CHECKING:
    from shared.aoai import AttemptEvent, CallOutcome

__all__ = ["CallerTokenCounter", "CallerTokens", "TokenSink", "caller_tokens"]


@dataclass(frozen=True, slots=True)
class CallerTokens:
    """One finished call's tokens, by whom and where."""

    caller: str  # "anonymous" when the call named none
    alias: str
    deployment: str
    lane: str  # "online", or "batch" for the Batch API lane
    counts: Counts  # one request; prompt (of which cached) and completion tokens
    total_tokens: int  # as Azure reported it


def caller_tokens(outcome: CallOutcome) -> CallerTokens | None:
    """The tokens of a finished call (an ``aoai.CallOutcome``); None when it reported none."""
    result = outcome.result
    if result is None or result.usage is None:
        return None
    usage = result.usage
    reported = (result.response or {}).get("usage") or {}
    # chat's prompt_tokens_details; the Responses API's input_tokens_details
    details = reported.get("prompt_tokens_details") or reported.get("input_tokens_details") or {}
    return CallerTokens(
        caller=outcome.ctx.caller or "anonymous",
        alias=outcome.alias,
        deployment=result.deployment,
        lane=str(getattr(outcome.ctx, "lane", None) or "online"),
        counts=Counts(
            1, usage.prompt_tokens, int(details.get("cached_tokens") or 0), usage.completion_tokens
        ),
        total_tokens=usage.total_tokens,
    )


class TokenSink(Protocol):
    def count(self, tokens: CallerTokens) -> None: ...


class CallerTokenCounter:
    """``CallObserver`` counting each finished call's tokens once, for every sink."""

    def __init__(self, sinks: Iterable[TokenSink]) -> None:
        self.sinks = tuple(sinks)

    def attempt_finished(self, event: AttemptEvent) -> None:
        return None

    def call_finished(self, outcome: CallOutcome) -> None:
        tokens = caller_tokens(outcome)
        if tokens is not None:
            for sink in self.sinks:
                sink.count(tokens)
