"""The real openai SDK's files and batches clients against the simulator, on both route styles."""

from __future__ import annotations

import io
import json
import time
from collections.abc import Callable
from typing import Any

import openai
import pytest

from tests.fixtures.sim import SimHandle
from tests.sim.helpers import azure_client, v1_client

BATCH_DEP = "gpt-4o-batch"
REGIONS = [
    {
        "name": "eastus2",
        "deployments": [
            {"name": "gpt-4o-prod", "model": "gpt-4o", "kind": "chat", "tpm": 450000},
            {
                "name": BATCH_DEP,
                "model": "gpt-4o",
                "kind": "chat",
                "sku": "global_batch",
                "enqueued_tokens": 2000,
            },
        ],
        "content_filter": {"prompt_triggers": ["SIM_FILTER_PROMPT"], "category": "violence"},
    }
]
CLOCK = {"validating_s": 0.3, "in_progress_s": 1.0, "finalizing_s": 0.3, "window_s": 8}


@pytest.fixture(scope="module")
def batch_sim(tmp_path_factory: pytest.TempPathFactory) -> Any:
    from tests.fixtures.sim import start_sim

    handle = start_sim(
        REGIONS, workdir=tmp_path_factory.mktemp("aoai-sim-batch"), extra={"batch": CLOCK}
    )
    try:
        yield handle
    finally:
        handle.stop()


@pytest.fixture
def sim(batch_sim: SimHandle) -> SimHandle:
    batch_sim.region("eastus2").reset()
    return batch_sim


CLIENTS: dict[str, Callable[[SimHandle], openai.OpenAI]] = {
    "azure-dated": lambda s: azure_client(s.region("eastus2")),
    "openai-v1": lambda s: v1_client(s.region("eastus2")),
}


def jsonl(rows: list[dict[str, Any]]) -> io.BytesIO:
    data = "".join(json.dumps(r) + "\n" for r in rows).encode()
    return io.BytesIO(data)


def request(custom_id: str, text: str = "hello batch", model: str = BATCH_DEP) -> dict[str, Any]:
    return {
        "custom_id": custom_id,
        "method": "POST",
        "url": "/chat/completions",
        "body": {"model": model, "messages": [{"role": "user", "content": text}], "max_tokens": 6},
    }


def wait_terminal(client: openai.OpenAI, batch_id: str, timeout: float = 60) -> Any:
    deadline = time.monotonic() + timeout
    seen = []
    while time.monotonic() < deadline:
        batch = client.batches.retrieve(batch_id)
        if not seen or seen[-1] != batch.status:
            seen.append(batch.status)
        if batch.status in ("completed", "failed", "expired", "cancelled"):
            return batch, seen
        time.sleep(0.1)
    raise AssertionError(f"batch {batch_id} still {seen} after {timeout}s")


def lines(client: openai.OpenAI, file_id: str | None) -> list[dict[str, Any]]:
    assert file_id is not None
    return [json.loads(x) for x in client.files.content(file_id).text.splitlines()]


@pytest.mark.parametrize("style", sorted(CLIENTS))
def test_upload_create_poll_download(sim: SimHandle, style: str) -> None:
    client = CLIENTS[style](sim)
    rows = [request(f"job-{i}") for i in range(5)] + [request("filtered", "SIM_FILTER_PROMPT")]
    uploaded = client.files.create(file=("in.jsonl", jsonl(rows)), purpose="batch")
    assert uploaded.purpose == "batch" and uploaded.bytes > 0
    assert client.files.retrieve(uploaded.id).filename == "in.jsonl"

    batch = client.batches.create(
        input_file_id=uploaded.id,
        endpoint="/chat/completions",
        completion_window="24h",
        metadata={"lane": "test"},
    )
    assert batch.status == "validating" and batch.metadata == {"lane": "test"}
    done, seen = wait_terminal(client, batch.id)
    assert seen[0] == "validating" and seen[-1] == "completed"
    assert set(seen) <= {"validating", "in_progress", "finalizing", "completed"}
    assert done.request_counts.total == 6
    assert done.request_counts.completed == 5 and done.request_counts.failed == 1

    out = lines(client, done.output_file_id)
    assert sorted(r["custom_id"] for r in out) == [f"job-{i}" for i in range(5)]
    completion = out[0]["response"]["body"]
    assert completion["choices"][0]["message"]["content"]
    assert completion["usage"]["completion_tokens"] <= 6
    errors = lines(client, done.error_file_id)
    assert errors[0]["custom_id"] == "filtered"
    assert errors[0]["response"]["body"]["error"]["code"] == "content_filter"

    assert batch.id in [b.id for b in client.batches.list(limit=10)]
    assert client.files.delete(uploaded.id).deleted


@pytest.mark.parametrize("style", sorted(CLIENTS))
def test_cancel(sim: SimHandle, style: str) -> None:
    client = CLIENTS[style](sim)
    uploaded = client.files.create(file=("in.jsonl", jsonl([request("a")])), purpose="batch")
    batch = client.batches.create(
        input_file_id=uploaded.id, endpoint="/chat/completions", completion_window="24h"
    )
    assert client.batches.cancel(batch.id).status == "cancelling"
    done, _ = wait_terminal(client, batch.id)
    assert done.status == "cancelled"
    assert lines(client, done.error_file_id)[0]["error"]["code"] == "batch_cancelled"
    with pytest.raises(openai.ConflictError):
        client.batches.cancel(batch.id)


def test_enqueued_token_quota_refuses_with_token_limit_exceeded(sim: SimHandle) -> None:
    client = CLIENTS["openai-v1"](sim)
    big = "many words " * 100  # about 280 tokens a line
    rows = [request(f"a{i}", big) for i in range(5)]
    first = client.batches.create(
        input_file_id=client.files.create(file=("a.jsonl", jsonl(rows)), purpose="batch").id,
        endpoint="/chat/completions",
        completion_window="24h",
    )
    rows = [request(f"b{i}", big) for i in range(5)]
    second = client.batches.create(
        input_file_id=client.files.create(file=("b.jsonl", jsonl(rows)), purpose="batch").id,
        endpoint="/chat/completions",
        completion_window="24h",
    )
    enqueued = sim.region("eastus2").batches()["enqueued_tokens"][BATCH_DEP]
    assert 1000 < enqueued <= 2000
    refused, _ = wait_terminal(client, second.id)
    assert refused.status == "failed"
    assert refused.errors.data[0].code == "token_limit_exceeded"
    assert wait_terminal(client, first.id)[0].status == "completed"


def test_injected_batch_faults(sim: SimHandle) -> None:
    region = sim.region("eastus2")
    client = CLIENTS["azure-dated"](sim)
    region.batch_fault("fail")
    region.batch_fault("expire", fraction=0.5)
    region.batch_fault("partial", fraction=0.5)
    ids = []
    for _ in range(3):
        rows = [request(f"j{i}") for i in range(4)]
        uploaded = client.files.create(file=("in.jsonl", jsonl(rows)), purpose="batch")
        ids.append(
            client.batches.create(
                input_file_id=uploaded.id, endpoint="/chat/completions", completion_window="24h"
            ).id
        )
    failed, _ = wait_terminal(client, ids[0])
    assert failed.status == "failed" and failed.errors.data[0].code == "server_error"
    partial, _ = wait_terminal(client, ids[2])
    assert partial.status == "completed"
    assert (partial.request_counts.completed, partial.request_counts.failed) == (2, 2)
    expired, seen = wait_terminal(client, ids[1], timeout=120)
    assert expired.status == "expired" and "in_progress" in seen
    assert len(lines(client, expired.output_file_id)) == 2
    assert {e["error"]["code"] for e in lines(client, expired.error_file_id)} == {"batch_expired"}


def test_refusals(sim: SimHandle) -> None:
    region = sim.region("eastus2")
    client = CLIENTS["openai-v1"](sim)
    with pytest.raises(openai.BadRequestError):
        client.files.create(file=("in.jsonl", jsonl([request("a")])), purpose="fine-tune")
    with pytest.raises(openai.NotFoundError):
        client.batches.create(
            input_file_id="file-missing", endpoint="/chat/completions", completion_window="24h"
        )
    with pytest.raises(openai.AuthenticationError):
        v1_client(region, api_key="wrong").batches.list()
    # a Global Batch deployment takes no online calls
    with pytest.raises(openai.BadRequestError):
        client.chat.completions.create(
            model=BATCH_DEP, messages=[{"role": "user", "content": "hi"}]
        )
