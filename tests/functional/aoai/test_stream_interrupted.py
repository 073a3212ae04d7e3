"""A stream that breaks after its first chunks ends with StreamInterrupted: never a silent
truncation, never retried in another region once the caller has seen part of the answer
(simulator mid-stream faults, real openai SDK underneath)."""

from __future__ import annotations

import time

import openai
import pytest

from shared.aoai import FailureKind, StreamInterrupted

from ._helpers import chat, chat_requests, ctx

PREFER_EAST = {"eastus2": 0, "swedencentral": 1}


async def _drain(stream) -> tuple[list[dict], BaseException | None]:
    chunks: list[dict] = []
    try:
        async for chunk in stream:
            chunks.append(chunk)
    except Exception as exc:  # noqa: BLE001 - the test inspects it
        return chunks, exc
    finally:
        await stream.aclose()
    return chunks, None


def _names(attempts) -> list[tuple[str, str, FailureKind | None]]:
    return [(a.region, a.deployment, a.outcome) for a in attempts]


async def test_reset_after_three_chunks_raises_stream_interrupted(
    sim_factory, gateway_settings_factory, gateway_factory
):
    sim = sim_factory()
    east, sweden = sim.region("eastus2"), sim.region("swedencentral")
    gateway = gateway_factory(gateway_settings_factory(sim, priorities=PREFER_EAST))
    east.fault("reset", after_chunks=3)

    stream = await gateway.open_chat_stream(chat(max_tokens=20, stream=True), ctx())
    assert (stream.region, stream.deployment) == ("eastus2", "gpt-4o-prod")
    chunks, error = await _drain(stream)

    assert len(chunks) == 3  # prompt-filter chunk, role delta, first token: then the RST
    assert chunks[0]["choices"] == [] and chunks[2]["choices"][0]["delta"]["content"]
    assert isinstance(error, StreamInterrupted)
    assert error.code == "stream_interrupted" and error.http_status == 502
    assert "eastus2" in str(error) and "gpt-4o-prod" in str(error) and "connection" in str(error)
    assert isinstance(error.__cause__, openai.APIConnectionError)
    # The attempts say the stream was opened once, on eastus2; the break is the error, not a retry.
    assert _names(error.attempts) == _names(stream.attempts) == [("eastus2", "gpt-4o-prod", None)]
    with pytest.raises(RuntimeError):
        stream.result  # noqa: B018 - no CallResult for a broken stream
    assert chat_requests(sweden.stats(), "gpt4o-sweden") == 0  # not retried mid-stream
    stats = east.stats()
    assert stats["failures"]["reset_mid_stream"] == 1 and chat_requests(stats, "gpt-4o-prod") == 1


async def test_hang_after_three_chunks_with_short_read_timeout(
    sim_factory, gateway_settings_factory, gateway_factory
):
    sim = sim_factory()
    east, sweden = sim.region("eastus2"), sim.region("swedencentral")
    gateway = gateway_factory(
        gateway_settings_factory(sim, priorities=PREFER_EAST, read_timeout_s=0.5)
    )
    east.fault("hang", after_chunks=3, count=1)

    started = time.monotonic()
    stream = await gateway.open_chat_stream(chat(max_tokens=20, stream=True), ctx())
    chunks, error = await _drain(stream)
    elapsed = time.monotonic() - started

    assert len(chunks) == 3
    assert isinstance(error, StreamInterrupted) and "timeout" in str(error)
    assert isinstance(error.__cause__, openai.APITimeoutError)
    assert (
        0.5 <= elapsed < 12
    )  # the 0.5 s read timeout (plus a busy machine), not the 15 s deadline
    assert _names(error.attempts) == [("eastus2", "gpt-4o-prod", None)]
    assert chat_requests(sweden.stats(), "gpt4o-sweden") == 0
    assert east.stats()["failures"]["hang_mid_stream"] == 1
    # A stall after the first chunk counts toward the circuit but does not open it at once
    # (test_stream_circuit.py): the next call starts on eastus2 again, which answers now.
    circuit = gateway.health_report()["regions"]["eastus2"]["circuit"]
    assert circuit["state"] == "closed" and circuit["consecutive_failures"] == 1
    nxt = await gateway.open_chat_stream(chat(max_tokens=5, stream=True), ctx())
    chunks, error = await _drain(nxt)
    assert error is None and nxt.result.finish_reason == "length"
    assert _names(nxt.result.attempts) == [("eastus2", "gpt-4o-prod", None)]


async def test_break_before_the_first_chunk_fails_over(
    sim_factory, gateway_settings_factory, gateway_factory
):
    sim = sim_factory()
    east = sim.region("eastus2")
    gateway = gateway_factory(gateway_settings_factory(sim, priorities=PREFER_EAST))
    east.fault(
        "reset", after_chunks=0, count=1
    )  # 200 head, then RST: nothing reached the caller yet

    stream = await gateway.open_chat_stream(chat(max_tokens=5, stream=True), ctx())
    chunks, error = await _drain(stream)

    assert error is None and chunks and stream.result.finish_reason == "length"
    assert [(a.region, a.outcome) for a in stream.result.attempts] == [
        ("eastus2", FailureKind.CONNECTION),
        ("swedencentral", None),
    ]
    assert east.stats()["failures"]["reset_mid_stream"] == 1
