"""One Azure Storage table as the app's stores use it (shared region state, quota ledger, per-caller
windows, usage rows): how a row is read and written under its ETag (``EtagTable``). Where the
table is and the client (``TableTarget``) come from ``shared.storage``, which re-exports this
module; this one imports nothing of the app's but ``shared.credentials``.

``EtagTable`` reads a row with its ETag (None when it does not exist), and writes a row either
by creating it (no ETag) or by replacing it ``If-Match`` its ETag; a lost race raises
``RowConflict`` and the caller reads again. Its row operations go to the table directly and
create it only when the service answers that it does not exist (first use in a new account, or
after it was deleted), then retry once: a process's first request, which reads the shared
health and the quota ledger before it calls Azure OpenAI, pays no create-table round trip per
table when the tables are there (the usual case). ``ready()`` (create first) stays for the
stores that call it themselves.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from .credentials import close_all

if TYPE_CHECKING:
    from azure.core.async_paging import AsyncItemPaged
    from azure.data.tables import TableEntity
    from azure.data.tables.aio import TableClient

__all__ = ["EtagTable", "RowConflict", "TableSource"]


T = TypeVar("T")


def _table_missing(exc: Exception) -> bool:
    """Whether a ``ResourceNotFoundError`` is about the table, not a row."""
    # error_code is a str enum (its str() is the member's name): compare, then the text
    return getattr(exc, "error_code", None) == "TableNotFound" or "TableNotFound" in str(exc)


class RowConflict(Exception):
    """The row changed since it was read (or someone else created it): read it again."""


class TableSource(Protocol):
    """Where a table is (``shared.storage.TableTarget``): builds its client, closes its
    credentials."""

    def client(self) -> TableClient: ...

    async def aclose(self) -> None: ...


class EtagTable:
    """One table's rows: created on first use, read with their ETag, written under it.
    ``client``: an async ``TableClient`` (closed by ``aclose``, with the target's credentials)."""

    def __init__(self, client: TableClient, *, target: TableSource | None = None) -> None:
        self.client = client
        self.target = target
        self._ready = False

    @classmethod
    def at(cls, target: TableSource) -> EtagTable:
        return cls(target.client(), target=target)

    async def ready(self) -> TableClient:
        """The client, the table created first if this instance has not yet done so."""
        if not self._ready:
            await self._create()
        return self.client

    async def _create(self) -> None:
        from azure.core.exceptions import ResourceExistsError

        try:
            await self.client.create_table()
        except ResourceExistsError:
            pass
        self._ready = True

    async def _on_table(self, operation: Callable[[TableClient], Awaitable[T]]) -> T:
        """``operation(client)``; when the table does not exist, create it and run it once more
        (a second "table not found" raises)."""
        from azure.core.exceptions import ResourceNotFoundError

        try:
            return await operation(self.client)
        except ResourceNotFoundError as exc:
            if not _table_missing(exc):
                raise
        await self._create()
        return await operation(self.client)

    async def get(self, partition: str, row_key: str) -> tuple[TableEntity | None, str | None]:
        """The entity and its ETag; (None, None) when the row does not exist (a missing table
        is created first)."""
        from azure.core.exceptions import ResourceNotFoundError

        async def read(table: TableClient) -> TableEntity | None:
            try:
                return await table.get_entity(partition, row_key)
            except ResourceNotFoundError as exc:
                if _table_missing(exc):
                    raise
                return None

        entity = await self._on_table(read)
        if entity is None:
            return None, None
        return entity, str(entity.metadata["etag"])

    async def put(self, entity: dict[str, Any], etag: str | None) -> str:
        """Create the row (``etag`` None) or replace it if it still has ``etag``; the new ETag.
        ``RowConflict`` when someone else created or changed it in between."""
        from azure.core import MatchConditions
        from azure.core.exceptions import ResourceExistsError, ResourceModifiedError
        from azure.data.tables import UpdateMode

        async def write(table: TableClient) -> Mapping[str, Any]:
            if etag is None:
                return await table.create_entity(entity)
            return await table.update_entity(
                entity,
                mode=UpdateMode.REPLACE,
                etag=etag,
                match_condition=MatchConditions.IfNotModified,
            )

        try:
            meta = await self._on_table(write)
        except (ResourceExistsError, ResourceModifiedError) as exc:
            raise RowConflict(entity.get("RowKey")) from exc
        return str(meta.get("etag", ""))

    async def replace(self, entities: Iterable[dict[str, Any]]) -> None:
        """Upsert (replace) each entity unconditionally: the last write wins."""
        from azure.data.tables import UpdateMode

        for entity in entities:

            async def upsert(
                table: TableClient, entity: dict[str, Any] = entity
            ) -> Mapping[str, Any]:
                return await table.upsert_entity(entity, mode=UpdateMode.REPLACE)

            await self._on_table(upsert)

    async def query(self, query_filter: str) -> AsyncIterator[TableEntity]:
        """The rows matching ``query_filter`` (none from a missing table, which is created)."""

        async def first_page(
            table: TableClient,
        ) -> tuple[list[TableEntity], AsyncItemPaged[TableEntity]]:
            pages = table.query_entities(query_filter)
            found: list[TableEntity] = []
            async for entity in pages:  # the first request goes out here
                found.append(entity)
                break
            return found, pages

        found, pages = await self._on_table(first_page)
        for entity in found:
            yield entity
        if found:
            async for entity in pages:
                yield entity

    async def aclose(self) -> None:
        closers = [self.client.close]
        if self.target is not None:
            closers.append(self.target.aclose)
        await close_all(closers)
