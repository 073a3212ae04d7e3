"""The batch lane's pure parts: JSONL lines, line outcomes, the token estimate and the lane choice."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from aoai_sim import _text
from shared.batchlane import BatchLane, batch_targets
from shared.batchlane._lines import enqueued_tokens, jsonl_lines, outcome_of, request_line
from shared.jobs import JobMessage
from shared.settings import GatewaySettings, load_backlog_settings

REGIONS = [
    {
        "name": "eastus2",
        "endpoint": "http://127.0.0.1:1",
        "auth": "api_key",
        "api_key": "k",
        "priority": 2,
        "models": {"gpt-4o": {"deployment": "gpt-4o-prod", "tpm": 1000}},
        "batch": {"gpt-4o": {"deployment": "batch-east", "enqueued_tokens": 1000}},
    },
    {
        "name": "sweden",
        "endpoint": "http://127.0.0.1:2",
        "auth": "api_key",
        "api_key": "k",
        "priority": 1,
        "models": {"gpt-4o": {"deployment": "gpt-4o-swe", "tpm": 1000}},
        "batch": {"gpt-4o": {"deployment": "batch-swe", "enqueued_tokens": 2000}},
    },
]
ENV = {
    "ServiceBusConnection": "Endpoint=sb://127.0.0.1/;SharedAccessKeyName=a;SharedAccessKey=b",
    "AzureWebJobsStorage": "UseDevelopmentStorage=true",
    "BACKLOG_BATCH_WINDOW_S": "100",
    "BACKLOG_BATCH_MARGIN_S": "10",
}


def job(**fields) -> JobMessage:
    request = fields.pop("request", None) or {
        "model": "gpt-4o",
        "messages": [{"role": "system", "content": "be brief"}, {"role": "user", "content": "hi!"}],
        "max_tokens": 7,
    }
    return JobMessage(request=request, **fields)


def lane() -> BatchLane:
    targets = batch_targets(GatewaySettings.model_validate({"regions": REGIONS}))
    return BatchLane(load_backlog_settings(ENV), targets, None, None, lambda region: None)


def test_targets_take_the_first_region_by_priority():
    target = batch_targets(GatewaySettings.model_validate({"regions": REGIONS}))["gpt-4o"]
    assert (target.region.name, target.deployment, target.enqueued_tokens) == (
        "sweden",
        "batch-swe",
        2000,
    )


def test_request_line_names_the_job_and_the_batch_deployment():
    j = job(lane="batch")
    line = json.loads(request_line(j, "batch-swe"))
    assert line["custom_id"] == j.job_id
    assert (line["method"], line["url"]) == ("POST", "/chat/completions")
    assert line["body"]["model"] == "batch-swe" and line["body"]["max_tokens"] == 7
    assert "stream" not in line["body"]


def test_token_estimate_matches_what_the_simulator_enqueues():
    j = job()
    messages = [m.model_dump(exclude_none=True) for m in j.request.messages]
    assert enqueued_tokens(j.request) == _text.prompt_tokens(messages)


def test_lane_choice():
    chooser, now = lane(), datetime.now(UTC)
    ts = now.timestamp()
    assert not chooser.wants(job(), ts)  # standard by default
    assert chooser.wants(job(lane="batch"), ts)
    assert chooser.wants(job(lane="auto"), ts)  # no deadline
    assert chooser.wants(job(lane="auto", deadline=now + timedelta(seconds=111)), ts)
    assert not chooser.wants(job(lane="auto", deadline=now + timedelta(seconds=109)), ts)
    embeddings = job(request={"model": "gpt-4o", "input": ["x"]}, kind="embeddings", lane="batch")
    assert not chooser.wants(embeddings, ts)  # chat only
    # Responses jobs stay on the standard lane: Azure's Batch API documents no /v1/responses lines
    for chosen in ("batch", "auto"):
        responses = job(request={"model": "gpt-4o", "input": "x"}, kind="responses", lane=chosen)
        assert not chooser.wants(responses, ts)
    other = job(request={"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "x"}]})
    assert not chooser.wants(other.model_copy(update={"lane": "batch"}), ts)  # no batch deployment


def _line(status, body=None, error=None):
    response = None if status is None else {"status_code": status, "body": body or {}}
    return {"custom_id": "job-1", "response": response, "error": error}


def test_line_outcomes():
    meta = {"region": "sweden", "deployment": "batch-swe"}
    ok = {
        "choices": [{"finish_reason": "stop", "message": {"content": "hi"}}],
        "usage": {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5},
    }
    success = outcome_of(_line(200, ok), **meta)
    assert success.terminal.status == "succeeded" and success.terminal.usage["total_tokens"] == 5
    assert success.terminal.deployment == "batch-swe"
    cut = {**ok, "choices": [{"finish_reason": "content_filter"}]}
    assert outcome_of(_line(200, cut), **meta).terminal.error["code"] == "content_filter"
    refused = {"error": {"code": "content_filter", "message": "no", "innererror": {}}}
    assert outcome_of(_line(400, refused), **meta).terminal.error["code"] == "content_filter"
    assert outcome_of(_line(500, {"error": {"code": "server_error"}}), **meta).rerun
    assert outcome_of(_line(429), **meta).rerun
    assert outcome_of(_line(None, error={"code": "batch_expired"}), **meta).rerun
    assert outcome_of(_line(None, error={"code": "batch_cancelled"}), **meta).rerun
    assert outcome_of({"custom_id": None, "error": {"code": "invalid_json"}}, **meta) is None


def test_jsonl_lines_split_on_newline_only():
    # pydantic's JSON (and json.dumps(ensure_ascii=False)) leaves these raw inside strings
    separators = "\u2028\u2029\u0085\x1c\x1d\x1e\x0b\x0c"
    jobs = [
        job(request={"model": "gpt-4o", "messages": [{"role": "user", "content": c}]})
        for c in ("a" + separators + "b", "plain")
    ]
    data = b"".join(j.to_body() + b"\n" for j in jobs) + b"\r\n\n"
    lines = jsonl_lines(data)
    assert [JobMessage.model_validate_json(x).job_id for x in lines] == [j.job_id for j in jobs]
    assert (
        JobMessage.model_validate_json(lines[0]).request.messages[0].content
        == "a" + separators + "b"
    )
    assert jsonl_lines(b"") == [] and jsonl_lines("x\r\ny") == ["x\r", "y"]


def test_an_output_line_that_cannot_be_read_fails_its_own_job_only():
    from shared.batchlane._lane import _line_outcome
    from shared.batchlane._store import BatchRow

    row = BatchRow("lb-1", "gpt-4o", "sweden", "batch-swe", "applying", 2, 10, 0.0, "m", "i")
    cut = '{"id":"batch_req_1","custom_id":"job-\\u00e9 1","response":{"status_code":'
    outcome = _line_outcome(cut, row)
    assert outcome is not None and outcome.job_id == "job-\u00e9 1" and not outcome.rerun
    assert outcome.terminal.status == "failed"
    assert outcome.terminal.error["code"] == "batch_line_malformed"
    assert outcome.terminal.error["details"]["reason"]
    assert outcome.terminal.deployment == "batch-swe"
    # valid JSON of the wrong shape: the same verdict for the job it names
    wrong = '{"custom_id":"job-2","response":["not", "an", "object"]}'
    assert _line_outcome(wrong, row).terminal.error["code"] == "batch_line_malformed"
    assert _line_outcome('["custom_id"]', row) is None  # names no job
    assert _line_outcome("<html>", row) is None
    good = json.dumps(_line(200, {"choices": [{"finish_reason": "stop"}]}))
    assert _line_outcome(good, row).terminal.status == "succeeded"


def test_a_batch_id_is_its_member_set():
    from shared.batchlane._lane import _batch_ref
    from shared.batchlane._store import PendingJob

    def pending(*ids: str) -> list[PendingJob]:
        return [PendingJob(i, "gpt-4o", "{}", 1, 1, 0.0) for i in ids]

    assert _batch_ref("gpt-4o", pending("a", "b")) == _batch_ref("gpt-4o", pending("b", "a"))
    assert _batch_ref("gpt-4o", pending("a", "b")) != _batch_ref("gpt-4o", pending("a", "b", "c"))
    assert _batch_ref("gpt-4o", pending("a")) != _batch_ref("gpt-4o-mini", pending("a"))
    assert _batch_ref("gpt-4o", pending("a")).startswith("lb-")
