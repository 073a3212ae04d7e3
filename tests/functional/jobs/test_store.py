"""The job store's contract, run against both stores: the Table Storage store on Azurite and the
in-memory twin (``InMemoryJobStore``) pass the same suite, so unit tests of the backlog's logic
on the twin see the same decisions. One terminal write, the reply lease, conditional writes on a
stale ETag, big results, conflicting payloads."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import pytest
import pytest_asyncio
from azure.data.tables.aio import TableClient
from azure.storage.blob.aio import ContainerClient

from shared.jobs import (
    InMemoryJobStore,
    JobIdConflict,
    JobMessage,
    JobStore,
    PayloadStore,
    TableJobStore,
    Terminal,
)


@dataclass
class Backend:
    """One store under test, with what the suite reads around it."""

    store: Any  # JobStore, plus terminal_writes
    blob_names: Callable[[], Awaitable[list[str]]]
    now: list[float]


@pytest.fixture(params=["table", "memory"])
def kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest_asyncio.fixture
async def make(kind, request, unique_name) -> AsyncIterator[Callable[..., Backend]]:
    """``make(**options)``: a fresh store of this run's kind; its time is ``Backend.now[0]``."""
    closers: list[Callable[[], Awaitable[None]]] = []

    def build(**options: Any) -> Backend:
        now = [1000.0]
        options.setdefault("reply_lease_s", 30)
        if kind == "memory":
            memory = InMemoryJobStore(clock=lambda: now[0], **options)

            async def memory_blobs() -> list[str]:
                return sorted(memory.blobs)

            return Backend(memory, memory_blobs, now)
        azurite = request.getfixturevalue("azurite")
        table = TableClient.from_connection_string(
            azurite.connection_string, table_name=unique_name("jobs")
        )
        container = ContainerClient.from_connection_string(
            azurite.connection_string, container_name=unique_name("results")
        )
        closers.extend([table.close, container.close])

        async def table_blobs() -> list[str]:
            return sorted([b.name async for b in container.list_blobs()])

        store = TableJobStore(table, PayloadStore(container), clock=lambda: now[0], **options)
        return Backend(store, table_blobs, now)

    yield build
    for close in closers:
        await close()


@pytest.fixture
def store(make) -> JobStore:
    return make().store


def job(**fields) -> JobMessage:
    return JobMessage(
        request={"model": "gpt-4o", "messages": [{"role": "user", "content": "x"}]},
        reply_to="replies",
        **fields,
    )


async def test_concurrent_finishers_produce_exactly_one_terminal_state(store):
    j = job()
    record, created = await store.ensure(j)
    assert created and record.status == "queued"
    assert (await store.ensure(j))[1] is False
    outcomes = [
        Terminal.success({"n": i}) if i % 2 else Terminal.failure("x", f"fail {i}")
        for i in range(12)
    ]
    results = await asyncio.gather(
        *(store.finish(j.job_id, o, owner=f"d{i}", job=j) for i, o in enumerate(outcomes))
    )
    winners = [r for r in results if r.won]
    assert len(winners) == 1
    stored = await store.get(j.job_id)
    assert all(r.record.status == stored.status for r in results)
    assert stored.reply_state == "pending" and stored.reply_owner == winners[0].record.reply_owner
    # advance never touches a terminal job
    after = await store.advance(j.job_id, "running", deliveries=("+", 1))
    assert not after.moved
    assert after.record.status == stored.status and after.record.deliveries == stored.deliveries
    # one audit row per winning terminal write, written with it in one transaction
    assert await store.terminal_writes(j.job_id) == 1
    # the winner holds the lease with the ETag its transaction returned
    assert winners[0].record.etag == stored.etag
    assert await store.mark_replied(winners[0].record) is True


async def test_reply_lease_belongs_to_the_winner_until_it_expires(store):
    j = job()
    await store.ensure(j)
    won = await store.finish(j.job_id, Terminal.success({"ok": True}), owner="sb:m:1", job=j)
    assert won.won
    assert await store.claim_reply(j.job_id, owner="sb:other:2") is None  # a duplicate stays quiet
    lease = await store.claim_reply(j.job_id, owner="sb:m:1")  # the same message, redelivered
    assert lease is not None
    assert await store.mark_replied(lease) is True
    assert (await store.get(j.job_id)).reply_state == "sent"
    assert await store.claim_reply(j.job_id, owner="sb:m:1") is None


async def test_an_expired_lease_moves_on_and_the_old_holder_cannot_mark_over_it(make):
    backend = make(reply_lease_s=30)
    store, now = backend.store, backend.now
    j = job()
    await store.ensure(j)
    first = (await store.finish(j.job_id, Terminal.success({}), owner="sb:a:1", job=j)).record
    assert await store.claim_reply(j.job_id, owner="sb:b:2") is None  # live lease: not taken
    now[0] += 31  # the holder stalled past its lease
    second = await store.claim_reply(j.job_id, owner="sb:b:2")
    assert second is not None and second.reply_owner == "sb:b:2"
    assert await store.mark_replied(first) is False  # the stale holder never writes
    assert (await store.get(j.job_id)).reply_state == "pending"
    assert await store.mark_replied(second) is True
    assert (await store.get(j.job_id)).reply_state == "sent"


async def test_transitions_follow_the_state_machine_only(store):
    j = job()
    record, _ = await store.ensure(j)
    assert not (await store.advance(j.job_id, "parked")).moved  # queued -> parked: no
    running = await store.advance(j.job_id, "running", runner="sb:m:1")
    assert running.moved and running.record.runner == "sb:m:1"
    # a stale ETag is re-read and checked again, never written blindly
    parked = await store.advance(j.job_id, "parked", current=record, park_id="p1", runner="")
    assert parked.moved and parked.record.status == "parked" and parked.record.park_id == "p1"
    assert not (await store.advance(j.job_id, "running")).moved  # parked -> running: no
    guarded = await store.advance(j.job_id, "queued", allow=lambda r: r.park_id == "p2")
    assert not guarded.moved and guarded.record.status == "parked"
    assert (await store.advance(j.job_id, "queued", allow=lambda r: r.park_id == "p1")).moved


async def test_finish_without_a_record_creates_it_terminal(store):
    result = await store.finish(
        "job-orphan", Terminal.failure("invalid_message", "bad"), owner="o", reply_to="replies"
    )
    assert result.won and result.record.status == "failed" and result.record.reply_to == "replies"
    assert (await store.get("job-orphan")).error["code"] == "invalid_message"


async def test_ensure_and_finish_write_the_same_job_columns(store):
    """A row created by ``ensure`` (queued) and one created by ``finish`` (a job first seen terminal,
    e.g. dead-lettered) take the job's columns from the same helper."""
    fields = {"caller": "svc-a", "priority": 8, "deadline": "2031-01-01T00:00:00Z"}
    queued, terminal = job(**fields), job(**fields)
    await store.ensure(queued)
    await store.finish(
        terminal.job_id, Terminal.failure("dead_lettered", "x"), owner="o", job=terminal
    )
    a, b = await store.get(queued.job_id), await store.get(terminal.job_id)
    columns = ("kind", "model", "caller", "reply_to", "priority", "deadline")
    assert [getattr(a, c) for c in columns] == [getattr(b, c) for c in columns]
    assert [getattr(a, c) for c in columns] == [
        "chat",
        "gpt-4o",
        "svc-a",
        "replies",
        8,
        "2031-01-01T00:00:00+00:00",
    ]


async def test_multi_megabyte_embeddings_result_spills_to_blob(make):
    backend = make()
    store = backend.store
    j = job()
    await store.ensure(j)
    result = {
        "object": "list",
        "data": [{"index": i, "embedding": [0.123456789] * 1536} for i in range(300)],
    }
    assert len(json.dumps(result)) > 4_000_000
    won = await store.finish(j.job_id, Terminal.success(result), owner="o", job=j)
    assert won.record.result_blob and won.record.inline_result is None
    loaded = await store.load_result(await store.get(j.job_id))
    assert loaded == result
    # a losing finisher's blob is deleted, the winner's kept
    lost = await store.finish(j.job_id, Terminal.success(result), owner="o2", job=j)
    assert not lost.won
    assert await backend.blob_names() == [won.record.result_blob]


async def test_ensure_refuses_the_same_job_id_with_another_payload(store):
    first = job(job_id="job-key")
    record, created = await store.ensure(first)
    assert created and record.payload_hash == first.payload_hash()
    again, created = await store.ensure(
        job(job_id="job-key", caller="other", submitted_at=first.submitted_at)
    )
    assert not created and again == record  # the same work: the same job
    other = JobMessage(
        job_id="job-key",
        request={"model": "gpt-4o", "messages": [{"role": "user", "content": "y"}]},
        reply_to="replies",
    )
    with pytest.raises(JobIdConflict) as info:
        await store.ensure(other)
    assert (
        info.value.existing_hash == first.payload_hash()
        and info.value.submitted_hash == other.payload_hash()
    )
    assert await store.record_conflict(other, info.value.error(), owner="sb:a") is True
    assert (
        await store.record_conflict(other, info.value.error(), owner="sb:a") is False
    )  # redelivery
    after = await store.get("job-key")
    assert after == record and after.etag == record.etag


async def test_rows_without_a_payload_hash_match_any_payload(store):
    """Rows first written terminal for an unparsable message (or before hashes were stored)."""
    await store.finish(
        "job-nohash", Terminal.failure("invalid_message", "bad"), owner="o", reply_to="replies"
    )
    record, created = await store.ensure(job(job_id="job-nohash"))
    assert not created and record.status == "failed" and record.payload_hash is None


async def test_finish_on_a_stale_copy_decides_on_the_row_as_it_is(store):
    j = job()
    queued, _ = await store.ensure(j)
    running = (await store.advance(j.job_id, "running", current=queued, runner="sb:m:1")).record
    # a guard that the stale copy fails but the row passes: re-read, checked again, written
    won = await store.finish(
        j.job_id,
        Terminal.success({"ok": True}),
        owner="sb:m:1",
        current=queued,
        allow=lambda r: r.runner == "sb:m:1",
    )
    assert won.won and won.record.status == "succeeded"
    assert won.record.etag == (await store.get(j.job_id)).etag != running.etag
    assert await store.terminal_writes(j.job_id) == 1


async def test_finish_refused_by_its_guard_writes_nothing(store):
    j = job()
    queued, _ = await store.ensure(j)
    refused = await store.finish(
        j.job_id, Terminal.cancelled("ops"), owner="o", allow=lambda r: r.status == "parked"
    )
    assert not refused.won and refused.record == queued
    assert (await store.get(j.job_id)).etag == queued.etag
    assert await store.terminal_writes(j.job_id) == 0


async def test_discard_removes_an_unchanged_row_only(store):
    first, second = job(), job()
    created, _ = await store.ensure(first)
    assert await store.discard(created) is True
    assert await store.get(first.job_id) is None
    assert (await store.ensure(first))[1] is True  # the id is free again
    kept, _ = await store.ensure(second)
    await store.advance(second.job_id, "running", runner="sb:m:1")
    assert await store.discard(kept) is False  # changed since: a delivery took it
    assert (await store.get(second.job_id)).status == "running"


async def test_a_conflict_during_advance_is_retried_on_the_fresh_row(store):
    j = job()
    queued, _ = await store.ensure(j)
    first = await store.advance(j.job_id, "running", current=queued, deliveries=("+", 1))
    # a second delivery holding the old copy: its increment is computed on the row as it is
    second = await store.advance(j.job_id, "running", current=queued, deliveries=("+", 1))
    assert first.moved and second.moved
    assert (await store.get(j.job_id)).deliveries == 2


async def test_both_stores_end_with_the_same_records(make, kind):
    """One script of calls on the in-memory store and on the table store: the same records
    (timestamps and ETags aside), the same flags, the same results."""
    if kind != "table":
        pytest.skip("compares both stores: runs once, with the table store's parameter")
    memory = InMemoryJobStore(clock=lambda: 1000.0, reply_lease_s=30, inline_result_chars=50)

    async def script(store: Any) -> list[Any]:
        seen: list[Any] = []
        a, b, c = (job(job_id=f"job-{n}", caller="key:x", priority=3) for n in "abc")
        for j in (a, b, c):
            seen.append((await store.ensure(j))[1])
        seen.append((await store.ensure(a))[1])
        seen.append((await store.advance(a.job_id, "parked")).moved)
        seen.append((await store.advance(a.job_id, "running", runner="r1")).moved)
        seen.append((await store.advance(a.job_id, "parked", park_id="p", runner="")).moved)
        seen.append(
            (await store.advance(a.job_id, "queued", allow=lambda r: r.park_id == "p")).moved
        )
        big = {"text": "y" * 200}
        seen.append((await store.finish(b.job_id, Terminal.success(big), owner="o", job=b)).won)
        seen.append((await store.finish(b.job_id, Terminal.success({}), owner="o2", job=b)).won)
        seen.append(await store.load_result(await store.get(b.job_id)))
        seen.append(
            (await store.finish(c.job_id, Terminal.failure("x", "no", {"d": 1}), owner="o")).won
        )
        lease = await store.claim_reply(c.job_id, owner="o")
        seen.append(await store.mark_replied(lease))
        seen.append(await store.claim_reply(c.job_id, owner="o"))
        seen.append(await store.terminal_writes(b.job_id))
        for j in (a, b, c):
            record = await store.get(j.job_id)
            seen.append(
                {
                    k: getattr(record, k)
                    for k in record.__dataclass_fields__
                    if k not in ("etag", "created_at", "updated_at", "terminal_at", "result_blob")
                }
            )
            seen.append(bool(record.result_blob))
        return seen

    table = make(inline_result_chars=50).store
    assert await script(memory) == await script(table)
