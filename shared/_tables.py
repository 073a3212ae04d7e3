"""One Azure Storage table as the app's stores use it (shared region state, quota ledger, per-caller
windows, usage rows): how a row is read and written under its ETag (``EtagTable``). Where the
table is and the client (``TableTarget``) come from ``shared.storage``, which re-exports this
module; this one imports nothing of the app's but ``shared.credentials``.

``EtagTable`` creates the table on first use (and again after it was deleted), reads a row with
its ETag (None when it does not exist), and writes a row either by creating it (no ETag) or by
replacing it ``If-Match`` its ETag; a lost race raises ``RowConflict`` and the caller reads
again.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable
from typing import Any, Protocol

from .credentials import close_all

__all__ = ["EtagTable", "RowConflict", "TableSource"]


class RowConflict(Exception):
    """The row changed since it was read (or someone else created it): read it again."""


class TableSource(Protocol):
    """Where a table is (``shared.storage.TableTarget``): builds its client, closes its
    credentials."""

    def client(self) -> Any: ...

    async def aclose(self) -> None: ...


class EtagTable:
    """One table's rows: created on first use, read with their ETag, written under it.
    ``client``: an async ``TableClient`` (closed by ``aclose``, with the target's credentials)."""

    def __init__(self, client: Any, *, target: TableSource | None = None) -> None:
        self.client = client
        self.target = target
        self._ready = False

    @classmethod
    def at(cls, target: TableSource) -> EtagTable:
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
        closers = [self.client.close]
        if self.target is not None:
            closers.append(self.target.aclose)
        await close_all(closers)
