"""The ledger row's per-window request counts in a real table (Azurite, azure-data-tables):
written and read back, an entity older code wrote (no ``request_counts``) still read, and a
lease over several request windows given back in full on close. The clock is moved by hand."""

from __future__ import annotations

from shared.aoai import ManualClock
from shared.pacing import TableLedgerStore
from shared.pacing._ledger_store import LedgerRow, _row_key
from shared.pacing._quota_ledger import INTERACTIVE, DeploymentQuotaLedger, LedgerConfig
from shared.storage import EtagTable, TableTarget

KEY = "deployment/eastus2/gpt-4o-prod"
MINUTE0 = 600_000.0


async def test_request_counts_round_trip_and_an_older_row_still_reads(azurite, unique_name):
    name = unique_name("ledger")
    store = TableLedgerStore(azurite.connection_string, name, timeout_s=15.0)
    try:
        row = LedgerRow(
            token_window=10_000,
            tokens=500,
            request_window=60_000,
            requests=7,
            members={"a": 1.0},
            request_counts={60_000: 7, 60_001: 12, 60_002: 3},
        )
        etag = await store.write(KEY, row, None)
        again, read_etag = await store.read(KEY)
        assert read_etag == etag and again == row
        # An entity as older code writes it: the current window's count, no request_counts.
        table = EtagTable.at(TableTarget(name, connection=azurite.connection_string))
        try:
            await table.put(
                {
                    "PartitionKey": "ledger",
                    "RowKey": _row_key(KEY),
                    "token_window": 10_000.0,
                    "tokens": 500,
                    "backlog_tokens": 0,
                    "request_window": 60_000.0,
                    "requests": 9,
                    "token_phase": 0.0,
                    "request_phase": 0.0,
                    "phase_known": False,
                    "members": "{}",
                },
                etag,
            )
        finally:
            await table.aclose()
        legacy, _ = await store.read(KEY)
        assert legacy is not None and legacy.request_counts == {}
        assert (legacy.request_window, legacy.requests) == (60_000, 9)
    finally:
        await store.aclose()


async def test_a_lease_over_several_windows_is_given_back_in_full(azurite, unique_name):
    clock = ManualClock(start=MINUTE0 + 1.0)
    store = TableLedgerStore(azurite.connection_string, unique_name("ledger"), timeout_s=15.0)
    ledger = DeploymentQuotaLedger(
        store, instance="a", now=clock.now, config=LedgerConfig(timeout_s=30.0)
    )
    quota = ledger.attach(KEY, tpm=600_000, rpm=600, minute_s=60.0)  # 100 requests a window
    for _ in range(10):
        assert await quota.top_up(clock.now(), 10, INTERACTIVE)
        assert not quota.needs_lease(clock.now(), 10, INTERACTIVE)
        quota.charge(clock.now(), 10, INTERACTIVE)
        clock.advance(0.1)
    row = await _read(azurite, store)
    later = {w: n for w, n in row.request_counts.items() if w > row.request_window}
    assert len(later) == 5 and all(n > 0 for n in later.values())
    await ledger.aclose()  # closes the store too
    row = await _read(azurite, store)
    assert row.requests == 10 and row.tokens == 100  # what was spent stays counted
    assert row.request_counts == {row.request_window: 10}  # every later window given back


async def _read(azurite, closed: TableLedgerStore) -> LedgerRow:
    store = TableLedgerStore(azurite.connection_string, closed.target.table, timeout_s=15.0)
    try:
        row, _ = await store.read(KEY)
    finally:
        await store.aclose()
    assert row is not None
    return row
