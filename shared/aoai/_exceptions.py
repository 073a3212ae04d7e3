"""The access layer's exception tree. Every upstream failure is classified into it in one
place (``_classify.py``), so callers branch on types, never on status codes or SDK errors::

    GatewayError                     .code (stable, for HTTP bodies and job records) .http_status
    ├── RequestRejected              the request itself is wrong: same answer everywhere, never retried
    │   ├── UnknownModel             the alias is not in the region table            404 model_not_found
    │   ├── TooManyInputs            embeddings inputs over max_embedding_inputs        400 too_many_inputs
    │   ├── RequestTooLarge          cost above every deployment's whole quota         400 request_too_large
    │   ├── BadRequest               upstream 400 (context length, bad parameter)    400 bad_request
    │   ├── ContentFiltered          the prompt tripped the content filter           400 content_filter
    │   └── UpstreamRequestFailed    a 5xx followed this request across regions that 502 upstream_request_failed
    │                                serve other requests: the request's own fault
    ├── LocalFailure                 our own process failed (a bug); nothing was charged  500 internal_error
    ├── ConfigurationError           the gateway's own setup is wrong: an operator must act
    │   ├── AuthFailed               401/403 from every region tried                 502 upstream_auth_failed
    │   └── DeploymentNotFound       404 DeploymentNotFound for every deployment     502 deployment_not_found
    └── UpstreamUnavailable          transient: the same request may succeed later
        ├── AllThrottled             every deployment is cooling down; .retry_at     429 all_throttled
        ├── RegionsUnavailable       every region failed or has an open circuit      503 upstream_unavailable
        ├── DeadlineExceeded         the call's total deadline ran out               504 deadline_exceeded
        └── StreamInterrupted        upstream failed after chunks reached the caller 502 stream_interrupted

Each error carries the ``attempts`` made before it was raised.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:
    from ._types import Attempt

__all__ = [
    "AllThrottled",
    "AuthFailed",
    "BadRequest",
    "ConfigurationError",
    "ContentFiltered",
    "DeadlineExceeded",
    "DeploymentNotFound",
    "GatewayError",
    "LocalFailure",
    "OutputLimitExceeded",
    "RegionsUnavailable",
    "RequestRejected",
    "RequestTooLarge",
    "StreamInterrupted",
    "TooManyInputs",
    "UnknownModel",
    "UpstreamRequestFailed",
    "UpstreamUnavailable",
]

ROLE_NEEDED = "Cognitive Services OpenAI User"


class GatewayError(Exception):
    """Base of every error the access layer raises."""

    code: ClassVar[str] = "gateway_error"
    http_status: ClassVar[int] = 500

    def __init__(self, message: str, *, attempts: tuple[Attempt, ...] = ()) -> None:
        super().__init__(message)
        self.message = message
        self.attempts = attempts

    def details(self) -> dict[str, Any]:
        """Extra, safe-to-show fields for an error body or a job record."""
        return {}


class RequestRejected(GatewayError):
    code = "invalid_request"
    http_status = 400


class UnknownModel(RequestRejected):
    code = "model_not_found"
    http_status = 404

    def __init__(self, alias: str, known: tuple[str, ...]) -> None:
        super().__init__(
            f"The model '{alias}' is not served by this gateway. Known models: {', '.join(known) or 'none'}."
        )
        self.alias = alias
        self.known = known

    def details(self) -> dict[str, Any]:
        return {"param": "model", "known_models": list(self.known)}


class BadRequest(RequestRejected):
    code = "bad_request"
    http_status = 400

    def __init__(
        self,
        message: str,
        *,
        upstream_code: str | None = None,
        param: str | None = None,
        attempts: tuple[Attempt, ...] = (),
    ) -> None:
        super().__init__(message, attempts=attempts)
        self.upstream_code = upstream_code
        self.param = param

    def details(self) -> dict[str, Any]:
        return {"param": self.param, "upstream_code": self.upstream_code}


class TooManyInputs(RequestRejected):
    """An embeddings request over ``max_embedding_inputs`` (OpenAI's own cap is 2,048)."""

    code = "too_many_inputs"
    http_status = 400

    def __init__(self, count: int, limit: int) -> None:
        super().__init__(
            f"The embeddings request has {count} inputs; the limit is {limit} per request. "
            "Split it into several requests."
        )
        self.count = count
        self.limit = limit

    def details(self) -> dict[str, Any]:
        return {"param": "input", "limit": self.limit, "count": self.count}


class RequestTooLarge(RequestRejected):
    """A request whose own cost can never fit: above every eligible deployment's whole
    per-minute token quota. Retrying cannot help, so it is a 400, not an endless 429."""

    code = "request_too_large"
    http_status = 400

    def __init__(self, alias: str, *, estimate: int, limit: int, param: str | None) -> None:
        super().__init__(
            f"The request for '{alias}' is estimated at {estimate} tokens (prompt plus "
            f"max_tokens x n); the largest quota of any deployment serving it is {limit} tokens "
            "per minute, so it can never be admitted. Lower max_tokens or n, or shorten the prompt."
        )
        self.estimate = estimate
        self.limit = limit
        self.param = param

    def details(self) -> dict[str, Any]:
        return {"param": self.param, "limit": self.limit, "estimate": self.estimate}


class OutputLimitExceeded(RequestRejected):
    """An output cap (``max_tokens`` / ``max_completion_tokens``) above what the model of every
    deployment serving the alias can produce (the model table): Azure would answer 400, after
    its rate limiter had charged the whole cap. Refused locally, before any charge."""

    code = "max_tokens_over_model_limit"
    http_status = 400

    def __init__(
        self, alias: str, *, requested: int, limit: int, limit_name: str, param: str
    ) -> None:
        super().__init__(
            f"{param} is {requested}, but the model behind '{alias}' allows at most {limit} "
            f"({limit_name}). Lower {param} to {limit} or less."
        )
        self.requested = requested
        self.limit = limit
        self.limit_name = limit_name
        self.param = param

    def details(self) -> dict[str, Any]:
        return {
            "param": self.param,
            "limit": self.limit,
            "limit_name": self.limit_name,
            "requested": self.requested,
        }


class ContentFiltered(RequestRejected):
    code = "content_filter"
    http_status = 400

    def __init__(
        self, message: str, *, categories: dict[str, Any], attempts: tuple[Attempt, ...] = ()
    ) -> None:
        super().__init__(message, attempts=attempts)
        self.categories = categories

    @property
    def filtered_categories(self) -> list[str]:
        return sorted(
            name
            for name, result in self.categories.items()
            if isinstance(result, dict) and result.get("filtered")
        )

    def details(self) -> dict[str, Any]:
        return {"param": "prompt", "content_filter_result": self.categories}


class UpstreamRequestFailed(RequestRejected):
    """Regions that serve other requests each answered this one with a 5xx: something in the
    request (a content shape the upstream mishandles) fails it everywhere. Never retried; the
    message carries the upstream's own text."""

    code = "upstream_request_failed"
    http_status = 502

    def __init__(
        self,
        message: str,
        *,
        upstream_status: int | None,
        upstream_code: str | None = None,
        attempts: tuple[Attempt, ...] = (),
    ) -> None:
        super().__init__(message, attempts=attempts)
        self.upstream_status = upstream_status
        self.upstream_code = upstream_code

    def details(self) -> dict[str, Any]:
        return {"upstream_status": self.upstream_status, "upstream_code": self.upstream_code}


class LocalFailure(GatewayError):
    """The gateway's own process failed on this request (not the region, not the caller's
    content). It never counts against a region's circuit, cooldown or budget."""

    code = "internal_error"
    http_status = 500


class ConfigurationError(GatewayError):
    code = "gateway_misconfigured"
    http_status = 502


class AuthFailed(ConfigurationError):
    """401/403 from every region tried. The advice fits the region's ``auth`` mode: a key that
    was rejected (wrong or rotated) or refused (the resource disallows keys, network rules), or
    an identity lacking the role (new assignments take minutes to propagate). The upstream's
    own message is always kept."""

    code = "upstream_auth_failed"
    http_status = 502

    def __init__(
        self,
        *,
        region: str,
        identity: str,
        status: int,
        upstream_message: str,
        auth: str = "managed_identity",
        attempts: tuple[Attempt, ...] = (),
    ) -> None:
        verb = "rejected the credentials of" if status == 401 else "denied access to"
        if auth == "managed_identity":
            advice = (
                f"The identity needs the '{ROLE_NEEDED}' role on the Azure OpenAI resource; new "
                "role assignments take 5-15 minutes to propagate."
            )
        elif status == 401:
            advice = (
                "The key was rejected: it is wrong or was rotated. Update the region's api_key "
                "(or its Key Vault secret) from the resource's Keys and Endpoint page."
            )
        else:
            advice = (
                "The key was accepted but access is denied: the resource may disallow key "
                "authentication (disableLocalAuth) or its network rules block the gateway."
            )
        super().__init__(
            f"Region '{region}' {verb} the gateway's {identity} (HTTP {status}). {advice} "
            f"Upstream said: {upstream_message}",
            attempts=attempts,
        )
        self.region = region
        self.identity = identity
        self.status = status
        self.auth = auth

    def details(self) -> dict[str, Any]:
        return {
            "region": self.region,
            "identity": self.identity,
            "upstream_status": self.status,
            "role_needed": ROLE_NEEDED if self.auth == "managed_identity" else None,
        }


class DeploymentNotFound(ConfigurationError):
    code = "deployment_not_found"
    http_status = 502

    def __init__(
        self, *, region: str, deployment: str, alias: str, attempts: tuple[Attempt, ...] = ()
    ) -> None:
        super().__init__(
            f"Region '{region}' has no deployment named '{deployment}' (configured for model '{alias}'). "
            "Azure OpenAI routes by deployment name, not model name: check the region table against the "
            "deployments listed in the Azure portal.",
            attempts=attempts,
        )
        self.region = region
        self.deployment = deployment
        self.alias = alias

    def details(self) -> dict[str, Any]:
        return {"region": self.region, "deployment": self.deployment, "model": self.alias}


class UpstreamUnavailable(GatewayError):
    code = "upstream_unavailable"
    http_status = 503


class AllThrottled(UpstreamUnavailable):
    code = "all_throttled"
    http_status = 429

    def __init__(
        self, alias: str, *, retry_at: float, now: float, attempts: tuple[Attempt, ...] = ()
    ) -> None:
        wait = max(0.0, retry_at - now)
        super().__init__(
            f"Every deployment of '{alias}' is at its quota; the soonest accepts work in {wait:.1f}s.",
            attempts=attempts,
        )
        self.alias = alias
        self.retry_at = retry_at  # epoch seconds, on the gateway's clock
        self.retry_after_s = wait  # seconds from when the error was raised (``now``)

    def details(self) -> dict[str, Any]:
        return {"retry_at": self.retry_at, "retry_after_s": round(self.retry_after_s, 3)}


class RegionsUnavailable(UpstreamUnavailable):
    code = "upstream_unavailable"
    http_status = 503


class DeadlineExceeded(UpstreamUnavailable):
    code = "deadline_exceeded"
    http_status = 504


class StreamInterrupted(UpstreamUnavailable):
    code = "stream_interrupted"
    http_status = 502
