"""Usage accounting end to end: a mixed run of plain calls, streams, embeddings (through the
real function_app handlers, two callers) and backlog jobs (broker, worker) lands in the usage
table (Azurite) with the tokens the simulator reports having served, priced from the table."""

from __future__ import annotations

import csv
import io
import json
from typing import Any

import function_app
from shared import runtime
from tests.fixtures.devserver import settings_env
from tests.fixtures.gateway import settings_for_sim
from tests.functional.api._asgi import body_of, make_request

from .conftest import REGIONS

PRICES = {
    "currency": "EUR",
    "batch_discount": 0.5,
    "prices": {
        "gpt-4o": {"input": 2.5, "cached_input": 1.25, "output": 10.0},
        "text-embedding-3-small": {"input": 0.02, "output": 0.0},
    },
}
ALICE, BOB = "alice-function-key", "bob-function-key"


def _request(
    method: str,
    path: str,
    body: Any = b"",
    *,
    key: str | None = None,
    query: str = "",
    accept: str = "",
) -> Any:
    headers = {}
    if key:
        headers["x-functions-key"] = key
    if accept:
        headers["accept"] = accept
    request = make_request(method, path, body, headers)
    request.scope["query_string"] = query.encode()
    return request


async def _chat(key: str, *, stream: bool = False) -> dict[str, int]:
    body = {
        "model": "gpt-4o",
        "messages": [{"role": "user", "content": f"count me {key}"}],
        "max_tokens": 12,
    }
    if stream:
        body["stream"] = True
    response = await function_app.chat_completions(
        _request("POST", "/api/v1/chat/completions", body, key=key)
    )
    assert response.status_code == 200
    raw = await body_of(response)
    if not stream:
        return json.loads(raw)["usage"]
    events = [e for e in raw.split(b"\n\n") if e.startswith(b"data: {")]
    chunks = [json.loads(e[len(b"data: ") :]) for e in events]
    # The gateway asked upstream for usage on the caller's behalf and did not pass the chunk on.
    assert not any(c.get("usage") for c in chunks)
    return {}


def _served(sim: Any) -> tuple[int, int]:
    prompt = completion = 0
    for name in REGIONS:
        stats = sim.region(name).stats()
        prompt += stats["prompt_tokens"]
        completion += stats["completion_tokens"]
    return prompt, completion


async def test_usage_totals_equal_what_the_simulator_served_and_cost_follows_the_price_table(
    app_env, e2e_sim, azurite, sb_broker, harness_factory, unique_name
):
    settings = settings_for_sim(
        e2e_sim, regions=list(REGIONS), storage_connection=azurite.connection_string
    )
    app_env(
        {
            **settings_env(settings),
            "GATEWAY_USAGE_TABLE": unique_name("usage").replace("-", ""),
            "GATEWAY_USAGE_FLUSH_S": "0.2",
            "GATEWAY_PRICES": json.dumps(PRICES),
        }
    )
    gateway = runtime.gateway()
    harness = await harness_factory(sb_broker, gateway).start(timer=False)

    # Plain calls, streams and embeddings from two callers...
    for _ in range(2):
        await _chat(ALICE)
        await _chat(ALICE, stream=True)
    await _chat(BOB)
    await _chat(BOB, stream=True)
    emb = await function_app.embeddings(
        _request(
            "POST",
            "/api/v1/embeddings",
            {"model": "text-embedding-3-small", "input": ["a b c", "d e"]},
            key=BOB,
        )
    )
    assert emb.status_code == 200
    # ...and backlog jobs from a third.
    jobs = [
        harness.job(f"job {i}").model_copy(update={"caller": "principal:batch-svc"})
        for i in range(3)
    ]
    await harness.submit(*jobs)
    await harness.wait_terminal([j.job_id for j in jobs])

    report = await function_app.ops_usage(
        _request("GET", "/api/ops/usage", query="group_by=caller,alias")
    )
    assert report.status_code == 200
    body = json.loads(await body_of(report))
    prompt, completion = _served(e2e_sim)
    assert prompt > 0 and completion > 0
    assert body["total"]["input_tokens"] == prompt
    assert body["total"]["output_tokens"] == completion
    assert body["total"]["requests"] == 4 + 2 + 1 + 3
    callers = {row["caller"] for row in body["data"]}
    assert callers == {"principal:batch-svc", *(f"key:{_fp(k)}" for k in (ALICE, BOB))}

    expected_cost = 0.0
    for row in body["data"]:
        price = PRICES["prices"][row["alias"]]
        row_cost = (
            row["input_tokens"] * price["input"] + row["output_tokens"] * price["output"]
        ) / 1e6
        assert abs(row["cost"] - row_cost) < 1e-6, row
        expected_cost += row_cost
    assert abs(body["total"]["cost"] - expected_cost) < 1e-6 and body["currency"] == "EUR"
    assert body["total"]["unpriced_tokens"] == 0

    # A caller with a function key sees its own usage only.
    own = await function_app.usage(
        _request("GET", "/api/v1/usage", key=ALICE, query="group_by=alias")
    )
    own_body = json.loads(await body_of(own))
    assert own_body["scope"] == f"key:{_fp(ALICE)}"
    alice_rows = [r for r in body["data"] if r["caller"] == f"key:{_fp(ALICE)}"]
    assert own_body["total"]["total_tokens"] == sum(r["total_tokens"] for r in alice_rows)
    assert own_body["total"]["requests"] == 4

    # CSV on request, one row per group.
    as_csv = await function_app.ops_usage(
        _request("GET", "/api/ops/usage", query="group_by=deployment", accept="text/csv")
    )
    assert as_csv.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO((await body_of(as_csv)).decode())))
    assert sum(int(r["input_tokens"]) for r in rows) == prompt
    assert len({r["deployment"] for r in rows}) == len(rows)

    bad = await function_app.usage(_request("GET", "/api/v1/usage", query="group_by=planet"))
    assert (
        bad.status_code == 400
        and json.loads(await body_of(bad))["error"]["code"] == "invalid_parameter"
    )
    # A range no query may scan: refused before any read (one partition per hour of it).
    ancient = await function_app.usage(
        _request("GET", "/api/v1/usage", query="from=0001-01-01&to=2026-01-01")
    )
    error = json.loads(await body_of(ancient))["error"]
    assert ancient.status_code == 400 and error["code"] == "invalid_parameter"
    assert error["param"] == "from" and "366 days" in error["message"]


def _fp(key: str) -> str:
    import hashlib

    return hashlib.sha256(key.encode()).hexdigest()[:12]
