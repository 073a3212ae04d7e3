"""The Batch API engine on a manual clock: phases, progress, JSONL validation, quota, cancel and faults."""

from __future__ import annotations

import json
from typing import Any

import pytest

from aoai_sim._batches import BatchEngine, BatchError
from aoai_sim._files import FileStore, MultipartError, parse_multipart
from aoai_sim.config import BatchConfig, ContentFilterConfig, DeploymentConfig

BATCH_DEP = DeploymentConfig(
    "gpt-4o-batch", "gpt-4o", "chat", 450000, sku="global_batch", enqueued_tokens=400
)
STANDARD_DEP = DeploymentConfig("gpt-4o-prod", "gpt-4o", "chat", 450000)
CLOCK = BatchConfig(
    validating_s=10, in_progress_s=100, finalizing_s=10, cancelling_s=5, window_s=1000
)
FILTER = ContentFilterConfig(prompt_triggers=(("sim_filter_prompt", "violence"),))


class Clock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def line(
    custom_id: str,
    text: str = "hello there",
    model: str = "gpt-4o-batch",
    max_tokens: int = 5,
    **extra: Any,
) -> str:
    body = {
        "model": model,
        "messages": [{"role": "user", "content": text}],
        "max_tokens": max_tokens,
    }
    return json.dumps(
        {
            "custom_id": custom_id,
            "method": "POST",
            "url": "/chat/completions",
            "body": body,
            **extra,
        }
    )


@pytest.fixture
def setup() -> tuple[BatchEngine, FileStore, Clock]:
    files = FileStore()
    clock = Clock()
    engine = BatchEngine((STANDARD_DEP, BATCH_DEP), FILTER, CLOCK, files, clock=clock)
    return engine, files, clock


def upload(files: FileStore, lines: list[str]) -> str:
    return files.add("in.jsonl", "batch", ("\n".join(lines) + "\n").encode()).id


def read(files: FileStore, file_id: str | None) -> list[dict[str, Any]]:
    assert file_id is not None
    stored = files.get(file_id)
    assert stored is not None and stored.purpose == "batch_output"
    return [json.loads(x) for x in stored.content.decode().splitlines()]


def test_phases_progress_and_results(setup):
    engine, files, clock = setup
    batch = engine.create(
        upload(files, [line(f"job-{i}") for i in range(10)]), "/chat/completions", "24h"
    )
    assert engine.describe(batch)["status"] == "validating"
    clock.t = 10 + 50  # half-way through in_progress
    obj = engine.describe(batch)
    assert obj["status"] == "in_progress"
    assert obj["request_counts"] == {"total": 10, "completed": 5, "failed": 0}
    assert obj["output_file_id"] is None
    clock.t = 115
    assert engine.describe(batch)["status"] == "finalizing"
    clock.t = 121
    obj = engine.describe(batch)
    assert obj["status"] == "completed" and obj["completed_at"] is not None
    assert obj["request_counts"] == {"total": 10, "completed": 10, "failed": 0}
    assert obj["error_file_id"] is None
    out = read(files, obj["output_file_id"])
    assert sorted(r["custom_id"] for r in out) == sorted(f"job-{i}" for i in range(10))
    first = out[0]["response"]
    assert first["status_code"] == 200
    assert first["body"]["object"] == "chat.completion"
    assert first["body"]["usage"]["completion_tokens"] <= 5
    # a second look writes no second pair of files
    assert engine.describe(batch)["output_file_id"] == obj["output_file_id"]


def test_bad_lines_go_to_the_error_file_and_content_filter_fails_its_line(setup):
    engine, files, clock = setup
    lines = [
        line("ok-1"),
        "{not json",
        json.dumps({"method": "POST", "url": "/chat/completions", "body": {}}),
        line("ok-1"),  # duplicate custom_id
        line("wrong-url", url="/embeddings"),
        line("other-model", model="gpt-4o-prod"),
        line("filtered", text="please SIM_FILTER_PROMPT"),
        line("bad-param", max_tokens=0),
    ]
    batch = engine.create(upload(files, lines), "/chat/completions", "24h")
    clock.t = 500
    obj = engine.describe(batch)
    assert obj["status"] == "completed"
    assert obj["request_counts"] == {"total": 8, "completed": 1, "failed": 7}
    errors = read(files, obj["error_file_id"])
    codes = {
        (e["custom_id"], (e["error"] or {}).get("code") or e["response"]["body"]["error"]["code"])
        for e in errors
    }
    assert codes == {
        (None, "invalid_json"),
        (None, "invalid_custom_id"),
        ("ok-1", "duplicate_custom_id"),
        ("wrong-url", "invalid_url"),
        ("other-model", "mismatched_model"),
        ("filtered", "content_filter"),
        ("bad-param", _bad_request_code()),
    }
    assert [r["custom_id"] for r in read(files, obj["output_file_id"])] == ["ok-1"]


def _bad_request_code() -> str:
    from aoai_sim._errors import bad_request

    return bad_request("x")[1]["error"]["code"]


def test_request_validation(setup):
    engine, files, _ = setup
    file_id = upload(files, [line("a")])
    with pytest.raises(BatchError) as exc:
        engine.create(file_id, "/embeddings", "24h")
    assert exc.value.status == 400 and exc.value.param == "endpoint"
    with pytest.raises(BatchError) as exc:
        engine.create(file_id, "/chat/completions", "48h")
    assert exc.value.param == "completion_window"
    with pytest.raises(BatchError) as exc:
        engine.create("file-missing", "/chat/completions", "24h")
    assert exc.value.status == 404


def test_standard_deployment_is_refused(setup):
    engine, files, clock = setup
    batch = engine.create(
        upload(files, [line("a", model="gpt-4o-prod")]), "/chat/completions", "24h"
    )
    clock.t = 11
    obj = engine.describe(batch)
    assert obj["status"] == "failed"
    assert obj["errors"]["data"][0]["code"] == "model_not_found"


def test_enqueued_token_quota(setup):
    engine, files, clock = setup
    text = "word " * 60
    first = engine.create(
        upload(files, [line(f"a{i}", text) for i in range(3)]), "/chat/completions", "24h"
    )
    used = engine.enqueued_tokens("gpt-4o-batch")
    assert used == first.tokens and 0 < used <= 400
    second = engine.create(
        upload(files, [line(f"b{i}", text) for i in range(3)]), "/chat/completions", "24h"
    )
    assert used + second.tokens > 400
    clock.t = 11
    refused = engine.describe(second)
    assert refused["status"] == "failed"
    assert refused["errors"]["data"][0]["code"] == "token_limit_exceeded"
    assert engine.enqueued_tokens("gpt-4o-batch") == used  # a refused batch holds no quota
    clock.t = 200
    assert engine.describe(first)["status"] == "completed"
    assert engine.enqueued_tokens("gpt-4o-batch") == 0
    third = engine.create(
        upload(files, [line(f"c{i}", text) for i in range(3)]), "/chat/completions", "24h"
    )
    clock.t = 400
    assert engine.describe(third)["status"] == "completed"


def test_cancel_keeps_finished_lines(setup):
    engine, files, clock = setup
    batch = engine.create(
        upload(files, [line(f"j{i}") for i in range(4)]), "/chat/completions", "24h"
    )
    clock.t = 10 + 50
    assert engine.describe(engine.cancel(batch.id))["status"] == "cancelling"
    clock.t = 66
    obj = engine.describe(batch)
    assert obj["status"] == "cancelled" and obj["cancelled_at"] is not None
    assert [r["custom_id"] for r in read(files, obj["output_file_id"])] == ["j0", "j1"]
    errors = read(files, obj["error_file_id"])
    assert {(e["custom_id"], e["error"]["code"]) for e in errors} == {
        ("j2", "batch_cancelled"),
        ("j3", "batch_cancelled"),
    }
    with pytest.raises(BatchError) as exc:
        engine.cancel(batch.id)
    assert exc.value.status == 409


def test_injected_failure(setup):
    engine, files, clock = setup
    engine.faults.add({"kind": "fail", "code": "internal_failure"})
    failed = engine.create(upload(files, [line("a")]), "/chat/completions", "24h")
    healthy = engine.create(upload(files, [line("b")]), "/chat/completions", "24h")
    clock.t = 500
    obj = engine.describe(failed)
    assert obj["status"] == "failed" and obj["output_file_id"] is None
    assert obj["errors"]["data"][0]["code"] == "internal_failure"
    assert engine.describe(healthy)["status"] == "completed"


def test_injected_expiry_keeps_the_finished_part(setup):
    engine, files, clock = setup
    engine.faults.add({"kind": "expire", "fraction": 0.5, "deployment": "gpt-4o-batch"})
    batch = engine.create(
        upload(files, [line(f"j{i}") for i in range(6)]), "/chat/completions", "24h"
    )
    clock.t = 999
    assert engine.describe(batch)["status"] == "in_progress"
    clock.t = 1000
    obj = engine.describe(batch)
    assert obj["status"] == "expired" and obj["expired_at"] is not None
    assert len(read(files, obj["output_file_id"])) == 3
    assert {e["error"]["code"] for e in read(files, obj["error_file_id"])} == {"batch_expired"}


def test_injected_partial_failure(setup):
    engine, files, clock = setup
    engine.faults.add({"kind": "partial", "fraction": 0.25})
    batch = engine.create(
        upload(files, [line(f"j{i}") for i in range(8)]), "/chat/completions", "24h"
    )
    clock.t = 500
    obj = engine.describe(batch)
    assert obj["request_counts"] == {"total": 8, "completed": 6, "failed": 2}
    errors = read(files, obj["error_file_id"])
    assert {e["response"]["status_code"] for e in errors} == {500}


def test_natural_expiry_when_the_window_is_too_short():
    files, clock = FileStore(), Clock()
    short = BatchConfig(validating_s=1, in_progress_s=100, finalizing_s=1, window_s=50)
    engine = BatchEngine((BATCH_DEP,), FILTER, short, files, clock=clock)
    batch = engine.create(
        upload(files, [line(f"j{i}") for i in range(4)]), "/chat/completions", "24h"
    )
    clock.t = 50
    obj = engine.describe(batch)
    assert obj["status"] == "expired"
    assert obj["request_counts"]["completed"] == 1


def test_multipart_parser():
    body = (
        b'--XyZ\r\nContent-Disposition: form-data; name="purpose"\r\n\r\nbatch\r\n'
        b'--XyZ\r\nContent-Disposition: form-data; name="file"; filename="a.jsonl"\r\n'
        b'Content-Type: application/octet-stream\r\n\r\n{"a":1}\n\r\n--XyZ--\r\n'
    )
    form = parse_multipart("multipart/form-data; boundary=XyZ", body)
    assert form == {"purpose": (None, b"batch"), "file": ("a.jsonl", b'{"a":1}\n')}
    with pytest.raises(MultipartError):
        parse_multipart("application/json", body)


def test_a_line_ends_at_newline_only_as_azure_reads_jsonl(setup):
    # U+2028, U+2029 and U+0085 stay raw inside a JSON string written with ensure_ascii=False;
    # str.splitlines() would cut such a line in two (both halves invalid_json)
    engine, files, clock = setup
    raw = [
        json.dumps(json.loads(line(f"sep-{i}", f"one{ch}two")), ensure_ascii=False)
        for i, ch in enumerate(["\u2028", "\u2029", "\u0085", "\x1c"])
    ]
    batch = engine.create(upload(files, [*raw, line("plain")]), "/chat/completions", "24h")
    clock.t = 500
    obj = engine.describe(batch)
    assert obj["request_counts"] == {"total": 5, "completed": 5, "failed": 0}
    assert obj["error_file_id"] is None


def test_injected_malformed_output_lines(setup):
    engine, files, clock = setup
    engine.faults.add({"kind": "malformed", "fraction": 0.25})
    batch = engine.create(
        upload(files, [line(f"j{i}") for i in range(8)]), "/chat/completions", "24h"
    )
    clock.t = 500
    obj = engine.describe(batch)
    stored = files.get(obj["output_file_id"])
    assert stored is not None
    texts = stored.content.decode().split("\n")[:-1]
    assert len(texts) == 8
    bad = []
    for text in texts:
        try:
            json.loads(text)
        except ValueError:
            bad.append(text)
    assert len(bad) == 2 and all('"custom_id":"j' in text for text in bad)
