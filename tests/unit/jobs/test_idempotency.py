"""Job ids are idempotency keys: the payload hash that decides "same job", and the 409 it yields."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta, timezone
from types import SimpleNamespace

import pytest
from starlette.requests import Request

from shared.api import submit_job
from shared.jobs import JobIdConflict, JobMessage, parse_job_message, payload_hash
from shared.jobs._contract import scoped_job_id

CHAT = {"model": "gpt-4o", "messages": [{"role": "user", "content": "hello"}], "max_tokens": 16}


def make(**fields) -> JobMessage:
    fields.setdefault("request", CHAT)
    return JobMessage(job_id="job-1", reply_to="replies", **fields)


def test_hash_ignores_what_does_not_define_the_work():
    base = make()
    assert base.payload_hash().startswith("sha256:") and len(base.payload_hash()) == 7 + 64
    assert payload_hash(base) == base.payload_hash()
    same = [
        parse_job_message(base.to_body()),  # the worker's view of the enqueued message
        make(
            caller="someone-else", submitted_at=datetime(2001, 1, 1, tzinfo=UTC)
        ),  # set by the gateway
        make(request=dict(reversed(list(CHAT.items())))),  # key order
        make(request={**CHAT, "temperature": None}),  # null == absent
        make(priority=5, kind="chat", model="gpt-4o"),  # explicit defaults / inferred values
    ]
    for other in same:
        assert other.payload_hash() == base.payload_hash(), other
    noon_utc = make(deadline=datetime(2030, 1, 1, 12, tzinfo=UTC))
    noon_cet = make(deadline=datetime(2030, 1, 1, 13, tzinfo=timezone(timedelta(hours=1))))
    assert noon_utc.payload_hash() == noon_cet.payload_hash()


@pytest.mark.parametrize(
    "change",
    [
        {"request": {**CHAT, "max_tokens": 17}},
        {"request": {**CHAT, "messages": [{"role": "user", "content": "hello!"}]}},
        {"request": {**CHAT, "seed": 3}},  # extra OpenAI fields pass through, so they count
        {"request": {**CHAT, "model": "gpt-4o-mini"}},
        {"request": {"model": "gpt-4o", "input": ["hello"]}},
        {"priority": 6},
        {"deadline": datetime(2030, 1, 1, tzinfo=UTC)},
        {"reply_to": "other-replies"},
    ],
)
def test_hash_changes_with_the_work(change):
    fields = {"request": CHAT, "reply_to": "replies", **change}
    assert JobMessage(job_id="job-1", **fields).payload_hash() != make().payload_hash()


class _Backlog:
    settings = SimpleNamespace(status_route="/api/v1/jobs")

    def __init__(self, error: Exception | None) -> None:
        self.error = error

    async def submit(self, job):
        if self.error:
            raise self.error
        return SimpleNamespace(
            record=SimpleNamespace(status="queued"), created=False, enqueued=True
        )


def _post(body: dict, backlog: _Backlog):
    raw = json.dumps(body).encode()
    sent = [{"type": "http.request", "body": raw, "more_body": False}]

    async def receive():
        return sent.pop(0) if sent else {"type": "http.disconnect"}

    scope = {
        "type": "http",
        "method": "POST",
        "path": "/api/v1/jobs",
        "headers": [(b"content-type", b"application/json")],
        "query_string": b"",
    }
    services = SimpleNamespace(
        settings=lambda: SimpleNamespace(max_body_bytes=1 << 20, aliases={"gpt-4o": object()}),
        backlog=lambda: backlog,
    )
    return asyncio.run(submit_job(Request(scope, receive), services))


def test_conflict_is_409_in_openai_shape_naming_the_job():
    conflict = JobIdConflict("job-1", existing_hash="sha256:aa", submitted_hash="sha256:bb")
    response = _post({"job_id": "job-1", "request": CHAT}, _Backlog(conflict))
    assert response.status_code == 409
    error = json.loads(response.body)["error"]
    assert (
        error["code"] == "job_id_conflict"
        and error["param"] == "job_id"
        and error["type"] == "invalid_request_error"
    )
    assert "'job-1'" in error["message"] and error["correlation_id"]
    assert "sha256" not in error["message"]


def test_same_payload_resubmit_is_202_like_the_first():
    response = _post({"job_id": "job-1", "request": CHAT}, _Backlog(None))
    assert response.status_code == 202
    own = scoped_job_id("anonymous", "job-1")  # the caller's namespace (no key: anonymous)
    assert json.loads(response.body) == {
        "id": own,
        "object": "job",
        "status": "queued",
        "status_url": f"/api/v1/jobs/{own}",
    }
    again = _post({"job_id": own, "request": CHAT}, _Backlog(None))  # the returned id, re-posted
    assert json.loads(again.body)["id"] == own


def test_a_job_id_in_another_callers_namespace_is_refused():
    other = scoped_job_id("key:someone-else", "job-1")
    response = _post({"job_id": other, "request": CHAT}, _Backlog(None))
    assert response.status_code == 400
    assert json.loads(response.body)["error"]["param"] == "job_id"
