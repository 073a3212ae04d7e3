"""Which errors say that a peer of the backlog (Azure Storage, Service Bus) is out of reach for
now, rather than that the request or our code is wrong: the one place that reads the SDKs'
exception types for that."""

from __future__ import annotations

from ._bus import QueueNotAuthorized

__all__ = ["unreachable"]


def unreachable(exc: BaseException) -> str | None:
    """``job_store_unavailable`` (Azure Storage) or ``queue_unavailable`` (Service Bus) when
    ``exc`` says that peer is out of reach for now (a connection or read failure, a 5xx, 408 or
    429, or no right to send yet: role assignments take minutes to propagate); None for anything
    else, such as a refused credential or a 4xx. A reply queue the app may not send to never
    gets here: the reply is dropped as undeliverable (``deliver_reply``)."""
    from azure.core.exceptions import (
        ClientAuthenticationError,
        HttpResponseError,
        ServiceRequestError,
        ServiceResponseError,
    )

    if isinstance(exc, (ServiceRequestError, ServiceResponseError)):
        return "job_store_unavailable"
    if isinstance(exc, HttpResponseError) and not isinstance(exc, ClientAuthenticationError):
        status = exc.status_code or 0
        if status >= 500 or status in (408, 429):
            return "job_store_unavailable"

    if isinstance(exc, QueueNotAuthorized):
        return "queue_unavailable"
    try:
        from azure.servicebus.exceptions import ServiceBusError
    except ImportError:  # pragma: no cover - the SDK is a dependency of the app
        return None
    if isinstance(exc, ServiceBusError):
        return "queue_unavailable"
    return None
