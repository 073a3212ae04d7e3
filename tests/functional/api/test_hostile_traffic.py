"""20 hostile requests of each kind on each front door, then normal traffic is unaffected.

Through the dev server (real HTTP) to the real simulator, on the OpenAI routes (``/api/v1``:
OpenAI's error shape, the gateway's code) and on the Azure-shaped routes (``/api/openai/...``:
Azure's error shape and code, the gateway's code in ``gateway_code``). Asserted: every hostile request gets
its 4xx, no circuit opened or counted a failure, no deployment cooled or exhausted, nothing
hostile reached a region. The p99 latency of concurrent normal calls before and after is
reported (not asserted: timing on a shared machine is noise)."""

from __future__ import annotations

import json
import statistics
import time
from concurrent.futures import ThreadPoolExecutor

import httpx

from tests.functional.api.conftest import FUNCTION_KEY

HEADERS = {"x-functions-key": FUNCTION_KEY, "content-type": "application/json"}
NORMAL = {"model": "gpt-4o", "messages": [{"role": "user", "content": "hello"}], "max_tokens": 5}


def _msg(content: str, **extra) -> bytes:
    return json.dumps(
        {"model": "gpt-4o", "messages": [{"role": "user", "content": content}], **extra}
    ).encode()


HOSTILE: dict[str, tuple[str, bytes, int, str]] = {
    # kind: (path, raw body, status, code)
    "lone_surrogate_chat": (
        "/v1/chat/completions",
        b'{"model":"gpt-4o","messages":[{"role":"user","content":"cut \\ud83d"}]}',
        400,
        "invalid_request",
    ),
    "lone_surrogate_embeddings": (
        "/v1/embeddings",
        b'{"model":"text-embedding-3-small","input":["ok","\\udc00"]}',
        400,
        "invalid_request",
    ),
    "max_tokens_1e9": (
        "/v1/chat/completions",
        _msg("hi", max_tokens=1_000_000_000),
        400,
        "request_too_large",
    ),
    "n_128_no_cap": ("/v1/chat/completions", _msg("hi", n=128), 400, "request_too_large"),
    "huge_prompt": (
        "/v1/chat/completions",
        _msg("x" * 1_900_000, max_tokens=5),
        400,
        "request_too_large",
    ),
    "10000_inputs": (
        "/v1/embeddings",
        json.dumps({"model": "text-embedding-3-small", "input": ["word"] * 10_000}).encode(),
        400,
        "too_many_inputs",
    ),
    "forged_model_newline": (
        "/v1/chat/completions",
        json.dumps({**NORMAL, "model": "gpt-4o\nERROR forged"}).encode(),
        404,
        "model_not_found",
    ),
}


# Azure's code for each gateway code seen above (shared/api/_azure_errors.AZURE_CODES)
AZURE_CODE = {
    "invalid_request": "BadRequest",
    "request_too_large": "BadRequest",
    "too_many_inputs": "too_many_inputs",
    "model_not_found": "DeploymentNotFound",
}


def _azure_path(path: str, body: bytes, versioned: bool) -> str:
    """The same request on an Azure-shaped route: the v1 API (model in the body), or the
    deployment route (``{name}`` from the body's model, with a dated api-version)."""
    kind = path.rsplit("/", 1)[-1] if "embeddings" in path else "chat/completions"
    if not versioned:
        return f"/openai/v1/{kind}"
    model = json.loads(body)["model"]
    return f"/openai/deployments/{model}/{kind}?api-version=2024-10-21"


def _azure_hostile() -> dict[str, tuple[str, bytes, int, str, str]]:
    out: dict[str, tuple[str, bytes, int, str, str]] = {}
    for kind, (path, body, status, code) in HOSTILE.items():
        # a model name with a newline cannot be put into a URL path: v1 only
        for versioned in (False,) if kind == "forged_model_newline" else (False, True):
            name = f"azure_{'deployment' if versioned else 'v1'}_{kind}"
            out[name] = (_azure_path(path, body, versioned), body, status, AZURE_CODE[code], code)
    # a lone surrogate in a value the route rewrites next to it (the body's ``model``) is the
    # same 400: the body is re-serialized with the alias before it is checked
    out["azure_v1_lone_surrogate_model"] = (
        "/openai/v1/chat/completions",
        b'{"model":"gpt-4o\\ud800","messages":[{"role":"user","content":"hi"}]}',
        400,
        "BadRequest",
        "invalid_request",
    )
    return out


AZURE_HOSTILE = _azure_hostile()


def _p99(samples: list[float]) -> float:
    return sorted(samples)[max(0, int(len(samples) * 0.99) - 1)]


def _normal_burst(base: str, count: int = 20) -> list[float]:
    def one(_: int) -> float:
        started = time.perf_counter()
        response = httpx.post(
            f"{base}/v1/chat/completions", json=NORMAL, headers=HEADERS, timeout=60
        )
        assert response.status_code == 200, response.text
        return (time.perf_counter() - started) * 1000.0

    with ThreadPoolExecutor(4) as pool:
        return list(pool.map(one, range(count)))


def test_hostile_requests_leave_normal_traffic_unaffected(
    sim, configure, devserver, record_property
):
    configure(sim, circuit_failure_threshold=3, circuit_cooloff_s=30.0)
    base = devserver.base_url
    _normal_burst(base, 4)  # warm up: clients, connections, the first settings load
    before = _normal_burst(base)
    seen = {name: region.stats()["requests"] for name, region in sim.regions.items()}
    for kind, (path, body, status, code) in HOSTILE.items():
        for _ in range(20):
            response = httpx.post(f"{base}{path}", content=body, headers=HEADERS, timeout=60)
            assert response.status_code == status, (kind, response.text[:300])
            assert response.json()["error"]["code"] == code, kind
    for kind, (path, body, status, code, gateway_code) in AZURE_HOSTILE.items():
        for _ in range(20):
            response = httpx.post(f"{base}{path}", content=body, headers=HEADERS, timeout=60)
            assert response.status_code == status, (kind, response.text[:300])
            error = response.json()["error"]
            assert error["code"] == code, (kind, error)
            assert error.get("gateway_code", code) == gateway_code, (kind, error)
    # Nothing hostile reached a region.
    assert {name: region.stats()["requests"] for name, region in sim.regions.items()} == seen
    details = httpx.get(f"{base}/health/details", headers=HEADERS, timeout=10).json()
    assert details["status"] == "ok" and details["regions_down"] == []
    assert details["deployments_degraded"] == []
    for name, region in details["gateway"]["regions"].items():
        assert region["circuit"]["state"] == "closed", name
        assert region["circuit"]["consecutive_failures"] == 0, name
        for dep_name, dep in region["deployments"].items():
            assert dep["state"] == "ok", (name, dep_name)
            assert dep["cooling_until"] is None and dep["exhausted_until"] is None
    after = _normal_burst(base)
    record_property("p99_before_ms", round(_p99(before), 1))
    record_property("p99_after_ms", round(_p99(after), 1))
    print(
        f"normal calls: p99 {_p99(before):.1f} ms before, {_p99(after):.1f} ms after "
        f"(median {statistics.median(before):.1f} / {statistics.median(after):.1f} ms)"
    )
