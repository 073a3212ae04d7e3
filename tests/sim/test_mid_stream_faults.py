"""Mid-stream faults (``reset``/``hang`` with ``after_chunks``): a stream that starts, then breaks.

``after_chunks`` counts every SSE ``data:`` event before ``[DONE]``, the first
``prompt_filter_results`` chunk (``choices: []``) included, so it equals the number of chunks
the openai SDK yields before it raises.
"""

from __future__ import annotations

import json
import socket
import time

import httpx2
import openai
import pytest

from aoai_sim.control import ControlError, RegionControl
from tests.fixtures.sim import SimHandle
from tests.sim.helpers import MESSAGES, azure_client, v1_client


def _stream(client, model="gpt-4o-prod", max_tokens=10):
    return client.chat.completions.create(
        model=model, messages=MESSAGES, max_tokens=max_tokens, stream=True
    )


def _drain(stream) -> tuple[list, BaseException | None]:
    """The chunks the SDK yields, and what it raised at the end (None for a clean end)."""
    chunks = []
    try:
        for chunk in stream:
            chunks.append(chunk)  # noqa: PERF402 - collects until the stream raises
    except Exception as exc:  # noqa: BLE001 - the test inspects it
        return chunks, exc
    return chunks, None


def test_reset_after_chunks_is_a_connection_error_after_n_chunks(fresh: SimHandle) -> None:
    region = fresh.region("eastus2")
    region.fault("reset", after_chunks=3, count=1)
    chunks, error = _drain(_stream(azure_client(region)))
    assert len(chunks) == 3
    assert (
        chunks[0].choices == [] and chunks[0].prompt_filter_results
    )  # the prompt-filter chunk counts
    assert chunks[1].choices[0].delta.role == "assistant"
    assert chunks[2].choices[0].delta.content
    assert isinstance(error, openai.APIConnectionError) and not isinstance(
        error, openai.APITimeoutError
    )
    assert isinstance(error.__cause__, httpx2.TransportError)
    stats = region.stats()
    assert stats["failures"]["reset_mid_stream"] == 1 and stats["failures"]["reset"] == 0
    assert stats["streamed"] == 1 and stats["served"] == 1 and stats["by_status"] == {"200": 1}
    assert stats["deployments"]["gpt-4o-prod"]["failures"]["reset_mid_stream"] == 1
    # count exhausted: the next stream is complete
    chunks, error = _drain(_stream(azure_client(region)))
    assert error is None and chunks[-1].choices[0].finish_reason == "length"


def test_reset_after_chunks_sends_rst_after_the_events(fresh: SimHandle) -> None:
    region = fresh.region("eastus2")
    region.fault("reset", after_chunks=2, count=1)
    body = json.dumps({"messages": MESSAGES, "stream": True, "max_tokens": 5}).encode()
    head = (
        "POST /openai/deployments/gpt-4o-prod/chat/completions?api-version=2024-10-21 HTTP/1.1\r\n"
        f"Host: x\r\napi-key: {region.api_key}\r\ncontent-type: application/json\r\ncontent-length: {len(body)}\r\n\r\n"
    ).encode()
    received = b""
    with socket.create_connection(("127.0.0.1", region.port), timeout=3) as sock:
        sock.sendall(head + body)
        time.sleep(0.2)  # a slow reader still gets the events queued before the RST
        with pytest.raises(ConnectionResetError):
            while chunk := sock.recv(65536):
                received += chunk
    assert received.startswith(b"HTTP/1.1 200 OK\r\n")
    assert (
        received.count(b"data: ") == 2
        and b"[DONE]" not in received
        and not received.endswith(b"0\r\n\r\n")
    )


def test_hang_after_chunks_times_out_after_n_chunks(fresh: SimHandle) -> None:
    region = fresh.region("eastus2")
    region.fault("hang", after_chunks=3, count=1)
    started = time.monotonic()
    chunks, error = _drain(_stream(azure_client(region, timeout=0.5)))
    assert len(chunks) == 3 and isinstance(error, openai.APITimeoutError)
    assert time.monotonic() - started >= 0.5
    stats = region.stats()
    assert (
        stats["failures"]["hang_mid_stream"] == 1
        and stats["failures"]["hang"] == 0
        and stats["streamed"] == 1
    )
    deadline = time.monotonic() + 3
    while (
        region.stats()["in_flight"] and time.monotonic() < deadline
    ):  # the client left: connection closed
        time.sleep(0.05)
    assert region.stats()["in_flight"] == 0
    chunks, error = _drain(_stream(azure_client(region)))
    assert error is None and chunks


def test_hang_after_chunks_released_by_duration(fresh: SimHandle) -> None:
    region = fresh.region("eastus2")
    region.fault("hang", after_chunks=2, duration_s=2.0)  # long enough for a busy machine
    started = time.monotonic()
    chunks, error = _drain(_stream(v1_client(region, timeout=10)))
    # closed without the terminating chunk when the fault ends: a broken body, not a clean end
    assert len(chunks) == 2 and isinstance(error, openai.APIConnectionError)
    assert not isinstance(error, openai.APITimeoutError)
    assert time.monotonic() - started < 9.5  # ended by the fault, not the 10 s timeout


def test_non_streaming_requests_pass_untouched_and_do_not_consume_the_fault(
    fresh: SimHandle,
) -> None:
    region = fresh.region("eastus2")
    fault_id = region.fault("reset", after_chunks=1, count=1)
    client = azure_client(region)
    assert client.chat.completions.create(
        model="gpt-4o-prod", messages=MESSAGES, max_tokens=3
    ).choices
    assert client.embeddings.create(model="embed-eastus2", input="x").data
    [fault] = RegionControl(region.endpoint).faults()
    assert (
        fault["id"] == fault_id
        and fault["after_chunks"] == 1
        and fault["hits"] == 0
        and fault["remaining_count"] == 1
    )
    chunks, error = _drain(_stream(client))
    assert len(chunks) == 1 and isinstance(error, openai.APIConnectionError)
    assert RegionControl(region.endpoint).faults() == []
    stats = region.stats()
    assert (
        stats["failures"]["reset_mid_stream"] == 1
        and stats["served"] == 3
        and stats["requests"] == 3
    )


def test_after_chunks_beyond_the_stream_cuts_before_done(fresh: SimHandle) -> None:
    region = fresh.region("swedencentral")
    region.fault("reset", after_chunks=1000, count=1, deployment="gpt4o-sweden")
    client = v1_client(region)
    chunks, error = _drain(_stream(client, model="gpt4o-sweden", max_tokens=4))
    # every JSON event arrives (4 tokens: filter + role + 4 + finish = 7), only [DONE] is missing
    assert len(chunks) == 7 and chunks[-1].choices[0].finish_reason == "length"
    assert isinstance(error, openai.APIConnectionError)
    assert region.stats()["deployments"]["gpt4o-sweden"]["failures"]["reset_mid_stream"] == 1


def test_after_chunks_zero_breaks_right_after_the_head(fresh: SimHandle) -> None:
    region = fresh.region("eastus2")
    region.fault("hang", after_chunks=0, count=1)
    chunks, error = _drain(_stream(azure_client(region, timeout=0.4)))
    assert chunks == [] and isinstance(error, openai.APITimeoutError)


def test_blocking_fault_still_wins_and_mid_stream_waits_for_a_stream(fresh: SimHandle) -> None:
    region = fresh.region("eastus2")
    region.fault("error", status=503, count=1)
    region.fault("reset", after_chunks=2, count=1)
    with pytest.raises(openai.InternalServerError):
        _stream(azure_client(region))
    chunks, error = _drain(_stream(azure_client(region)))
    assert len(chunks) == 2 and isinstance(error, openai.APIConnectionError)
    failures = region.stats()["failures"]
    assert failures["error"] == 1 and failures["reset_mid_stream"] == 1


def test_invalid_after_chunks_is_rejected(fresh: SimHandle) -> None:
    region = fresh.region("eastus2")
    for kind, value in (
        ("error", 2),
        ("throttle", 2),
        ("slow", 2),
        ("reset", -1),
        ("hang", 1.5),
        ("reset", True),
        ("hang", "3"),
    ):
        with pytest.raises(ControlError):
            region.fault(kind, after_chunks=value)
    assert RegionControl(region.endpoint).faults() == []
