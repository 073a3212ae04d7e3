"""The app's one storage settings model: where storage is and how it is reached.

``StorageSettings`` is what the composition root's storage module (``shared.storage``) builds
every client from. The gateway's and the backlog's settings both carry the same six storage
fields, declared through ``storage_field`` from the one table of names below, and both hand
them over as ``.storage``. Their aliases differ on purpose, and only in this: the gateway also
reads its own ``GATEWAY_STORAGE_*`` names first (its tables may live in another account); the
backlog reads the host's ``AzureWebJobsStorage*`` names only, because the host's queue trigger
(the parking poison queue) reads them too.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import AliasChoices, BaseModel, ConfigDict, Field

__all__ = ["HOST_STORAGE_NAMES", "StorageSettings", "storage_endpoint", "storage_field"]

# field -> the Functions host's own setting name for it (identity-based connections).
HOST_STORAGE_NAMES: Mapping[str, str] = {
    "storage_connection": "AzureWebJobsStorage",
    "storage_account": "AzureWebJobsStorage__accountName",
    "storage_client_id": "AzureWebJobsStorage__clientId",
    "storage_table_uri": "AzureWebJobsStorage__tableServiceUri",
    "storage_queue_uri": "AzureWebJobsStorage__queueServiceUri",
    "storage_blob_uri": "AzureWebJobsStorage__blobServiceUri",
}


def storage_field(name: str, *, own: str | None = None, description: str | None = None) -> Any:
    """The pydantic field ``name`` (a key of ``HOST_STORAGE_NAMES``): read from ``own`` first
    when given (then the field's own name too), then the host's name."""
    names = [own, HOST_STORAGE_NAMES[name], name] if own else [HOST_STORAGE_NAMES[name]]
    return Field(default=None, validation_alias=AliasChoices(*names), description=description)


def storage_endpoint(kind: str, *, account: str | None, uris: Mapping[str, str | None]) -> str:
    """The ``kind`` (table, queue, blob) endpoint of identity-based storage: its service URI,
    else the account's, else derived from another kind's URI."""
    if uris.get(kind):
        return str(uris[kind]).rstrip("/")
    if account:
        return f"https://{account}.{kind}.core.windows.net"
    for other, uri in uris.items():
        if uri and f".{other}." in uri:  # https://acct.queue.core.windows.net -> .table.
            return uri.rstrip("/").replace(f".{other}.", f".{kind}.", 1)
    raise ValueError(f"no endpoint for identity-based {kind} storage")


class StorageSettings(BaseModel):
    """One storage account: a connection string, or identity-based (account name or service
    URIs, and the user-assigned identity's client id; None = the app's default identity)."""

    model_config = ConfigDict(frozen=True)

    connection: str | None = None
    account: str | None = None
    client_id: str | None = None
    table_uri: str | None = None
    queue_uri: str | None = None
    blob_uri: str | None = None

    @classmethod
    def of(cls, settings: Any) -> StorageSettings:
        """From a settings object's ``storage_*`` fields (absent ones are None)."""
        return cls(
            connection=getattr(settings, "storage_connection", None),
            account=getattr(settings, "storage_account", None),
            client_id=getattr(settings, "storage_client_id", None),
            table_uri=getattr(settings, "storage_table_uri", None),
            queue_uri=getattr(settings, "storage_queue_uri", None),
            blob_uri=getattr(settings, "storage_blob_uri", None),
        )

    @property
    def uris(self) -> dict[str, str | None]:
        return {"queue": self.queue_uri, "table": self.table_uri, "blob": self.blob_uri}

    @property
    def configured(self) -> bool:
        return bool(self.connection or self.account or any(self.uris.values()))

    def endpoint(self, kind: str) -> str:
        return storage_endpoint(kind, account=self.account, uris=self.uris)
