"""A caller that leaves a stream mid-answer is charged what was streamed (Azure bills what it
generated): over real HTTP through the dev server, a client reads a few SSE chunks and closes the
connection; the usage report, the caller's monthly budget and its rate-limit window then hold
the prompt and the streamed output (estimated, as the usage chunk never came)."""

from __future__ import annotations

import json
import time

import httpx

from testpeers.devserver import settings_env
from testpeers.gateway import settings_for_sim
from tests.functional.api.conftest import FUNCTION_KEY

HEADERS = {"x-functions-key": FUNCTION_KEY}
PREFER_EAST = {"eastus2": 0, "swedencentral": 1}


def _until(check, what: str, timeout: float = 60.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def test_a_stream_the_caller_leaves_is_charged_what_was_streamed(
    sim_factory, app_env, devserver, azurite, unique_name
) -> None:
    sim = sim_factory(per_token_ms=200)  # a slow answer: the caller leaves long before its end
    settings = settings_for_sim(
        sim, priorities=PREFER_EAST, storage_connection=azurite.connection_string
    )
    app_env(
        {
            **settings_env(settings),
            "GATEWAY_USAGE_TABLE": unique_name("usage").replace("-", ""),
            "GATEWAY_USAGE_FLUSH_S": "0.2",
            "GATEWAY_CALLER_TABLE": unique_name("callers").replace("-", ""),
            "GATEWAY_CALLER_LIMITS": json.dumps(
                {"default": {"tpm": 1_000_000, "monthly_tokens": 10_000_000}}
            ),
            "GATEWAY_CALLER_WINDOW_S": "86400",  # no window boundary falls inside the test
        }
    )
    body = {
        "model": "gpt-4o",
        "messages": [{"role": "user", "content": "Tell me a long story about gateways."}],
        "max_tokens": 200,
        "stream": True,
    }
    with httpx.Client(base_url=devserver.base_url, headers=HEADERS, timeout=60) as client:
        streamed = ""
        with client.stream("POST", "/v1/chat/completions", json=body) as response:
            assert response.status_code == 200
            data = 0
            for line in response.iter_lines():
                if line.startswith("data: {"):
                    data += 1
                    for choice in json.loads(line[len("data: ") :]).get("choices", []):
                        streamed += (choice.get("delta") or {}).get("content") or ""
                if data == 4:
                    break  # the caller goes away mid-answer
        assert streamed

        def report() -> dict | None:
            got = client.get("/v1/usage")
            assert got.status_code == 200, got.text
            total = got.json()["total"]
            return total if total["requests"] >= 1 else None

        total = _until(report, "the abandoned stream in the usage report")
        assert total["requests"] == 1
        assert total["input_tokens"] > 0  # the prompt (estimated)
        # The output streamed so far at four characters per token, never the full max_tokens.
        assert -(-len(streamed) // 4) <= total["output_tokens"] < 200
        caller = client.get("/v1/usage").json()["scope"]

        def budget() -> dict | None:
            rows = client.get("/ops/callers").json()
            rows = rows["data"]
            row = next((r for r in rows if r["caller"] == caller), None)
            return row if row and row["month_tokens"] else None

        row = _until(budget, "the abandoned stream in the caller's monthly budget")
        assert row["month_tokens"] == total["total_tokens"]
        # The rate-limit window was charged the call's estimate when it was admitted.
        assert row["window_tokens"] >= total["total_tokens"]
