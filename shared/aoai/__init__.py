"""The Azure OpenAI access layer: routing, managed identity, failover and throttle handling.

See ``_exceptions.py`` for the error tree. The entry point is ``Gateway``; heavy SDKs
(openai, azure-identity, azure-data-tables) are imported only when a gateway is built.
"""

from ._access_layer import AccessLayer
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
    LocalFailure,
    OutputLimitExceeded,
    RegionsUnavailable,
    RequestRejected,
    RequestTooLarge,
    StreamInterrupted,
    TooManyInputs,
    UnknownModel,
    UpstreamRequestFailed,
    UpstreamUnavailable,
)
from ._gateway import Gateway
from ._logsafe import log_safe
from ._observers import AttemptEvent, CallLog, CallObserver, CallOutcome
from ._request_cost import request_tokens
from ._requests import ChatMessage, ChatRequest, EmbeddingsRequest
from ._stream import ChatStream
from ._types import Attempt, CallContext, CallResult, Capacity, FailureKind, Usage
from ._vectors import float32_array
from ._verdicts import (
    InMemoryVerdictStore,
    TableVerdictStore,
    Verdict,
    VerdictStore,
)

__all__ = [
    "AccessLayer",
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
    "ChatMessage",
    "ChatRequest",
    "ChatStream",
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
    "InMemoryLedgerStore",
    "InMemoryVerdictStore",
    "LedgerStore",
    "LocalFailure",
    "ManualClock",
    "OutputLimitExceeded",
    "RegionsUnavailable",
    "RequestRejected",
    "RequestTooLarge",
    "StreamInterrupted",
    "SystemClock",
    "TableLedgerStore",
    "TableVerdictStore",
    "TooManyInputs",
    "UnknownModel",
    "UpstreamRequestFailed",
    "UpstreamUnavailable",
    "Usage",
    "Verdict",
    "VerdictStore",
    "classify",
    "float32_array",
    "log_safe",
    "request_tokens",
]
