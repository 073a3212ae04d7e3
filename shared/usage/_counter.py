"""The one per-caller token counter: reads each finished call's tokens once and feeds them to
every sink (usage accounting, ``UsageRecorder``; per-caller monthly limits, ``CallerLimiter``).

``CallerTokenCounter`` is the observer on the access layer's seam; a sink only implements
``count``. Counted: calls that returned a result with usage (chat, embeddings, Responses,
streams that completed), with the tokens Azure reported: input, of which cached; output, of
which reasoning.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

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
    # chat's prompt_tokens_details / completion_tokens_details; the Responses API's
    # input_tokens_details / output_tokens_details (as Azure reports them)
    cached = _detail(reported, ("prompt_tokens_details", "input_tokens_details"), "cached_tokens")
    reasoning = _detail(
        reported, ("completion_tokens_details", "output_tokens_details"), "reasoning_tokens"
    )
    return CallerTokens(
        caller=outcome.ctx.caller or "anonymous",
        alias=outcome.alias,
        deployment=result.deployment,
        lane=str(getattr(outcome.ctx, "lane", None) or "online"),
        counts=Counts(
            1,
            usage.prompt_tokens,
            min(cached, usage.prompt_tokens),
            usage.completion_tokens,
            min(reasoning, usage.completion_tokens),
        ),
        total_tokens=usage.total_tokens,
    )


def _detail(reported: Any, places: tuple[str, ...], name: str) -> int:
    """``reported[place][name]`` from the first place present: a sane count, else 0."""
    if not isinstance(reported, dict):
        return 0
    for place in places:
        details = reported.get(place)
        if isinstance(details, dict):
            value = details.get(name)
            if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
                return value
            return 0
    return 0


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
