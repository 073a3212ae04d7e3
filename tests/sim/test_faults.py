"""Every fault mode through the SDK, and the /_sim/stats counters it leaves."""

from __future__ import annotations

import socket
import time

import httpx
import openai
import pytest

from aoai_sim.control import ControlError
from tests.fixtures.sim import SimHandle
from tests.sim.helpers import MESSAGES, azure_client, v1_client


def _chat(region, **kwargs):
    return azure_client(region, **kwargs).chat.completions.create(
        model="gpt-4o-prod", messages=MESSAGES, max_tokens=3
    )


def test_reset_fault_is_connection_error(fresh: SimHandle) -> None:
    region = fresh.region("eastus2")
    region.fault("reset", count=2)
    for _ in range(2):
        with pytest.raises(openai.APIConnectionError) as err:
            _chat(region)
        assert not isinstance(err.value, openai.APITimeoutError)
    assert _chat(region).choices
    stats = region.stats()
    assert stats["failures"]["reset"] == 2 and stats["requests"] == 3 and stats["served"] == 1
    assert stats["deployments"]["gpt-4o-prod"]["failures"]["reset"] == 2


def test_reset_sends_rst(fresh: SimHandle) -> None:
    region = fresh.region("eastus2")
    region.fault("reset", count=1)
    with socket.create_connection(("127.0.0.1", region.port), timeout=3) as sock:
        sock.sendall(b"GET /openai/v1/models HTTP/1.1\r\nHost: x\r\n\r\n")
        with pytest.raises(ConnectionResetError):
            sock.recv(100)


def test_hang_fault_times_out_then_releases(fresh: SimHandle) -> None:
    region = fresh.region("eastus2")
    fault_id = region.fault("hang", count=1)
    started = time.monotonic()
    with pytest.raises(openai.APITimeoutError):
        _chat(region, timeout=0.5)
    assert time.monotonic() - started >= 0.5
    assert region.stats()["failures"]["hang"] == 1
    assert _chat(region).choices  # count exhausted
    assert not region.clear_fault(fault_id)


def test_hang_released_by_duration(fresh: SimHandle) -> None:
    region = fresh.region("eastus2")
    region.fault("hang", duration_s=2.0)  # long enough to catch the request on a busy machine
    started = time.monotonic()
    with pytest.raises(openai.APIConnectionError):
        _chat(region, timeout=10)  # connection closed without a response when the fault ends
    assert time.monotonic() - started < 9.5  # ended by the fault, not the 10 s timeout
    assert _chat(region).choices  # and the fault is over


def test_error_burst(fresh: SimHandle) -> None:
    region = fresh.region("swedencentral")
    region.fault("error", count=2, status=503)
    client = v1_client(region)
    for _ in range(2):
        with pytest.raises(openai.InternalServerError) as err:
            client.chat.completions.create(model="gpt4o-sweden", messages=MESSAGES)
        assert err.value.status_code == 503 and err.value.body["code"] == "ServiceUnavailable"
    assert client.chat.completions.create(model="gpt4o-sweden", messages=MESSAGES, max_tokens=1)
    region.fault("error", count=1)
    with pytest.raises(openai.InternalServerError) as err:
        client.embeddings.create(model="embed-sweden", input="x")
    assert err.value.status_code == 500 and err.value.body["code"] == "InternalServerError"
    stats = region.stats()
    assert stats["failures"]["error"] == 3 and stats["by_status"]["503"] == 2


def test_throttle_storm_with_absurd_retry_after(fresh: SimHandle) -> None:
    region = fresh.region("eastus2")
    region.fault("throttle", count=3, retry_after_s=86400)
    for _ in range(3):
        with pytest.raises(openai.RateLimitError) as err:
            _chat(region)
    h = err.value.response.headers
    assert h["retry-after"] == "86400" and h["retry-after-ms"] == "86400000"
    assert h["x-ratelimit-remaining-requests"] == "0" and h["x-ratelimit-remaining-tokens"] == "0"
    assert "x-ratelimit-reset-requests" in h and "x-ratelimit-reset-tokens" in h
    assert err.value.body["code"] == "429"
    assert "Please retry after 86400 seconds" in err.value.body["message"]
    stats = region.stats()
    assert (
        stats["throttled"] == 3
        and stats["failures"]["throttle"] == 3
        and stats["tokens_charged"] == 0
    )


def test_throttle_with_retry_after_ms_and_duration(fresh: SimHandle) -> None:
    region = fresh.region("eastus2")
    region.fault("throttle", duration_s=2.0, retry_after_ms=1500)
    with pytest.raises(openai.RateLimitError) as err:
        _chat(region)
    assert err.value.response.headers["retry-after-ms"] == "1500"
    assert err.value.response.headers["retry-after"] == "2"
    deadline = time.monotonic() + 30
    while True:  # served again once the 2 s are over (polled: no fixed sleep)
        try:
            assert _chat(region).choices
            break
        except openai.RateLimitError:
            assert time.monotonic() < deadline, "the throttle fault never ended"
            time.sleep(0.2)


def test_slow_fault_delays_first_byte(fresh: SimHandle) -> None:
    region = fresh.region("eastus2")
    region.fault("slow", count=1, delay_ms=400)
    started = time.monotonic()
    _chat(region)
    assert time.monotonic() - started >= 0.4
    _chat(region)  # not slowed: the count below says so (a time bound would fail on a busy machine)
    stats = region.stats()
    assert stats["slowed"] == 1 and stats["served"] == 2


def test_slow_fault_makes_sdk_timeout(fresh: SimHandle) -> None:
    region = fresh.region("eastus2")
    region.fault("slow", delay_ms=1000)
    with pytest.raises(openai.APITimeoutError):
        _chat(region, timeout=0.3)


def test_deployment_scoped_fault(fresh: SimHandle) -> None:
    region = fresh.region("eastus2")
    region.fault("error", status=502, deployment="embed-eastus2")
    assert _chat(region).choices
    with pytest.raises(openai.InternalServerError):
        azure_client(region).embeddings.create(model="embed-eastus2", input="x")
    stats = region.stats()
    assert stats["deployments"]["embed-eastus2"]["failures"]["error"] == 1
    assert stats["deployments"]["gpt-4o-prod"]["failures"]["error"] == 0


def test_control_api_is_not_faulted_and_reset_clears(fresh: SimHandle) -> None:
    region = fresh.region("eastus2")
    region.fault("reset")
    region.fault("hang")
    assert region.stats()["requests"] == 0
    faults = httpx.get(f"{region.endpoint}/_sim/faults").json()["faults"]
    assert [f["kind"] for f in faults] == ["reset", "hang"]
    region.reset()
    assert _chat(region).choices


def test_invalid_fault_spec_is_rejected(fresh: SimHandle) -> None:
    with pytest.raises(ControlError):
        fresh.region("eastus2").fault("explode")
    with pytest.raises(ControlError):
        fresh.region("eastus2").fault("error", count=0)
