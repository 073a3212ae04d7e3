"""Over real HTTP: a request that every region answers with a 5xx while serving other requests
gets a 502 with the upstream's text and a stable code, and other callers are served after it."""

from __future__ import annotations

import httpx

from tests.functional.api.conftest import FUNCTION_KEY

CHAT = {"model": "gpt-4o", "messages": [{"role": "user", "content": "hello"}], "max_tokens": 5}
PARTS = {
    **CHAT,
    "messages": [{"role": "user", "content": [{"type": "text", "text": "hello"}]}],
}
HEADERS = {"x-functions-key": FUNCTION_KEY}


def _post(devserver, body: dict) -> httpx.Response:
    return httpx.post(
        f"{devserver.base_url}/v1/chat/completions", json=body, headers=HEADERS, timeout=30
    )


def test_a_request_failing_in_every_region_is_a_502_and_opens_no_circuit(
    sim, configure, devserver
) -> None:
    configure(sim)
    assert _post(devserver, CHAT).status_code == 200  # a region serves others
    for region in sim.regions.values():
        region.fault("error", status=500, match="content_parts")
    for _ in range(4):
        response = _post(devserver, PARTS)
        assert response.status_code == 502, response.text
        error = response.json()["error"]
        assert error["code"] == "upstream_request_failed"
        assert error["upstream_status"] == 500
        assert "HTTP 500" in error["message"]
    assert _post(devserver, CHAT).status_code == 200
    details = httpx.get(f"{devserver.base_url}/health/details", headers=HEADERS, timeout=10)
    circuits = [r["circuit"]["state"] for r in details.json()["gateway"]["regions"].values()]
    assert circuits == ["closed", "closed"]
