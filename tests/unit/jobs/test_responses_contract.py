"""The job contract's Responses form (``kind: "responses"``): explicit, validated like the other
kinds, ``stream``/``background`` refused with a reason naming the field; over HTTP a 400 in
OpenAI's error shape."""

from __future__ import annotations

import asyncio
import json
from types import SimpleNamespace

import pytest
from starlette.requests import Request

from shared.api import submit_job
from shared.jobs import InvalidJobMessage, JobMessage, parse_job_message
from shared.responses import ResponsesRequest

RESPONSES = {"model": "gpt-4o", "input": "hi", "store": False}


def _body(**request) -> bytes:
    return json.dumps(
        {
            "schema_version": 1,
            "job_id": "job-r1",
            "kind": "responses",
            "request": {**RESPONSES, **request},
        }
    ).encode()


def test_a_responses_job_round_trips_and_hashes_its_kind():
    job = parse_job_message(_body())
    assert job.kind == "responses" and isinstance(job.request, ResponsesRequest)
    assert parse_job_message(job.to_body()) == job
    as_embeddings = JobMessage(job_id="job-r1", request={"model": "gpt-4o", "input": "hi"})
    assert as_embeddings.kind == "embeddings"  # the kind is never guessed as responses
    assert as_embeddings.payload_hash() != job.payload_hash()


@pytest.mark.parametrize("field", ["stream", "background"])
def test_stream_and_background_are_refused_naming_the_field(field):
    with pytest.raises(InvalidJobMessage) as caught:
        parse_job_message(_body(**{field: True}))
    assert f"request.{field}" in caught.value.message and caught.value.job_id == "job-r1"
    parse_job_message(_body(**{field: False}))  # false is what a job does anyway


def test_previous_response_id_and_input_are_checked():
    for bad in ({"previous_response_id": 5}, {"previous_response_id": ""}, {"input": None}):
        with pytest.raises(InvalidJobMessage):
            parse_job_message(_body(**bad))


def test_the_cost_counts_input_instructions_and_the_output_cap():
    request = ResponsesRequest(
        model="gpt-4o", input="x" * 400, instructions="y" * 40, max_output_tokens=50
    )
    # the input as JSON ('"xxx..."': 402 characters) and the instructions, 4 characters a token
    assert request.cost(default_max_tokens=4096) == 111 + 50
    assert ResponsesRequest(model="gpt-4o", input="hi").cost(default_max_tokens=7) == 1 + 7


def _post(body: dict) -> tuple[int, dict]:
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
    submitted = []

    class Backlog:
        settings = SimpleNamespace(status_route="/api/v1/jobs", reply_allowed=lambda *_: True)

        async def submit(self, job):
            submitted.append(job)
            return SimpleNamespace(record=SimpleNamespace(status="queued"), created=True)

    services = SimpleNamespace(
        settings=lambda: SimpleNamespace(max_body_bytes=1 << 20, aliases={"gpt-4o": object()}),
        backlog=lambda: Backlog(),
    )
    response = asyncio.run(submit_job(Request(scope, receive), services))
    return response.status_code, json.loads(response.body)


def test_http_submit_takes_a_responses_job_and_refuses_background_with_400():
    status, body = _post({"kind": "responses", "request": RESPONSES})
    assert status == 202 and body["object"] == "job"
    status, body = _post({"kind": "responses", "request": {**RESPONSES, "background": True}})
    assert status == 400
    assert "request.background" in body["error"]["message"]
