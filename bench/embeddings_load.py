"""One large embeddings call must not stall other calls (issue 10 finding 4).

Small chats are sent back to back through the same process (the same event loop) while one
2,048-input embeddings request goes through the real HTTP handler (``shared.api.embeddings``):
split into parts by ``max_inputs``, each part's ~8 MB body decoded, the parts merged, the answer
serialized. Reported: the chats' p50/p99 latency before and during the embeddings call (the
p99 *added* latency is the target, < 100 ms), and the process RSS before, at the peak and after
the call (memory should return to about the baseline).

Run: ``python -m bench.embeddings_load [--quick]`` (prints JSON).
"""

from __future__ import annotations

import asyncio
import gc
import json
import sys
import time
from typing import Any

from ._harness import SimProcess, gateway_regions, percentile, quiet_gateway_logs

INPUTS = 2048
MAX_INPUTS = 512  # per upstream call: 4 parts to decode and merge
CHAT_GAP_S = 0.01


def _rss_mb() -> float:
    import os

    with open("/proc/self/statm", encoding="ascii") as statm:  # Linux; no psutil needed
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def _request(body: bytes) -> Any:
    from starlette.requests import Request

    sent = False

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if sent:
            return {"type": "http.disconnect"}
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    scope = {
        "type": "http",
        "method": "POST",
        "path": "/api/v1/embeddings",
        "raw_path": b"/api/v1/embeddings",
        "query_string": b"",
        "headers": headers,
        "http_version": "1.1",
        "scheme": "http",
        "server": ("127.0.0.1", 7071),
        "client": ("127.0.0.1", 5000),
        "root_path": "",
    }
    return Request(scope, receive)


async def _measure(sim: SimProcess, embed_sim: SimProcess, quick: bool) -> dict[str, Any]:
    from shared import api
    from shared.aoai import CallContext, ChatRequest, Gateway
    from shared.settings import GatewaySettings

    table = gateway_regions(sim, [("primary", 0, "bench-chat", 10**9)], "gpt-4o")
    # A second simulator process: generating 2,048 vectors stalls the simulator's own loop,
    # which must not be mistaken for a stall of the gateway's.
    table += gateway_regions(
        embed_sim, [("primary", 0, "bench-embed", 10**9)], "text-embedding-3-small"
    )
    table[1]["name"] = "embeddings"
    table[1]["models"]["text-embedding-3-small"]["max_inputs"] = MAX_INPUTS
    settings = GatewaySettings(regions=table)
    gateway = Gateway(settings)

    class Services:
        def settings(self) -> GatewaySettings:
            return settings

        def gateway(self) -> Gateway:
            return gateway

    chat = ChatRequest(model="gpt-4o", messages=[{"role": "user", "content": "hi"}], max_tokens=2)

    async def chats(until: asyncio.Event, out: list[float]) -> None:
        while not until.is_set():
            started = time.perf_counter()
            await gateway.chat(chat, CallContext(correlation_id="small"))
            out.append(time.perf_counter() - started)
            await asyncio.sleep(CHAT_GAP_S)

    try:
        baseline: list[float] = []
        stop = asyncio.Event()
        task = asyncio.create_task(chats(stop, baseline))
        await asyncio.sleep(1.0 if quick else 3.0)
        stop.set()
        await task
        gc.collect()
        rss_before = _rss_mb()
        body = json.dumps(
            {
                "model": "text-embedding-3-small",
                "input": [f"text number {i}" for i in range(INPUTS)],
            }
        ).encode()
        during: list[float] = []
        stop = asyncio.Event()
        task = asyncio.create_task(chats(stop, during))
        peak = rss_before
        started = time.perf_counter()
        call = asyncio.create_task(api.embeddings(_request(body), Services()))
        while not call.done():
            peak = max(peak, _rss_mb())
            await asyncio.sleep(0.05)
        response = call.result()
        embed_s = time.perf_counter() - started
        stop.set()
        await task
        size = len(response.body)
        del response, call
        gc.collect()
        await asyncio.sleep(0.5)
        rss_after = _rss_mb()
        # A second identical call: if RSS settles where the first left it, what stays is the
        # allocator's retained arenas, not a leak.
        again = await api.embeddings(_request(body), Services())
        del again
        gc.collect()
        await asyncio.sleep(0.5)
        rss_after_second = _rss_mb()
    finally:
        await gateway.aclose()
    base_p99, during_p99 = percentile(baseline, 99), percentile(during, 99)
    return {
        "inputs": INPUTS,
        "parts": -(-INPUTS // MAX_INPUTS),
        "embeddings_call_s": round(embed_s, 2),
        "response_mb": round(size / 2**20, 1),
        "chats_baseline": len(baseline),
        "chats_during": len(during),
        "chat_p50_ms": {
            "baseline": round(percentile(baseline, 50) * 1000, 1),
            "during": round(percentile(during, 50) * 1000, 1),
        },
        "chat_p99_ms": {
            "baseline": round(base_p99 * 1000, 1),
            "during": round(during_p99 * 1000, 1),
        },
        "p99_added_ms": round((during_p99 - base_p99) * 1000, 1),
        "target_p99_added_ms": 100,
        "rss_mb": {
            "before": round(rss_before),
            "peak": round(peak),
            "after": round(rss_after),
            "after_second_call": round(rss_after_second),
        },
    }


def run(quick: bool = False) -> dict[str, Any]:
    dep_chat = {"name": "bench-chat", "model": "gpt-4o", "kind": "chat", "tpm": 10**9, "rpm": 10**9}
    dep_embed = {
        "name": "bench-embed",
        "model": "text-embedding-3-small",
        "kind": "embeddings",
        "tpm": 10**9,
        "rpm": 10**9,
    }
    with (
        quiet_gateway_logs(),
        SimProcess([{"name": "primary", "deployments": [dep_chat]}], log_name="el-chat") as sim,
        SimProcess(
            [{"name": "primary", "deployments": [dep_embed]}], log_name="el-embed"
        ) as embed_sim,
    ):
        measured = asyncio.run(_measure(sim, embed_sim, quick))
    return {"name": "embeddings_load", "quick": quick, **measured}


if __name__ == "__main__":
    print(json.dumps(run(quick="--quick" in sys.argv), indent=1))
