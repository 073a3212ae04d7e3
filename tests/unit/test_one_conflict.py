"""One error for a lost ETag race: the table helper's ``RowConflict`` is what the quota ledger
and the per-caller windows catch (``LedgerConflict`` and ``WindowConflict`` name it)."""

from __future__ import annotations

import pytest

from shared.callerlimits import InMemoryWindowStore, WindowConflict
from shared.pacing._ledger_store import InMemoryLedgerStore, LedgerConflict, LedgerRow
from shared.storage import RowConflict


def test_the_stores_name_one_conflict_error():
    assert LedgerConflict is RowConflict
    assert WindowConflict is RowConflict


async def test_in_memory_stores_raise_it_on_a_lost_race():
    windows = InMemoryWindowStore()
    await windows.write("k", {"n": 1}, None)
    with pytest.raises(RowConflict):
        await windows.write("k", {"n": 2}, None)  # someone else created it first
    ledger = InMemoryLedgerStore()
    row = LedgerRow()
    await ledger.write("d", row, None)
    with pytest.raises(RowConflict):
        await ledger.write("d", row, "stale")
