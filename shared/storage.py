"""Where storage lives, and the one place the app builds storage clients.

Every table, blob container and queue client of the app (the job store, results, parking
queues, batch rows, shared region state, the deployment quota ledger, per-caller windows, usage rows) is built
here, from one storage target: a connection string (``UseDevelopmentStorage=true``
understood), or identity-based storage (``AzureWebJobsStorage__accountName`` /
``__<kind>ServiceUri`` + ``__clientId``) under the app's one credential policy
(``shared.credentials``). Part of the composition root (``shared.runtime`` uses it; no other
module constructs an Azure SDK client: ``tests/unit/test_composition_root.py``).

``StorageTarget`` is one account as a settings object names it; ``TableTarget`` one table on
it (what the table stores take). The table row helper (create on first use, ETag-guarded
writes) is ``shared._tables``, re-exported here.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from ._tables import EtagTable, RowConflict
from .credentials import CredentialPool
from .settings import StorageSettings, storage_endpoint

if TYPE_CHECKING:
    from azure.core.credentials_async import AsyncTokenCredential
    from azure.data.tables.aio import TableClient
    from azure.storage.blob.aio import ContainerClient
    from azure.storage.queue.aio import QueueClient

__all__ = [
    "EtagTable",
    "RowConflict",
    "StorageTarget",
    "TableTarget",
    "expand_dev_connection",
    "storage_endpoint",
    "storage_queue_client",
    "storage_target",
    "table_target",
]


# The emulator's published well-known account and key (not a secret); what UseDevelopmentStorage=true means.
_DEV = (
    "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;"
    "AccountKey=Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==;"
    "BlobEndpoint=http://127.0.0.1:10000/devstoreaccount1;QueueEndpoint=http://127.0.0.1:10001/devstoreaccount1;"
    "TableEndpoint=http://127.0.0.1:10002/devstoreaccount1;"
)


def expand_dev_connection(connection: str) -> str:
    """``UseDevelopmentStorage=true`` -> the emulator's connection string; anything else as is."""
    return (
        _DEV
        if connection.strip().rstrip(";").lower() == "usedevelopmentstorage=true"
        else connection
    )


# The backlog's storage calls fail fast enough to answer 503 while the HTTP caller waits (the
# SDK default retries for about a minute); the backlog's own redelivery is the retry for queue work.
BACKLOG_OPTIONS: Mapping[str, Any] = {
    "retry_total": 2,
    "retry_backoff_factor": 0.5,
    "connection_timeout": 5,
    "read_timeout": 30,
}


def _timeout_options(timeout_s: float | None) -> dict[str, Any]:
    """No SDK retries when a timeout is given: the callers have their own policy."""
    if timeout_s is None:
        return {}
    return {"retry_total": 0, "connection_timeout": timeout_s, "read_timeout": timeout_s}


def _identity(pool: CredentialPool | None) -> CredentialPool:
    """The credential pool of identity-based storage (always set there: given or built)."""
    if pool is None:
        raise ValueError("identity-based storage needs a credential pool")
    return pool


class StorageTarget:
    """One storage account: ``connection`` (a connection string), or the endpoints of
    identity-based storage (``uris`` per kind, or ``account``) with ``credentials`` (a
    ``CredentialPool``) and the identity's ``client_id``. Builds every table, container and
    queue client on it. Owns the pool when ``owns_credentials``: ``aclose`` closes it."""

    def __init__(
        self,
        *,
        connection: str | None = None,
        account: str | None = None,
        uris: Mapping[str, str | None] | None = None,
        credentials: CredentialPool | None = None,
        client_id: str | None = None,
        owns_credentials: bool = True,
    ) -> None:
        uris = dict(uris or {})
        if not connection and not (account or any(uris.values())):
            raise ValueError("storage needs a connection string, an account name or service URIs")
        if not connection and credentials is None:
            credentials = CredentialPool()
        self.connection = connection
        self.account = account
        self.uris = uris
        self.credentials = credentials
        self.client_id = client_id
        self._owns = owns_credentials

    def endpoint(self, kind: str) -> str:
        """The ``kind`` ("table", "blob", "queue") endpoint of identity-based storage."""
        return storage_endpoint(kind, account=self.account, uris=self.uris)

    def _credential(self) -> AsyncTokenCredential:
        return _identity(self.credentials).get(self.client_id)

    def table(self, name: str, *, options: Mapping[str, Any] | None = None) -> TableClient:
        """A new async ``TableClient`` on table ``name``."""
        from azure.data.tables.aio import TableClient

        extra = dict(options or {})
        if self.connection:
            return TableClient.from_connection_string(
                expand_dev_connection(self.connection), table_name=name, **extra
            )
        return TableClient(
            self.endpoint("table"), table_name=name, credential=self._credential(), **extra
        )

    def container(self, name: str, *, options: Mapping[str, Any] | None = None) -> ContainerClient:
        """A new async blob ``ContainerClient`` on container ``name``."""
        from azure.storage.blob.aio import ContainerClient

        extra = dict(options or {})
        if self.connection:
            return ContainerClient.from_connection_string(
                expand_dev_connection(self.connection), container_name=name, **extra
            )
        return ContainerClient(
            self.endpoint("blob"), container_name=name, credential=self._credential(), **extra
        )

    def queue(self, name: str, *, options: Mapping[str, Any] | None = None) -> QueueClient:
        """A new async ``QueueClient`` on queue ``name``, with the base64 text codec the host's
        queue trigger uses."""
        from azure.storage.queue import TextBase64DecodePolicy, TextBase64EncodePolicy
        from azure.storage.queue.aio import QueueClient

        extra = dict(options or {})
        if self.connection:
            return QueueClient.from_connection_string(
                expand_dev_connection(self.connection),
                queue_name=name,
                message_encode_policy=TextBase64EncodePolicy(),
                message_decode_policy=TextBase64DecodePolicy(),
                **extra,
            )
        return QueueClient(
            self.endpoint("queue"),
            queue_name=name,
            credential=self._credential(),
            message_encode_policy=TextBase64EncodePolicy(),
            message_decode_policy=TextBase64DecodePolicy(),
            **extra,
        )

    def table_target(
        self, table: str, *, timeout_s: float | None = None, owns_credentials: bool = False
    ) -> TableTarget:
        """Table ``table`` on this account (its credentials shared, and closed with the target
        only when ``owns_credentials``)."""
        if self.connection:
            return TableTarget(table, connection=self.connection, timeout_s=timeout_s)
        return TableTarget(
            table,
            endpoint=self.endpoint("table"),
            credentials=self.credentials,
            client_id=self.client_id,
            timeout_s=timeout_s,
            owns_credentials=owns_credentials,
        )

    def describe(self) -> dict[str, Any]:
        """For health reports: how storage is reached (never a key)."""
        if self.connection:
            return {"auth": "connection_string"}
        return {"auth": _identity(self.credentials).policy.describe(self.client_id)}

    async def aclose(self) -> None:
        if self._owns and self.credentials is not None:
            await self.credentials.aclose()


def storage_target(
    settings: object, *, credentials: CredentialPool | None = None
) -> StorageTarget | None:
    """The storage the settings name (their ``StorageSettings``, read from their ``storage_*``
    fields): a connection string, else identity-based storage under the app's credential
    policy; None without any. Given ``credentials`` (a ``CredentialPool``), the target uses it
    and does not close it."""
    found = settings if isinstance(settings, StorageSettings) else StorageSettings.of(settings)
    if found.connection:
        return StorageTarget(connection=found.connection)
    if not found.configured:
        return None
    return StorageTarget(
        account=found.account,
        uris=found.uris,
        credentials=credentials,
        client_id=found.client_id,
        owns_credentials=credentials is None,
    )


class TableTarget:
    """Where one table lives: ``connection`` (a connection string, ``UseDevelopmentStorage=true``
    understood), or ``endpoint`` + ``credentials`` (a ``CredentialPool``: the app's credential
    policy) for identity-based storage. Owns the pool unless ``owns_credentials`` is False:
    ``aclose`` closes it."""

    def __init__(
        self,
        table: str,
        *,
        connection: str | None = None,
        endpoint: str | None = None,
        credentials: CredentialPool | None = None,
        client_id: str | None = None,
        timeout_s: float | None = None,
        owns_credentials: bool = True,
    ) -> None:
        if not connection and not (endpoint and credentials is not None):
            raise ValueError("a table needs a connection string, or an endpoint and credentials")
        self.table = table
        self.connection = connection
        self.endpoint = endpoint
        self.credentials = credentials
        self.client_id = client_id
        self.timeout_s = timeout_s
        self._owns = owns_credentials

    def client(self) -> TableClient:
        """A new async ``TableClient`` on this table."""
        from azure.data.tables.aio import TableClient

        options = _timeout_options(self.timeout_s)
        if self.connection:
            return TableClient.from_connection_string(
                expand_dev_connection(self.connection), table_name=self.table, **options
            )
        return TableClient(
            str(self.endpoint),
            table_name=self.table,
            credential=_identity(self.credentials).get(self.client_id),
            **options,
        )

    def describe(self) -> dict[str, Any]:
        """For health reports: which table and how it is reached (never a key)."""
        if self.connection:
            return {"kind": "table", "table": self.table, "auth": "connection_string"}
        return {
            "kind": "table",
            "table": self.table,
            "endpoint": self.endpoint,
            "auth": _identity(self.credentials).policy.describe(self.client_id),
        }

    async def aclose(self) -> None:
        if self._owns and self.credentials is not None:
            await self.credentials.aclose()


def table_target(
    settings: object, table: str, *, timeout_s: float | None = None
) -> TableTarget | None:
    """The table ``table`` on the storage the settings name (``storage_target``), owning its
    credentials; None without any storage."""
    target = storage_target(settings)  # its own credential pool, handed to the table
    if target is None:
        return None
    return target.table_target(table, timeout_s=timeout_s, owns_credentials=True)


def storage_queue_client(connection: str, queue: str, **options: Any) -> QueueClient:
    """An async ``QueueClient`` for ``queue`` from a connection string (``UseDevelopmentStorage=true``
    means Azurite's default ports), with the base64 text codec the host's queue trigger uses."""
    return StorageTarget(connection=connection).queue(queue, options=options)
