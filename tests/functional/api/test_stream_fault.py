"""Over HTTP: an upstream stream that breaks after its first chunks reaches the caller as the
gateway's ``stream_interrupted`` error event, with no ``[DONE]`` (real openai SDK as the caller)."""

from __future__ import annotations

import json

import openai
import pytest

from tests.functional.api.conftest import FUNCTION_KEY

PROMPT = [{"role": "user", "content": "Tell me about gateways"}]


def test_mid_stream_reset_ends_with_stream_interrupted_and_no_done(
    sim, configure, devserver
) -> None:
    configure(sim, priorities={"eastus2": 0, "swedencentral": 1})
    east = sim.region("eastus2")
    east.fault("reset", after_chunks=3, count=2)
    client = openai.OpenAI(
        base_url=f"{devserver.base_url}/v1",
        api_key="unused",
        default_headers={"x-functions-key": FUNCTION_KEY},
        max_retries=0,
    )

    # Parsed: three chunks, then the SDK raises the error event as an APIError.
    chunks = []
    with pytest.raises(openai.APIError) as caught:
        for chunk in client.chat.completions.create(
            model="gpt-4o", messages=PROMPT, max_tokens=20, stream=True
        ):
            chunks.append(chunk)  # noqa: PERF402 - collects until the stream raises
    assert len(chunks) == 3 and not any(c.choices and c.choices[0].finish_reason for c in chunks)
    assert not isinstance(
        caught.value, openai.APIConnectionError
    )  # a well-formed error event, not a broken HTTP body
    assert (
        caught.value.body["code"] == "stream_interrupted"
        and caught.value.body["type"] == "upstream_error"
    )
    assert "eastus2" in caught.value.message

    # Raw: the last SSE event is the error; [DONE] never comes.
    with client.chat.completions.with_streaming_response.create(
        model="gpt-4o", messages=PROMPT, max_tokens=20, stream=True
    ) as raw:
        assert raw.http_response.status_code == 200
        assert raw.headers["x-gateway-region"] == "eastus2"
        events = [line[len("data: ") :] for line in raw.iter_lines() if line.startswith("data: ")]
    assert "[DONE]" not in events
    assert len(events) == 4
    last = json.loads(events[-1])
    assert set(last) == {"error"}
    assert last["error"]["code"] == "stream_interrupted" and last["error"]["correlation_id"]
    assert all("error" not in json.loads(e) for e in events[:-1])

    assert east.stats()["failures"]["reset_mid_stream"] == 2
    assert sim.region("swedencentral").stats()["requests"] == 0  # never retried mid-stream
