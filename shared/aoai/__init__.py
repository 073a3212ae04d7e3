"""The Azure OpenAI access layer: routing, managed identity, failover and throttle handling.

See ``_exceptions.py`` for the error tree.
"""

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
    UpstreamUnavailable,
)
from ._requests import ChatMessage, ChatRequest, EmbeddingsRequest
from ._types import Attempt, CallContext, CallResult, FailureKind, Usage

__all__ = [
    "AllThrottled",
    "Attempt",
    "AuthFailed",
    "BadRequest",
    "CallContext",
    "CallResult",
    "ChatMessage",
    "ChatRequest",
    "ConfigurationError",
    "ContentFiltered",
    "DeadlineExceeded",
    "DeploymentNotFound",
    "EmbeddingsRequest",
    "FailureKind",
    "GatewayError",
    "RegionsUnavailable",
    "RequestRejected",
    "StreamInterrupted",
    "UnknownModel",
    "UpstreamUnavailable",
    "Usage",
]
