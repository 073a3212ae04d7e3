"""The Azure OpenAI access layer: routing, managed identity, failover and throttle handling.

See ``_exceptions.py`` for the error tree. The entry point is ``Gateway``; heavy SDKs
(openai, azure-identity, azure-data-tables) are imported only when a gateway is built.

The public names are what other packages, the app, the dev server, the benchmarks and the
tests of other packages use; the rest stays in the private modules (this package's own tests
import those). Errors a caller never names (each carries its ``code`` and ``http_status``,
which the HTTP layer maps through ``GatewayError``) are not exported.
"""

from ._access_layer import AccessLayer
from ._admission import Admission
from ._classify import ClassifiedFailure, classify
from ._clients import ClientProvider
from ._clock import Clock, ManualClock, SystemClock
from ._exceptions import (
    AllThrottled,
    AuthFailed,
    BadRequest,
    ConfigurationError,
    ContentFiltered,
    DeadlineExceeded,
    DeploymentNotFound,
    GatewayError,
    RegionsUnavailable,
    RequestRejected,
    StreamInterrupted,
    UnknownModel,
    UpstreamRequestFailed,
    UpstreamUnavailable,
)
from ._gateway import Gateway
from ._observers import AttemptEvent, CallLog, CallObserver, CallOutcome
from ._request_cost import request_tokens
from ._requests import ChatRequest, EmbeddingsRequest
from ._senders import quiet_close
from ._sse_reader import IdleDeadline
from ._types import Attempt, CallContext, CallResult, Capacity, FailureKind, Usage
from ._vectors import float32_array
from ._verdicts import InMemoryVerdictStore, TableVerdictStore, Verdict, VerdictStore

__all__ = [
    "AccessLayer",
    "Admission",
    "AllThrottled",
    "Attempt",
    "AttemptEvent",
    "AuthFailed",
    "BadRequest",
    "CallContext",
    "CallLog",
    "CallObserver",
    "CallOutcome",
    "CallResult",
    "Capacity",
    "ChatRequest",
    "ClassifiedFailure",
    "ClientProvider",
    "Clock",
    "ConfigurationError",
    "ContentFiltered",
    "DeadlineExceeded",
    "DeploymentNotFound",
    "EmbeddingsRequest",
    "FailureKind",
    "Gateway",
    "GatewayError",
    "IdleDeadline",
    "InMemoryVerdictStore",
    "ManualClock",
    "RegionsUnavailable",
    "RequestRejected",
    "StreamInterrupted",
    "SystemClock",
    "TableVerdictStore",
    "UnknownModel",
    "UpstreamRequestFailed",
    "UpstreamUnavailable",
    "Usage",
    "Verdict",
    "VerdictStore",
    "classify",
    "float32_array",
    "quiet_close",
    "request_tokens",
]
