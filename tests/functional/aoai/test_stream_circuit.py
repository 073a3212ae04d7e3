"""Failures after a stream's first chunk and the region's circuit (issue 10, findings 7 and 14).

A stream that breaks or stalls after its first chunk is a region symptom and counts toward the
circuit's threshold, judged by when its request was sent: a stream sent before the circuit
opened, failing later, neither extends ``open_until`` nor counts after a half-open probe has
closed it. A stall mid-answer never opens the circuit at once (the next caller's first-byte
deadline does that for a hung region). A caller going away mid-stream is never a failure.
Time for the circuits runs on a ``ManualClock``; the simulator cuts and stalls real streams.
"""

from __future__ import annotations

import asyncio
import logging
import time

import httpx

from shared.aoai import FailureKind, ManualClock, StreamInterrupted
from testpeers.gateway import settings_for_sim

from ._helpers import chat, ctx

PREFER_EAST = {"eastus2": 0, "swedencentral": 1}


def _circuit(gateway, region: str = "eastus2") -> dict:
    return gateway.health_report()["regions"][region]["circuit"]


async def _drain(stream) -> BaseException | None:
    try:
        async for _ in stream:
            pass
    except Exception as exc:  # noqa: BLE001 - the test inspects it
        return exc
    finally:
        await stream.aclose()
    return None


async def _open_east_circuit(gateway, east, threshold: int) -> None:
    """Real 500s from eastus2 (each call fails over to swedencentral) until its circuit opens."""
    east.fault("error", status=500, count=threshold, deployment="gpt-4o-prod")
    for _ in range(threshold):
        result = await gateway.chat(chat(max_tokens=5), ctx())
        assert [(a.region, a.outcome) for a in result.attempts] == [
            ("eastus2", FailureKind.SERVER_ERROR),
            ("swedencentral", None),
        ]
    assert _circuit(gateway)["state"] == "open"


async def test_a_stale_stream_failure_neither_extends_nor_reopens_the_circuit(
    sim_factory, gateway_settings_factory, gateway_factory
):
    sim = sim_factory()
    east = sim.region("eastus2")
    clock = ManualClock(time.time())
    settings = gateway_settings_factory(
        sim, priorities=PREFER_EAST, circuit_failure_threshold=2, circuit_cooloff_s=30.0
    )
    gateway = gateway_factory(settings, clock=clock)
    # Two streams on eastus2 that the simulator will cut after their third chunk.
    east.fault("reset", after_chunks=3, count=2, deployment="gpt-4o-prod")
    early = [await gateway.open_chat_stream(chat(stream=True), ctx()) for _ in range(2)]
    assert [s.region for s in early] == ["eastus2", "eastus2"]

    clock.advance(1.0)  # the circuit opens after these streams were sent
    await _open_east_circuit(gateway, east, threshold=2)
    opened = _circuit(gateway)
    assert opened["open_until"] == clock.now() + 30.0

    # The first stale stream breaks now: the open circuit is not extended.
    clock.advance(5.0)
    error = await _drain(early[0])
    assert isinstance(error, StreamInterrupted) and "connection" in str(error)
    assert _circuit(gateway) == opened

    # Cool-off over: the half-open probe (a request sent now) succeeds and closes the circuit.
    clock.advance(30.0)
    probe = await gateway.chat(chat(max_tokens=5), ctx())
    assert [(a.region, a.outcome) for a in probe.attempts] == [("eastus2", None)]
    assert _circuit(gateway)["state"] == "closed"

    # The second stale stream breaks after the probe: it does not count toward reopening.
    error = await _drain(early[1])
    assert isinstance(error, StreamInterrupted)
    closed = _circuit(gateway)
    assert closed["state"] == "closed" and closed["consecutive_failures"] == 0


async def test_a_fresh_stream_failure_counts_toward_the_threshold_without_opening_at_once(
    sim_factory, gateway_settings_factory, gateway_factory
):
    sim = sim_factory()
    east = sim.region("eastus2")
    clock = ManualClock(time.time())
    settings = gateway_settings_factory(
        sim,
        priorities=PREFER_EAST,
        circuit_failure_threshold=2,
        circuit_cooloff_s=30.0,
        idle_timeout_s=0.5,  # real seconds between chunks; the stall below lasts longer
        read_timeout_s=30.0,
        call_deadline_s=60.0,
    )
    gateway = gateway_factory(settings, clock=clock)
    east.fault("hang", after_chunks=3, count=1, deployment="gpt-4o-prod")

    stalled = await gateway.open_chat_stream(chat(stream=True), ctx())
    error = await _drain(stalled)
    assert isinstance(error, StreamInterrupted) and "timeout" in str(error)
    # One stall mid-answer is counted, but does not take the region away from everyone.
    after_stall = _circuit(gateway)
    assert after_stall["state"] == "closed" and after_stall["consecutive_failures"] == 1

    # The next failure on eastus2 (a 500) is the second in a row: the threshold of 2 is reached.
    clock.advance(1.0)
    east.fault("error", status=500, count=1, deployment="gpt-4o-prod")
    failed_over = await gateway.chat(chat(max_tokens=5), ctx())
    assert [(a.region, a.outcome) for a in failed_over.attempts] == [
        ("eastus2", FailureKind.SERVER_ERROR),
        ("swedencentral", None),
    ]
    circuit = _circuit(gateway)
    assert circuit["state"] == "open" and circuit["open_until"] == clock.now() + 30.0
    nxt = await gateway.chat(chat(max_tokens=5), ctx())
    assert [(a.region, a.outcome) for a in nxt.attempts] == [("swedencentral", None)]


async def test_a_caller_going_away_mid_stream_is_not_a_region_failure(
    sim_factory, gateway_settings_factory, gateway_factory
):
    sim = sim_factory()
    east = sim.region("eastus2")
    clock = ManualClock(time.time())
    settings = gateway_settings_factory(
        sim,
        priorities=PREFER_EAST,
        circuit_failure_threshold=1,  # a single counted failure would open the circuit
        idle_timeout_s=120.0,
        read_timeout_s=120.0,
        call_deadline_s=180.0,
    )
    gateway = gateway_factory(settings, clock=clock)
    east.fault("hang", after_chunks=3, count=2, deployment="gpt-4o-prod")

    # 1. The caller stops reading and closes the stream (what the HTTP layer does on disconnect).
    stream = await gateway.open_chat_stream(chat(stream=True), ctx())
    assert await stream.__anext__()
    await stream.aclose()

    # 2. The caller's task is cancelled while it waits on a stalled upstream.
    stream = await gateway.open_chat_stream(chat(stream=True), ctx())
    chunks: list[dict] = []
    reading = asyncio.Event()

    async def read() -> None:
        async for chunk in stream:
            chunks.append(chunk)
            if len(chunks) == 3:  # every chunk before the stall has arrived
                reading.set()

    task = asyncio.create_task(read())
    await asyncio.wait_for(reading.wait(), timeout=30)
    task.cancel()
    done, _ = await asyncio.wait([task], timeout=30)
    assert done and task.cancelled()

    circuit = _circuit(gateway)
    assert circuit["state"] == "closed" and circuit["consecutive_failures"] == 0
    nxt = await gateway.chat(chat(max_tokens=5), ctx())
    assert [(a.region, a.outcome) for a in nxt.attempts] == [("eastus2", None)]


def test_a_caller_disconnecting_from_the_dev_server_mid_stream_is_not_a_region_failure(
    sim_factory, app_env, devserver, caplog
):
    sim = sim_factory()
    east = sim.region("eastus2")
    app_env(
        settings_for_sim(
            sim,
            priorities=PREFER_EAST,
            circuit_failure_threshold=1,  # a single counted failure would open the circuit
            idle_timeout_s=120.0,
            read_timeout_s=120.0,
            call_deadline_s=180.0,
        )
    )
    east.fault("hang", after_chunks=3, count=1, deployment="gpt-4o-prod")
    caplog.set_level(logging.INFO, logger="shared.aoai._observers")
    body = {"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}], "stream": True}

    with httpx.Client(base_url=devserver.base_url, timeout=60) as client:
        with client.stream("POST", "/v1/chat/completions", json=body) as response:
            assert response.status_code == 200
            correlation_id = response.headers["x-correlation-id"]
            data = 0
            for line in response.iter_lines():
                data += line.startswith("data: ")
                if data == 3:  # every chunk before the stall: now the caller goes away
                    break
        # The positive signal: the gateway logged the call as cancelled by the caller.
        deadline = time.monotonic() + 60
        finished = []
        while not finished and time.monotonic() < deadline:
            finished = [
                r
                for r in caplog.records
                if getattr(r, "correlation_id", None) == correlation_id
                and getattr(r, "event", None) == "aoai_call"
            ]
            time.sleep(0.05)
        assert [r.outcome for r in finished] == ["cancelled"]
        circuit = client.get("/health/details").json()["gateway"]["regions"]["eastus2"]["circuit"]
        assert circuit["state"] == "closed" and circuit["consecutive_failures"] == 0
        nxt = client.post("/v1/chat/completions", json=dict(body, stream=False, max_tokens=5))
        assert nxt.status_code == 200 and nxt.headers["x-gateway-region"] == "eastus2"
