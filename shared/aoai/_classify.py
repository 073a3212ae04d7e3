"""The one place where upstream failures are classified.

``classify(exc)`` turns whatever the openai SDK, httpx2, azure-identity or asyncio raised into
a ``ClassifiedFailure``: the attempt's ``FailureKind``, the HTTP status, a safe one-line detail (never
prompt text, keys or tokens), the response headers (for 429 cooldowns) and what the router
does next. Callers write ``raise classify(exc) from exc``. ``ClassifiedFailure.error(...)`` builds the
public exception (see ``_exceptions.py``) when the call ends on this failure.

Routing consequence of each kind (the router reads ``ClassifiedFailure.action``, a ``FailureAction``):

========================  ====================================================  ==========
kind                      cause                                                 action
========================  ====================================================  ==========
THROTTLED                 429                                                   cooldown
CONNECTION                refused, reset, DNS, broken stream                    circuit
SERVER_ERROR              5xx                                                   circuit
TIMEOUT                   connect/read timeout                                  circuit (opens at once)
AUTH                      401/403, or no token from the identity endpoint      skip same credentials
NOT_FOUND                 404 (DeploymentNotFound)                              skip deployment
CONTENT_FILTER            400 with code content_filter                          raise
BAD_REQUEST               other 4xx                                             raise
LOCAL                     our process or the request: body not encodable        raise
                          (lone surrogate), serialization, our own bugs
========================  ====================================================  ==========

Only what comes from the network or from an upstream answer is the region's fault. An
exception that is neither an SDK/transport error nor a decoding error of an upstream body
(``UnicodeEncodeError``, ``TypeError``, ``KeyError``, an unexpected ``ValueError``...)
originates in our process or in the request itself: it is ``LOCAL``, carries no status, and
never touches circuits, cooldowns or budgets. An unencodable body raises ``BadRequest``
(400); anything else ``LocalFailure`` (500).
"""

from __future__ import annotations

import enum
import json
from collections.abc import Mapping
from typing import Any

from ._exceptions import BadRequest, ContentFiltered, LocalFailure
from ._types import Attempt, FailureKind

__all__ = ["ClassifiedFailure", "FailureAction", "classify"]


class FailureAction(enum.Enum):
    """What the call does next after a classified failure (applied by ``_failure_policy``)."""

    COOLDOWN = "cooldown"  # cool the deployment down, try the next one
    CIRCUIT = "circuit"  # count toward the region's circuit, fail over to another region
    SKIP_CREDENTIALS = "skip_credentials"  # skip every region with the same credentials
    SKIP_DEPLOYMENT = "skip_deployment"  # mark the deployment missing, try the next one
    RAISE = "raise"  # the request itself is wrong: end the call with the public error


_ACTIONS: dict[FailureKind, FailureAction] = {
    FailureKind.THROTTLED: FailureAction.COOLDOWN,
    FailureKind.CONNECTION: FailureAction.CIRCUIT,
    FailureKind.SERVER_ERROR: FailureAction.CIRCUIT,
    FailureKind.TIMEOUT: FailureAction.CIRCUIT,
    FailureKind.AUTH: FailureAction.SKIP_CREDENTIALS,
    FailureKind.NOT_FOUND: FailureAction.SKIP_DEPLOYMENT,
    FailureKind.CONTENT_FILTER: FailureAction.RAISE,
    FailureKind.BAD_REQUEST: FailureAction.RAISE,
    FailureKind.LOCAL: FailureAction.RAISE,
}

# Transport libraries whose exceptions mean "the network or the peer failed".
_TRANSPORT_MODULES = ("httpx", "httpcore", "h11", "h2", "anyio", "ssl", "socket")

# HTTP status -> kind; 5xx and unknown 4xx are handled by range below.
_STATUS_KINDS: dict[int, FailureKind] = {
    400: FailureKind.BAD_REQUEST,
    401: FailureKind.AUTH,
    403: FailureKind.AUTH,
    404: FailureKind.NOT_FOUND,
    408: FailureKind.TIMEOUT,
    429: FailureKind.THROTTLED,
}

# 400 error codes that mean something more specific than "bad request".
_CODE_KINDS: dict[str, FailureKind] = {
    "content_filter": FailureKind.CONTENT_FILTER,
    "DeploymentNotFound": FailureKind.NOT_FOUND,
}


class ClassifiedFailure(Exception):
    """One classified failure of one attempt."""

    def __init__(
        self,
        kind: FailureKind,
        *,
        status: int | None = None,
        detail: str = "",
        headers: Mapping[str, str] | None = None,
        body: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(f"{kind.value}: {detail}")
        self.kind = kind
        self.status = status
        self.detail = detail
        self.headers = headers
        self.body = body or {}
        self.action = _ACTIONS[kind]
        self.encoding = False  # LOCAL only: the request body could not be encoded

    @property
    def opens_circuit_at_once(self) -> bool:
        return self.kind is FailureKind.TIMEOUT

    def error(self, attempts: tuple[Attempt, ...]) -> BadRequest | ContentFiltered | LocalFailure:
        """The public error for a RAISE outcome."""
        body = self.body
        if self.kind is FailureKind.LOCAL:
            if self.encoding:
                return BadRequest(
                    "The request contains text that cannot be encoded as UTF-8 (a lone UTF-16 "
                    "surrogate, e.g. a string cut inside an emoji); fix the text and retry.",
                    attempts=attempts,
                )
            return LocalFailure(
                f"The gateway failed to process this request ({self.detail}); no region was "
                "charged or marked unhealthy.",
                attempts=attempts,
            )
        if self.kind is FailureKind.CONTENT_FILTER:
            inner = body.get("innererror")
            inner = inner if isinstance(inner, Mapping) else {}
            categories = (
                inner.get("content_filter_result") or body.get("content_filter_result") or {}
            )
            return ContentFiltered(
                str(body.get("message") or "The prompt was filtered by the content filter."),
                categories=dict(categories) if isinstance(categories, Mapping) else {},
                attempts=attempts,
            )
        return BadRequest(
            str(body.get("message") or self.detail or "The upstream service rejected the request."),
            upstream_code=_str_or_none(body.get("code")),
            param=_str_or_none(body.get("param")),
            attempts=attempts,
        )


def _str_or_none(value: Any) -> str | None:
    return None if value is None else str(value)


def _status_kind(status: int, body: Mapping[str, Any]) -> FailureKind:
    if status >= 500:
        return FailureKind.SERVER_ERROR
    code = body.get("code")
    if isinstance(code, str) and code in _CODE_KINDS and status in (400, 404):
        return _CODE_KINDS[code]
    return _STATUS_KINDS.get(status, FailureKind.BAD_REQUEST)


def classify(exc: BaseException) -> ClassifiedFailure:
    """Map any exception raised while talking to a region (see the table above)."""
    if isinstance(exc, ClassifiedFailure):
        return exc
    import openai  # already imported by the client; cheap here

    if isinstance(exc, openai.APIStatusError):
        status = exc.status_code
        body = exc.body if isinstance(exc.body, Mapping) else {}
        kind = _status_kind(status, body)
        message = body.get("message") if isinstance(body.get("message"), str) else ""
        return ClassifiedFailure(
            kind,
            status=status,
            detail=f"HTTP {status} {message}"[:300].strip(),
            headers=exc.response.headers,
            body=body,
        )
    if isinstance(exc, openai.APITimeoutError):
        return ClassifiedFailure(FailureKind.TIMEOUT, detail="timed out")
    if isinstance(exc, openai.APIConnectionError):
        cause = exc.__cause__ or exc.__context__
        return ClassifiedFailure(
            FailureKind.CONNECTION,
            detail=f"connection error ({type(cause).__name__ if cause else 'unknown'})",
        )
    if isinstance(exc, openai.APIError):
        # An error event inside an SSE stream: upstream broke off mid-answer.
        return ClassifiedFailure(FailureKind.SERVER_ERROR, detail=f"stream error: {str(exc)[:200]}")
    if isinstance(exc, TimeoutError):
        return ClassifiedFailure(FailureKind.TIMEOUT, detail="timed out")
    if _is_credential_error(exc):
        return ClassifiedFailure(
            FailureKind.AUTH,
            detail=f"no token from the identity endpoint ({type(exc).__name__}): {str(exc)[:200]}",
        )
    if isinstance(exc, (ConnectionError, OSError)) or _is_transport_error(exc):
        return ClassifiedFailure(
            FailureKind.CONNECTION, detail=f"connection error ({type(exc).__name__})"
        )
    if isinstance(exc, (json.JSONDecodeError, UnicodeDecodeError)):
        # Decoding an upstream body failed: a broken response, the server's fault.
        return ClassifiedFailure(
            FailureKind.SERVER_ERROR, detail=f"unreadable response ({type(exc).__name__})"
        )
    # Anything else originates in our process or in the request (see the module docstring).
    failure = ClassifiedFailure(FailureKind.LOCAL, detail=f"{type(exc).__name__} in the gateway")
    failure.encoding = isinstance(exc, UnicodeEncodeError)
    return failure


def _is_transport_error(exc: BaseException) -> bool:
    root = type(exc).__module__.split(".")[0]
    return root in _TRANSPORT_MODULES or root.startswith(("httpx", "httpcore"))  # httpx2 too


def _is_credential_error(exc: BaseException) -> bool:
    """azure-identity / azure-core errors (only token acquisition uses azure-core here),
    recognised without importing azure on the hot path."""
    return type(exc).__module__.startswith(("azure.identity", "azure.core"))
