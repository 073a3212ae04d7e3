"""The cancel transition: which states may end ``cancelled``, exactly one terminal state when a
cancel races a finish (on ``InMemoryJobStore``, which passes the table store's contract
suite), the reply it sends, and the HTTP
mapping of ``POST /api/v1/jobs/{id}/cancel``."""

from __future__ import annotations

import asyncio
import json
from types import SimpleNamespace

import pytest
from starlette.requests import Request

from shared.api import cancel_job as cancel_endpoint
from shared.jobs import InMemoryJobStore, JobMessage, JobNotCancellable, JobServices, Terminal
from shared.jobs._cancel import cancel_job
from shared.jobs._conclude import _reply_of
from shared.jobs._contract import scoped_job_id
from shared.jobs._records import CANCELLABLE, TERMINAL, TRANSITIONS, JobRecord

CHAT = {"model": "gpt-4o", "messages": [{"role": "user", "content": "hello"}], "max_tokens": 8}


def test_the_state_machine_has_cancelled_as_a_terminal_state_reachable_only_while_waiting():
    assert "cancelled" in TERMINAL and "cancelled" not in TRANSITIONS  # never left again
    assert {"queued", "parked", "batched"} == CANCELLABLE
    assert set(TRANSITIONS) >= CANCELLABLE  # only non-terminal states
    assert "running" not in CANCELLABLE
    assert JobRecord(job_id="j", status="cancelled").terminal
    assert Terminal.cancelled("me").error["code"] == "job_cancelled"


def test_not_cancellable_has_a_stable_code_per_reason():
    assert JobNotCancellable(JobRecord(job_id="j", status="running")).code == "job_not_cancellable"
    for status in ("succeeded", "failed"):
        refused = JobNotCancellable(JobRecord(job_id="j", status=status))
        assert refused.code == "job_already_finished"


def test_the_reply_of_a_cancelled_job_says_cancelled_with_the_error():
    svc = SimpleNamespace(settings=SimpleNamespace(status_route="/api/v1/jobs"))
    record = JobRecord(job_id="j", status="cancelled", error=Terminal.cancelled("me").error)
    reply = asyncio.run(_reply_of(svc, record))  # type: ignore[arg-type]
    assert reply.status == "cancelled" and reply.error["code"] == "job_cancelled"
    assert reply.result is None


@pytest.fixture
def services():
    def make():
        store = InMemoryJobStore()  # the table store's twin: tests/functional/jobs/test_store.py
        return JobServices(settings=None, gateway=None, store=store, bus=None, parking=None)  # type: ignore[arg-type]

    return make


async def _job(svc: JobServices, status: str) -> str:
    job = JobMessage(request=CHAT)
    record, _ = await svc.store.ensure(job)
    if status != "queued":
        step = await svc.store.advance(job.job_id, status, current=record)
        assert step.moved
    return job.job_id


@pytest.mark.parametrize("status", ["queued", "batched"])
async def test_a_waiting_job_is_cancelled_once_and_a_later_finish_loses(services, status):
    svc = services()
    job_id = await _job(svc, status)
    record = await cancel_job(svc, job_id, by="caller-a")
    assert record.status == "cancelled" and record.error["details"] == {"cancelled_by": "caller-a"}
    late = await svc.store.finish(job_id, Terminal.success({"x": 1}), owner="batch:b1")
    assert not late.won and late.record.status == "cancelled"  # the batch line is dropped
    again = await cancel_job(svc, job_id, by="caller-a")
    assert again.status == "cancelled"
    assert await svc.store.terminal_writes(job_id) == 1


async def test_a_parked_job_is_cancellable(services):
    svc = services()
    job_id = await _job(svc, "running")
    await svc.store.advance(job_id, "parked")
    assert (await cancel_job(svc, job_id, by=None)).status == "cancelled"


async def test_a_running_or_finished_job_is_not_cancelled(services):
    svc = services()
    running = await _job(svc, "running")
    with pytest.raises(JobNotCancellable) as refused:
        await cancel_job(svc, running, by=None)
    assert refused.value.code == "job_not_cancellable"
    assert (await svc.store.get(running)).status == "running"
    await svc.store.finish(running, Terminal.success({"x": 1}), owner="w")
    with pytest.raises(JobNotCancellable) as done:
        await cancel_job(svc, running, by=None)
    assert done.value.code == "job_already_finished"
    assert await cancel_job(svc, "unknown", by=None) is None


async def test_a_cancel_racing_a_finish_leaves_exactly_one_terminal_state(services):
    svc = services()
    for _ in range(5):
        job_id = await _job(svc, "batched")
        results = await asyncio.gather(
            cancel_job(svc, job_id, by=None),
            svc.store.finish(job_id, Terminal.success({"x": 1}), owner="batch:b1"),
            return_exceptions=True,
        )
        stored = await svc.store.get(job_id)
        assert stored.status in ("cancelled", "succeeded")
        assert await svc.store.terminal_writes(job_id) == 1
        if stored.status == "succeeded":  # the line won: the cancel says so
            assert isinstance(results[0], JobNotCancellable)
            assert results[0].code == "job_already_finished"
        else:
            assert not results[1].won


class _Backlog:
    def __init__(self, answer):
        self.answer = answer
        self.settings = SimpleNamespace(storage_unavailable_retry_s=10)

        self.asked: list[tuple[str, str | None]] = []

    async def cancel(self, job_id, *, by=None, owner):
        self.asked.append((job_id, owner))
        if isinstance(self.answer, Exception):
            raise self.answer
        return self.answer


def _post_cancel(backlog):
    async def receive():
        return {"type": "http.request", "body": b"", "more_body": False}

    scope = {
        "type": "http",
        "method": "POST",
        "path": "/api/v1/jobs/job-1/cancel",
        "headers": [],
        "query_string": b"",
        "path_params": {"job_id": "job-1"},
    }
    services = SimpleNamespace(settings=lambda: None, backlog=lambda: backlog)
    return asyncio.run(cancel_endpoint(Request(scope, receive), services))


def test_the_endpoint_maps_each_answer():
    ok = _post_cancel(_Backlog({"id": "job-1", "status": "cancelled"}))
    assert ok.status_code == 200 and json.loads(ok.body)["status"] == "cancelled"
    unknown = _Backlog(None)
    missing = _post_cancel(unknown)
    assert missing.status_code == 404
    assert json.loads(missing.body)["error"]["code"] == "job_not_found"
    # the caller's own namespace first, then the id as given; always as its owner
    own = scoped_job_id("anonymous", "job-1")
    assert unknown.asked == [(own, "anonymous"), ("job-1", "anonymous")]
    running = _post_cancel(_Backlog(JobNotCancellable(JobRecord(job_id="job-1", status="running"))))
    assert running.status_code == 409
    assert json.loads(running.body)["error"]["code"] == "job_not_cancellable"
