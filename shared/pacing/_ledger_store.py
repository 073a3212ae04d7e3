"""Where the shared quota ledger keeps its rows: one row per deployment, updated under its ETag.

* ``InMemoryLedgerStore``: a dict with ETags (one process; several gateways in one test).
* ``TableLedgerStore``: Azure Table Storage (Azurite locally), via ``azure-data-tables``:
  partition ``ledger``, row key = the deployment key with ``|`` for ``/``. A write names the
  ETag it read (``If-Match``) or creates the row; a lost race raises ``LedgerConflict`` and
  the caller reads again.

A row holds the current token window (index, tokens granted) and request window (index,
requests granted), the windows' phase as learned from Azure's ``x-ratelimit-reset-*`` headers,
and each member instance's last lease time (per-instance freshness, shown in health).
``request_counts`` (JSON in the entity, like ``members``) holds the requests granted per request
window for the current window and the next ones (leases cover several request windows); the
current window's count is also in ``request_window``/``requests``, which a row written by older
code (no ``request_counts``) still has.
"""

from __future__ import annotations

import itertools
import json
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

from shared.credentials import close_all
from shared.storage import EtagTable, RowConflict, TableTarget

__all__ = [
    "InMemoryLedgerStore",
    "LedgerConflict",
    "LedgerRow",
    "LedgerStore",
    "TableLedgerStore",
]

_PARTITION = "ledger"


# The app's one lost-ETag-race error (``shared.storage.RowConflict``), under the ledger's name.
LedgerConflict = RowConflict


@dataclass(slots=True)
class LedgerRow:
    """One deployment's shared windows. ``tokens``/``requests``: granted in the window with
    index ``token_window``/``request_window``; ``backlog_tokens``: the backlog's part of
    ``tokens``; phases in seconds (window boundaries fall at ``phase + k * span``)."""

    token_window: int = -1
    tokens: int = 0
    backlog_tokens: int = 0
    request_window: int = -1
    requests: int = 0
    token_phase: float = 0.0
    request_phase: float = 0.0
    phase_known: bool = False
    members: dict[str, float] = field(default_factory=dict)
    # requests granted per request window index: the current one and later ones
    request_counts: dict[int, int] = field(default_factory=dict)

    def copy(self) -> LedgerRow:
        return replace(self, members=dict(self.members), request_counts=dict(self.request_counts))


class LedgerStore(Protocol):
    async def read(self, key: str) -> tuple[LedgerRow | None, str | None]:
        """The row and its ETag; (None, None) when it does not exist yet."""
        ...

    async def write(self, key: str, row: LedgerRow, etag: str | None) -> str:
        """Replace the row if it still has ``etag`` (create it when ``etag`` is None); the new
        ETag. Raises ``LedgerConflict`` when someone wrote in between."""
        ...

    async def aclose(self) -> None: ...


class InMemoryLedgerStore:
    """Rows in a dict. Share one instance between gateways to share their quota."""

    def __init__(self) -> None:
        self._rows: dict[str, tuple[LedgerRow, str]] = {}
        self._etags = itertools.count(1)
        self.reads = 0
        self.writes = 0

    async def read(self, key: str) -> tuple[LedgerRow | None, str | None]:
        self.reads += 1
        found = self._rows.get(key)
        if found is None:
            return None, None
        return found[0].copy(), found[1]

    async def write(self, key: str, row: LedgerRow, etag: str | None) -> str:
        self.writes += 1
        current = self._rows.get(key)
        if (current is None) != (etag is None) or (current is not None and current[1] != etag):
            raise LedgerConflict(key)
        new = str(next(self._etags))
        self._rows[key] = (row.copy(), new)
        return new

    async def aclose(self) -> None:
        return None


class TableLedgerStore:
    """Ledger rows in an Azure Storage table (created on first use); no SDK retries. By
    connection string, or at a ``TableTarget`` (identity-based storage, ``shared.storage``)."""

    def __init__(
        self,
        connection_string: str | None,
        table_name: str,
        *,
        timeout_s: float = 2.0,
        target: TableTarget | None = None,
    ) -> None:
        self.target = target or TableTarget(
            table_name, connection=connection_string, timeout_s=timeout_s
        )
        self._table: EtagTable | None = None

    def describe(self) -> dict[str, Any]:
        return self.target.describe()

    def _rows(self) -> EtagTable:
        if self._table is None:
            self._table = EtagTable(self.target.client())
        return self._table

    async def read(self, key: str) -> tuple[LedgerRow | None, str | None]:
        entity, etag = await self._rows().get(_PARTITION, _row_key(key))
        return (None, None) if entity is None else (_from_entity(entity), etag)

    async def write(self, key: str, row: LedgerRow, etag: str | None) -> str:
        return await self._rows().put(_to_entity(key, row), etag)  # RowConflict on a lost race

    async def aclose(self) -> None:
        table, self._table = self._table, None
        await close_all(([table.aclose] if table is not None else []) + [self.target.aclose])


def _row_key(key: str) -> str:
    return key.replace("/", "|")


def _to_entity(key: str, row: LedgerRow) -> dict[str, Any]:
    return {
        "PartitionKey": _PARTITION,
        "RowKey": _row_key(key),
        # Window indices as doubles: a short span's index outgrows Int32 (Edm.Double holds 2**53).
        "token_window": float(row.token_window),
        "tokens": row.tokens,
        "backlog_tokens": row.backlog_tokens,
        "request_window": float(row.request_window),
        "requests": row.requests,
        "token_phase": float(row.token_phase),
        "request_phase": float(row.request_phase),
        "phase_known": row.phase_known,
        "members": json.dumps(row.members, separators=(",", ":")),
        "request_counts": json.dumps(
            {str(k): v for k, v in sorted(row.request_counts.items())}, separators=(",", ":")
        ),
    }


def _from_entity(entity: Any) -> LedgerRow:
    try:
        members = {str(k): float(v) for k, v in json.loads(entity.get("members") or "{}").items()}
    except (ValueError, AttributeError):
        members = {}
    try:
        counts = json.loads(entity.get("request_counts") or "{}")
        request_counts = {int(k): int(v) for k, v in counts.items()}
    except (ValueError, TypeError, AttributeError):
        request_counts = {}  # older code's row: request_window/requests say the current count
    return LedgerRow(
        token_window=int(float(entity.get("token_window", -1))),
        tokens=int(entity.get("tokens", 0)),
        backlog_tokens=int(entity.get("backlog_tokens", 0)),
        request_window=int(float(entity.get("request_window", -1))),
        requests=int(entity.get("requests", 0)),
        token_phase=float(entity.get("token_phase", 0.0)),
        request_phase=float(entity.get("request_phase", 0.0)),
        phase_known=bool(entity.get("phase_known", False)),
        members=members,
        request_counts=request_counts,
    )
