"""The one place the app builds Service Bus clients (part of the composition root).

A connection string locally (the test broker), otherwise the namespace with the app's
credential policy (``shared.credentials``): the same settings the Functions host reads for
``connection="ServiceBusConnection"``. The credential belongs to the caller's
``CredentialPool``, closed with it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from azure.servicebus.aio import ServiceBusClient

    from .credentials import CredentialPool

__all__ = ["BusSettings", "connect_service_bus"]


class BusSettings(Protocol):
    """What a settings object says about Service Bus (``BacklogSettings`` does)."""

    @property
    def servicebus_connection(self) -> str | None: ...

    @property
    def servicebus_namespace(self) -> str | None: ...

    @property
    def servicebus_client_id(self) -> str | None: ...


def connect_service_bus(settings: BusSettings, credentials: CredentialPool) -> ServiceBusClient:
    """A ServiceBusClient from the connection string, or from the namespace with the credential
    ``credentials`` holds for ``ServiceBusConnection__clientId`` (closed with the pool)."""
    from azure.servicebus.aio import ServiceBusClient

    if settings.servicebus_connection:
        return ServiceBusClient.from_connection_string(settings.servicebus_connection)
    return ServiceBusClient(
        fully_qualified_namespace=str(settings.servicebus_namespace),
        credential=credentials.get(settings.servicebus_client_id),
    )
