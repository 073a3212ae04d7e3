"""One Azure Storage table as the app's stores use it (shared health, quota ledger, per-caller
windows, usage rows): where it is (``TableTarget``: a connection string, or identity-based
storage under the app's credential policy) and how a row is read and written under its ETag
(``EtagTable``). Reached through ``shared.storage``.

``EtagTable`` creates the table on first use (and again after it was deleted), reads a row with
its ETag (None when it does not exist), and writes a row either by creating it (no ETag) or by
replacing it ``If-Match`` its ETag; a lost race raises ``RowConflict`` and the caller reads
again. No SDK retries when the target has a timeout: the callers have their own policy.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable
from typing import Any

__all__ = ["EtagTable", "RowConflict", "TableTarget", "table_target"]


class RowConflict(Exception):
    """The row changed since it was read (or someone else created it): read it again."""


class TableTarget:
    """Where one table lives: ``connection`` (a connection string, ``UseDevelopmentStorage=true``
    understood), or ``endpoint`` + ``credentials`` (a ``CredentialPool``: the app's credential
    policy) for identity-based storage. Owns the pool: ``aclose`` closes it."""

    def __init__(
        self,
        table: str,
        *,
        connection: str | None = None,
        endpoint: str | None = None,
        credentials: Any = None,
        client_id: str | None = None,
        timeout_s: float | None = None,
    ) -> None:
        if not connection and not (endpoint and credentials is not None):
            raise ValueError("a table needs a connection string, or an endpoint and credentials")
        self.table = table
        self.connection = connection
        self.endpoint = endpoint
        self.credentials = credentials
        self.client_id = client_id
        self.timeout_s = timeout_s

    def client(self) -> Any:
        """A new async ``TableClient`` on this table."""
        from azure.data.tables.aio import TableClient

        from .storage import expand_dev_connection

        options: dict[str, Any] = {"table_name": self.table}
        if self.timeout_s is not None:
            options.update(
                retry_total=0, connection_timeout=self.timeout_s, read_timeout=self.timeout_s
            )
        if self.connection:
            return TableClient.from_connection_string(
                expand_dev_connection(self.connection), **options
            )
        return TableClient(
            str(self.endpoint), credential=self.credentials.get(self.client_id), **options
        )

    def describe(self) -> dict[str, Any]:
        """For health reports: which table and how it is reached (never a key)."""
        if self.connection:
            return {"kind": "table", "table": self.table, "auth": "connection_string"}
        return {
            "kind": "table",
            "table": self.table,
            "endpoint": self.endpoint,
            "auth": self.credentials.policy.describe(self.client_id),
        }

    async def aclose(self) -> None:
        if self.credentials is not None:
            await self.credentials.aclose()


def table_target(
    settings: Any, table: str, *, timeout_s: float | None = None
) -> TableTarget | None:
    """The table ``table`` on the storage the settings name: ``storage_connection``, else
    identity-based storage (``AzureWebJobsStorage__accountName`` / ``__tableServiceUri`` /
    ``__queueServiceUri``, ``__clientId``) under the app's credential policy; None without any."""
    if settings.storage_connection:
        return TableTarget(table, connection=settings.storage_connection, timeout_s=timeout_s)
    uris = {
        "table": getattr(settings, "storage_table_uri", None),
        "queue": getattr(settings, "storage_queue_uri", None),
    }
    account = getattr(settings, "storage_account", None)
    if not (account or any(uris.values())):
        return None
    from .credentials import CredentialPool
    from .storage import storage_endpoint

    return TableTarget(
        table,
        endpoint=storage_endpoint("table", account=account, uris=uris),
        credentials=CredentialPool(),
        client_id=getattr(settings, "storage_client_id", None),
        timeout_s=timeout_s,
    )


class EtagTable:
    """One table's rows: created on first use, read with their ETag, written under it.
    ``client``: an async ``TableClient`` (closed by ``aclose``, with the target's credentials)."""

    def __init__(self, client: Any, *, target: TableTarget | None = None) -> None:
        self.client = client
        self.target = target
        self._ready = False

    @classmethod
    def at(cls, target: TableTarget) -> EtagTable:
        return cls(target.client(), target=target)

    async def ready(self) -> Any:
        """The client, the table created first if this instance has not yet done so."""
        if not self._ready:
            from azure.core.exceptions import ResourceExistsError

            try:
                await self.client.create_table()
            except ResourceExistsError:
                pass
            self._ready = True
        return self.client

    async def get(self, partition: str, row_key: str) -> tuple[Any | None, str | None]:
        """The entity and its ETag; (None, None) when the row does not exist. A missing table
        raises (and is created again on the next use)."""
        from azure.core.exceptions import ResourceNotFoundError

        table = await self.ready()
        try:
            entity = await table.get_entity(partition, row_key)
        except ResourceNotFoundError as exc:
            # error_code is a str enum (its str() is the member's name): compare, then the text
            if getattr(exc, "error_code", None) == "TableNotFound" or "TableNotFound" in str(exc):
                self._ready = False
                raise
            return None, None
        return entity, str(entity.metadata["etag"])

    async def put(self, entity: dict[str, Any], etag: str | None) -> str:
        """Create the row (``etag`` None) or replace it if it still has ``etag``; the new ETag.
        ``RowConflict`` when someone else created or changed it in between."""
        from azure.core import MatchConditions
        from azure.core.exceptions import ResourceExistsError, ResourceModifiedError
        from azure.data.tables import UpdateMode

        table = await self.ready()
        try:
            if etag is None:
                meta = await table.create_entity(entity)
            else:
                meta = await table.update_entity(
                    entity,
                    mode=UpdateMode.REPLACE,
                    etag=etag,
                    match_condition=MatchConditions.IfNotModified,
                )
        except (ResourceExistsError, ResourceModifiedError) as exc:
            raise RowConflict(entity.get("RowKey")) from exc
        return str(meta.get("etag", ""))

    async def replace(self, entities: Iterable[dict[str, Any]]) -> None:
        """Upsert (replace) each entity unconditionally: the last write wins."""
        from azure.data.tables import UpdateMode

        table = await self.ready()
        for entity in entities:
            await table.upsert_entity(entity, mode=UpdateMode.REPLACE)

    async def query(self, query_filter: str) -> AsyncIterator[Any]:
        table = await self.ready()
        async for entity in table.query_entities(query_filter):
            yield entity

    async def aclose(self) -> None:
        from .credentials import close_all

        closers = [self.client.close]
        if self.target is not None:
            closers.append(self.target.aclose)
        await close_all(closers)
