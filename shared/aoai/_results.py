"""Building what a call hands back: the one ``CallResult`` builder and the errors a call ends
with when nothing eligible is left or its deadline runs out."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from ._classify import ClassifiedFailure
from ._exceptions import (
    AllThrottled,
    AuthFailed,
    DeadlineExceeded,
    DeploymentNotFound,
    GatewayError,
    RegionsUnavailable,
)
from ._router import MISSING, THROTTLED, TRANSIENT, Route, Skip
from ._types import Attempt, CallResult, FailureKind, Usage

__all__ = [
    "MAX_USAGE_TOKENS",
    "call_result",
    "deadline_exceeded",
    "estimated_usage",
    "finish_reason",
    "nothing_eligible",
    "usage_of",
]


def call_result(
    *,
    alias: str,
    route: Route | tuple[str, str],
    attempts: tuple[Attempt, ...],
    latency_s: float,
    response: dict[str, Any] | None = None,
    usage: Usage | None = None,
    ttft_ms: float | None = None,
    finish: str | None = None,
    extra: dict[str, Any] | None = None,
) -> CallResult:
    """The one place a ``CallResult`` is built (chat, embeddings, the end of a stream)."""
    region, deployment = route.names if isinstance(route, Route) else route
    return CallResult(
        alias=alias,
        region=region,
        deployment=deployment,
        attempts=attempts,
        latency_ms=latency_s * 1000.0,
        response=response,
        usage=usage,
        ttft_ms=ttft_ms,
        finish_reason=finish,
        extra=extra or {},
    )


# The most tokens one call's usage may report: far above any model's context window, far below
# the usage table's Int64 (a larger figure would fail every later flush of the usage store).
MAX_USAGE_TOKENS = 1_000_000_000
_USAGE_FIELDS = ("prompt_tokens", "completion_tokens", "total_tokens")


def usage_of(raw: Any) -> Usage | None:
    """``Usage`` from an upstream ``usage`` object (a body's or a stream chunk's); None when it
    is absent or invalid: not an object, or a count that is not an integer in
    0..``MAX_USAGE_TOKENS`` (an upstream's answer is not trusted to be sane). An ``estimated``
    usage is the gateway's own (``estimated_usage``)."""
    if not raw or not isinstance(raw, Mapping):
        return None
    values = []
    for name in _USAGE_FIELDS:
        value = raw.get(name, 0)
        if value is None:
            value = 0
        if isinstance(value, bool) or not isinstance(value, int):
            return None
        if not 0 <= value <= MAX_USAGE_TOKENS:
            return None
        values.append(value)
    prompt, completion, total = values
    return Usage(prompt, completion, total, estimated=raw.get("estimated") is True)


def estimated_usage(prompt_tokens: int, completion_tokens: int) -> dict[str, Any]:
    """The ``usage`` object of an answer whose upstream sent none (or an invalid one): the
    gateway's estimates, marked ``"estimated": true``."""
    return {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
        "estimated": True,
    }


def finish_reason(body: Mapping[str, Any]) -> str | None:
    """A chat body's finish reason: ``content_filter`` if any choice was filtered, else the
    first choice's."""
    choices = body.get("choices") or ()
    if any(c.get("finish_reason") == "content_filter" for c in choices):
        return "content_filter"
    return choices[0].get("finish_reason") if choices else None


def deadline_exceeded(alias: str, deadline_s: float, attempts: Sequence[Attempt]) -> GatewayError:
    return DeadlineExceeded(
        f"The call for '{alias}' ran out of its {deadline_s:.1f}s deadline.",
        attempts=tuple(attempts),
    )


def nothing_eligible(
    alias: str,
    now: float,
    attempts: Sequence[Attempt],
    skips: Sequence[Skip],
    auth: tuple[Route, ClassifiedFailure] | None,
    missing: Route | None,
) -> GatewayError:
    """The error for a call with nothing eligible left: why each route was skipped (those not
    tried are added to the attempts), the soonest time when all are throttled."""
    listed = list(attempts)
    tried_names = {(a.region, a.deployment) for a in attempts}
    for skip in skips:
        if skip.route.names not in tried_names:
            listed.append(Attempt(*skip.route.names, FailureKind.SKIPPED, None, 0.0, skip.detail))
    final = tuple(listed)
    reasons = {skip.reason for skip in skips}
    if THROTTLED in reasons:
        later = [
            s.available_at
            for s in skips
            if s.reason in (THROTTLED, TRANSIENT) and s.available_at > now
        ]
        return AllThrottled(alias, retry_at=min(later) if later else now, now=now, attempts=final)
    if TRANSIENT in reasons:
        return RegionsUnavailable(
            f"No region could serve '{alias}': "
            + "; ".join(f"{s.route.names[0]}: {s.detail}" for s in skips if s.reason == TRANSIENT),
            attempts=final,
        )
    if auth is not None:
        route, failure = auth
        message = str(failure.body.get("message") or failure.detail)
        return AuthFailed(
            region=route.region.config.name,
            identity=route.region.config.identity_label,
            status=failure.status or 401,
            upstream_message=message,
            auth=route.region.config.auth,
            attempts=final,
        )
    missing = missing or next((s.route for s in skips if s.reason == MISSING), None)
    if missing is not None:
        return DeploymentNotFound(
            region=missing.region.config.name,
            deployment=missing.deployment.config.deployment,
            alias=alias,
            attempts=final,
        )
    return RegionsUnavailable(f"No region could serve '{alias}'.", attempts=final)
