"""Verdicts on regions and deployments, shared across function instances (the region-state
table; its settings keep their ``GATEWAY_HEALTH_*`` names for compatibility).

What one instance learns (a circuit opened or closed, a deployment cooling down, exhausted or
missing) is written as a ``Verdict``; every instance reads the records through a short
cache, so a second instance does not rediscover an outage from scratch.

* ``InMemoryVerdictStore``: per process (or shared by several gateways in one test).
* ``TableVerdictStore``: Azure Table Storage (Azurite locally), via ``azure-data-tables``.
  One partition, one row per region or deployment. A write replaces the row unconditionally
  (the last write wins, whatever its ``updated``); readers apply a record only when its
  ``updated`` is newer than what they already know, so a late write of an older verdict does
  not undo a newer one on an instance that has seen the newer one.

``SharedVerdicts`` keeps the table off the hot path without background loops (nothing runs
between invocations, which is what the Functions host expects):

* the first call on an instance awaits one read (bounded by a short timeout), so a fresh
  instance starts from what the others know;
* afterwards, a call that finds the cache older than ``health_cache_s`` starts one refresh
  task and goes on with the cached view (stale-while-revalidate);
* writes happen only on a state change, in a task; ``drain()`` (called by ``probe_regions``
  and ``aclose``) awaits them;
* storage down: the error is logged once, the table is left alone for ``retry_s``, and every
  call keeps working on this instance's own view.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from shared.credentials import close_all
from shared.storage import EtagTable, TableTarget

if TYPE_CHECKING:
    from azure.data.tables.aio import TableClient

    from shared.credentials import CredentialPool

__all__ = [
    "InMemoryVerdictStore",
    "SharedVerdicts",
    "TableVerdictStore",
    "Verdict",
    "VerdictStore",
]

logger = logging.getLogger(__name__)

_PARTITION = "health"


@dataclass(frozen=True, slots=True)
class Verdict:
    """One fact: ``key`` is ``region/<name>`` or ``deployment/<region>/<deployment>``;
    ``state`` is closed/open (regions) or ok/cooling/exhausted/missing (deployments);
    ``until`` is the epoch time the state lasts until (0 = indefinitely / not applicable)."""

    key: str
    state: str
    until: float
    updated: float
    writer: str = ""


class VerdictStore(Protocol):
    async def read_all(self) -> list[Verdict]: ...

    async def write(self, records: Sequence[Verdict]) -> None: ...

    async def aclose(self) -> None: ...


class InMemoryVerdictStore:
    """Records in a dict. Share one instance between gateways to share their health."""

    def __init__(self) -> None:
        self._records: dict[str, Verdict] = {}

    async def read_all(self) -> list[Verdict]:
        return list(self._records.values())

    async def write(self, records: Sequence[Verdict]) -> None:
        for record in records:
            current = self._records.get(record.key)
            if current is None or record.updated >= current.updated:
                self._records[record.key] = record

    async def aclose(self) -> None:
        return None


def _row_key(key: str) -> str:
    # RowKey may not contain / \ # ? ; '|' is allowed.
    return key.replace("/", "|")


class TableVerdictStore:
    """Health records in an Azure Storage table (created on first use): by connection string, or
    identity-based (``endpoint`` + a credential from the app's policy, ``shared.credentials``).
    Where the table is and how it is reached: ``shared.storage.TableTarget``."""

    def __init__(
        self,
        connection_string: str | None,
        table_name: str,
        *,
        timeout_s: float = 2.0,
        endpoint: str | None = None,
        credentials: CredentialPool | None = None,
        client_id: str | None = None,
        target: TableTarget | None = None,
    ) -> None:
        if target is None:
            if not connection_string and not endpoint:
                raise ValueError("TableVerdictStore needs a connection string or an endpoint")
            target = TableTarget(
                table_name,
                connection=connection_string,
                endpoint=endpoint,
                credentials=credentials,
                client_id=client_id,
                timeout_s=timeout_s,
            )
        self.target = target
        self._rows: EtagTable | None = None

    def describe(self) -> dict[str, Any]:
        """What the health report shows about the store (never a key)."""
        return self.target.describe()

    def _store(self) -> EtagTable:
        # No SDK retries: the gateway treats a failing table as absent and tries again later.
        if self._rows is None:
            self._rows = EtagTable(self.target.client())
        return self._rows

    def _table(self) -> TableClient:
        return self._store().client

    async def read_all(self) -> list[Verdict]:
        records = []
        async for entity in self._store().query(f"PartitionKey eq '{_PARTITION}'"):
            records.append(
                Verdict(
                    key=str(entity.get("key") or entity["RowKey"].replace("|", "/")),
                    state=str(entity.get("state", "")),
                    until=float(entity.get("until", 0.0)),
                    updated=float(entity.get("updated", 0.0)),
                    writer=str(entity.get("writer", "")),
                )
            )
        return records

    async def write(self, records: Sequence[Verdict]) -> None:
        await self._store().replace(
            {
                "PartitionKey": _PARTITION,
                "RowKey": _row_key(record.key),
                "key": record.key,
                "state": record.state,
                "until": float(record.until),
                "updated": float(record.updated),
                "writer": record.writer,
            }
            for record in records
        )

    async def aclose(self) -> None:
        rows, self._rows = self._rows, None
        await close_all(([rows.aclose] if rows is not None else []) + [self.target.aclose])


class SharedVerdicts:
    """Reads and writes one VerdictStore on behalf of one gateway (see the module docstring)."""

    def __init__(
        self,
        store: VerdictStore | None,
        *,
        apply: Callable[[Iterable[Verdict]], None],
        now: Callable[[], float],
        cache_s: float,
        retry_s: float = 30.0,
        first_read_timeout_s: float = 2.0,
    ) -> None:
        self.store = store
        self._apply = apply
        self._now = now
        self._cache_s = cache_s
        self._retry_s = retry_s
        self._first_read_timeout_s = first_read_timeout_s
        self._next_read = 0.0  # epoch time after which the cache is stale
        self._loaded = False
        self._reading: asyncio.Task[None] | None = None
        self._writing: asyncio.Task[None] | None = None
        self._outbox: list[Verdict] = []
        self._down_until = 0.0
        self._warned = False
        self.last_read: float | None = None

    @property
    def available(self) -> bool:
        return self.store is not None and self._down_until <= self._now()

    def before_call(self) -> asyncio.Future[None] | None:
        """Called at the start of each call. Returns something to await only on an instance's
        first call; otherwise at most starts a refresh task. Cheap when nothing is due."""
        if self.store is None:
            return None
        now = self._now()
        if now < self._next_read or self._reading is not None:
            return None
        self._next_read = now + self._cache_s
        if now < self._down_until:
            return None
        self._reading = asyncio.ensure_future(self._read())
        return None if self._loaded else self._reading

    async def first_read(self, waiter: asyncio.Future[None]) -> None:
        """Await the instance's first read (from ``before_call``), at most a short while."""
        try:
            await asyncio.wait_for(asyncio.shield(waiter), self._first_read_timeout_s)
        except (TimeoutError, Exception):  # noqa: BLE001 - the read task logs its own failure
            pass

    async def _read(self) -> None:
        store = self.store
        if store is None:  # never started without a store (see before_call)
            return
        try:
            records = await asyncio.wait_for(store.read_all(), self._first_read_timeout_s * 2)
        except Exception as exc:  # noqa: BLE001 - storage trouble never fails a call
            self._failed("read", exc)
        else:
            self._recovered()
            self.last_read = self._now()
            self._apply(records)
        finally:
            self._loaded = True
            self._reading = None

    def publish(self, record: Verdict) -> None:
        """Queue a state change for the table; starts one writer task if none is running."""
        if self.store is None:
            return
        self._outbox.append(record)
        if self._writing is None:
            self._writing = asyncio.ensure_future(self._write())

    async def _write(self) -> None:
        store = self.store
        if store is None:  # never started without a store (see publish)
            return
        try:
            while self._outbox:
                batch, self._outbox = self._outbox, []
                if self._now() < self._down_until:
                    continue  # storage is down: this instance keeps its own view
                latest: dict[str, Verdict] = {}
                for record in batch:
                    latest[record.key] = record
                try:
                    await asyncio.wait_for(
                        store.write(list(latest.values())), self._first_read_timeout_s * 2
                    )
                except Exception as exc:  # noqa: BLE001
                    self._failed("write", exc)
                else:
                    self._recovered()
        finally:
            self._writing = None

    async def refresh(self) -> None:
        """Read now (used by the timer's probe), unless storage is known to be down."""
        if self.store is None or self._now() < self._down_until:
            return
        if self._reading is None:
            self._next_read = self._now() + self._cache_s
            self._reading = asyncio.ensure_future(self._read())
        await asyncio.shield(self._reading)

    async def drain(self) -> None:
        """Wait for pending reads and writes."""
        for task in (self._reading, self._writing):
            if task is not None:
                try:
                    await task
                except Exception:  # noqa: BLE001 - already logged
                    pass

    def _failed(self, what: str, exc: Exception) -> None:
        self._down_until = self._now() + self._retry_s
        if not self._warned:
            self._warned = True
            logger.warning(
                "shared health store unavailable (%s failed: %s); continuing with this instance's own view",
                what,
                type(exc).__name__,
                extra={"health_store_error": type(exc).__name__},
            )

    def _recovered(self) -> None:
        if self._warned:
            self._warned = False
            logger.info("shared health store available again")
        self._down_until = 0.0

    async def aclose(self) -> None:
        await self.drain()
        if self.store is not None:
            try:
                await self.store.aclose()
            except Exception:  # noqa: BLE001
                pass
