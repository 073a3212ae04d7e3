"""The observer seam: who hears about every attempt and every finished call.

``Gateway(..., observers=[...])`` calls each observer once per attempt (``attempt_finished``)
and once per finished call (``call_finished``), whatever the outcome and whatever the log
level: a result, a typed error, any other exception, or a stream closed before its end
(``cancelled``, with an ``abandoned`` result that carries what the stream is charged: usage
consumers count it like any call). The structured log record (``CallLog``) is one observer and the default;
telemetry and usage accounting plug in the same way. An observer that raises is logged and
ignored: it never changes the call's outcome.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol

from ._logsafe import log_safe
from ._types import Attempt, CallContext, CallResult

__all__ = ["AttemptEvent", "CallLog", "CallObserver", "CallOutcome", "Observers"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class AttemptEvent:
    """One attempt of a call has ended (succeeded or failed)."""

    operation: str  # chat | chat_stream | embeddings
    ctx: CallContext
    alias: str
    attempt: Attempt


@dataclass(frozen=True, slots=True)
class CallOutcome:
    """One call has ended: ``result`` when it succeeded, ``error`` when it failed. When the
    caller closed a stream before its end, ``cancelled`` is True and ``result`` holds what the
    stream is charged (``abandoned``; None if nothing was opened upstream)."""

    operation: str  # chat | chat_stream | embeddings
    ctx: CallContext
    alias: str
    attempts: tuple[Attempt, ...]
    latency_ms: float
    result: CallResult | None = None
    error: BaseException | None = None
    region: str | None = None  # where a stream was served, also when it failed or was cancelled
    deployment: str | None = None
    ttft_ms: float | None = None

    @property
    def cancelled(self) -> bool:
        """The caller went away before the end. A stream abandoned that way still carries a
        ``result`` (``extra["abandoned"]``): what was streamed, charged like any call."""
        return self.error is None and (self.result is None or self.abandoned)

    @property
    def abandoned(self) -> bool:
        """A stream the caller closed before its end, with the usage it is charged."""
        return self.result is not None and bool(self.result.extra.get("abandoned"))

    @property
    def outcome(self) -> str:
        """``ok``, ``cancelled`` or the error's stable code (its type name if it has none)."""
        if self.cancelled:
            return "cancelled"
        if self.result is not None:
            return "ok"
        return str(getattr(self.error, "code", type(self.error).__name__))


class CallObserver(Protocol):
    def attempt_finished(self, event: AttemptEvent) -> None: ...

    def call_finished(self, outcome: CallOutcome) -> None: ...


class CallLog:
    """The structured log record of a call: INFO when it succeeded, WARNING otherwise, with
    caller, alias, region, deployment, every attempt, usage, latency and time to first token.
    Never prompt text, keys or tokens."""

    __slots__ = ()

    def attempt_finished(self, event: AttemptEvent) -> None:
        return None  # the call's record lists every attempt

    def call_finished(self, outcome: CallOutcome) -> None:
        ok = outcome.result is not None or outcome.cancelled
        level = logging.INFO if ok else logging.WARNING
        if not logger.isEnabledFor(level):
            return
        result = outcome.result
        usage = result.usage if result is not None else None
        fields = {
            "event": "aoai_call",
            "operation": outcome.operation,
            "correlation_id": outcome.ctx.correlation_id,
            "caller": log_safe(outcome.ctx.caller),
            "alias": log_safe(outcome.alias),
            "region": result.region if result is not None else outcome.region,
            "deployment": result.deployment if result is not None else outcome.deployment,
            "outcome": outcome.outcome,
            "attempts": [
                dict(a.as_dict(), detail=log_safe(a.detail, 300)) for a in outcome.attempts
            ],
            "usage": None
            if usage is None
            else {
                "prompt_tokens": usage.prompt_tokens,
                "completion_tokens": usage.completion_tokens,
                "total_tokens": usage.total_tokens,
            },
            "latency_ms": round(outcome.latency_ms, 3),
            "ttft_ms": None if outcome.ttft_ms is None else round(outcome.ttft_ms, 3),
            "finish_reason": result.finish_reason if result is not None else None,
        }
        logger.log(
            level,
            "aoai %s %s -> %s",
            outcome.operation,
            fields["alias"],
            outcome.outcome,
            extra=fields,
        )


class Observers:
    """Fans events out to every observer; one that raises is logged and skipped."""

    __slots__ = ("_observers",)

    def __init__(self, observers: Iterable[CallObserver]) -> None:
        self._observers = tuple(observers)

    def attempt_finished(self, event: AttemptEvent) -> None:
        for observer in self._observers:
            try:
                observer.attempt_finished(event)
            except Exception:
                logger.exception("call observer %s failed", type(observer).__name__)

    def call_finished(self, outcome: CallOutcome) -> None:
        for observer in self._observers:
            try:
                observer.call_finished(outcome)
            except Exception:
                logger.exception("call observer %s failed", type(observer).__name__)
