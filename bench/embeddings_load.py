"""One large embeddings call must not stall other calls nor keep memory (issue 10 finding 4).

A dev server (``python -m devserver --http-only``, its own process) serves two simulators: one
for small chats, one for embeddings (generating 2,048 vectors stalls the simulator's own loop,
which must not be mistaken for a stall of the gateway's). Small chats are sent back to back
over HTTP while one 2,048-input embeddings request goes through the dev server, split by
``max_inputs`` into ``INPUTS / MAX_INPUTS`` upstream calls; once asking for floats, once for
base64. The caller reads the answer as bytes and counts them (decoding it would stall the
benchmark's own loop, where the chats are timed).

Reported per encoding: the chats' p50/p99 before and during the call (the p99 *added* latency
is the target, < 100 ms), and the dev server's RSS (psutil, from outside) before the call, at
its peak, right after it, and settled (``SETTLE_S`` later: memory should return to about the
baseline).

Run: ``python -m bench --only embeddings_load [--quick]`` or ``python -m bench.embeddings_load``.
"""

from __future__ import annotations

import asyncio
import json
import sys
import threading
import time
from typing import Any

from ._harness import DevServer, SimProcess, gateway_regions, percentile

__all__ = ["run"]

INPUTS = 2048
MAX_INPUTS = 512  # per upstream call: 4 parts to decode and merge
CHAT_GAP_S = 0.01
SAMPLE_S = 0.02
TARGET_P99_ADDED_MS = 100


class _RSS:
    """Samples one process's RSS (MiB) from a thread; ``peak`` since the last ``reset``."""

    def __init__(self, pid: int) -> None:
        import psutil

        self._proc = psutil.Process(pid)
        self._stop = threading.Event()
        self.peak = self.now()
        self._thread = threading.Thread(target=self._loop, name="rss", daemon=True)
        self._thread.start()

    def now(self) -> float:
        return self._proc.memory_info().rss / 2**20

    def reset(self) -> float:
        self.peak = self.now()
        return self.peak

    def _loop(self) -> None:
        while not self._stop.wait(SAMPLE_S):
            try:
                self.peak = max(self.peak, self.now())
            except Exception:  # noqa: BLE001 - the process is gone: stop sampling
                return

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)


async def _chats(client: Any, until: asyncio.Event, out: list[float]) -> None:
    body = {"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 2}
    while not until.is_set():
        started = time.perf_counter()
        response = await client.post("/chat/completions", json=body)
        response.raise_for_status()
        out.append(time.perf_counter() - started)
        await asyncio.sleep(CHAT_GAP_S)


async def _embed(client: Any, encoding: str, inputs: int) -> tuple[int, int]:
    """One embeddings call; (status, bytes of the answer) read without decoding."""
    body = {
        "model": "text-embedding-3-small",
        "input": [f"text number {i}" for i in range(inputs)],
        "encoding_format": encoding,
    }
    size = 0
    async with client.stream("POST", "/embeddings", json=body) as response:
        async for chunk in response.aiter_bytes():
            size += len(chunk)
    return response.status_code, size


async def _one_call(client: Any, rss: _RSS, encoding: str, settle_s: float) -> dict[str, Any]:
    baseline: list[float] = []
    stop = asyncio.Event()
    task = asyncio.create_task(_chats(client, stop, baseline))
    await asyncio.sleep(2.0)
    stop.set()
    await task
    before = rss.reset()
    during: list[float] = []
    stop = asyncio.Event()
    task = asyncio.create_task(_chats(client, stop, during))
    started = time.perf_counter()
    status, size = await _embed(client, encoding, INPUTS)
    call_s = time.perf_counter() - started
    stop.set()
    await task
    peak = rss.peak
    await asyncio.sleep(0.5)
    after = rss.now()
    await asyncio.sleep(settle_s)
    settled = rss.now()
    base_p99, during_p99 = percentile(baseline, 99), percentile(during, 99)
    return {
        "status": status,
        "call_s": round(call_s, 2),
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
        "rss_mib": {
            "before": round(before),
            "peak": round(peak),
            "after": round(after),
            "settled": round(settled),
        },
    }


async def _measure(dev: DevServer, settle_s: float) -> dict[str, Any]:
    import httpx

    assert dev.proc is not None
    rss = _RSS(dev.proc.pid)
    limits = httpx.Limits(max_connections=8)
    try:
        async with httpx.AsyncClient(base_url=dev.base_url, timeout=120.0, limits=limits) as client:
            # Warm-up: imports, clients and one small call of each kind are done before measuring.
            await _embed(client, "float", 8)
            await _chats_once(client)
            rss.reset()
            return {
                encoding: await _one_call(client, rss, encoding, settle_s)
                for encoding in ("float", "base64")
            }
    finally:
        rss.stop()


async def _chats_once(client: Any) -> None:
    body = {"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 2}
    (await client.post("/chat/completions", json=body)).raise_for_status()


def run(quick: bool = False) -> dict[str, Any]:
    started = time.monotonic()
    dep_chat = {"name": "bench-chat", "model": "gpt-4o", "kind": "chat", "tpm": 10**9, "rpm": 10**9}
    dep_embed = {
        "name": "bench-embed",
        "model": "text-embedding-3-small",
        "kind": "embeddings",
        "tpm": 10**9,
        "rpm": 10**9,
    }
    settle_s = 3.0 if quick else 10.0
    with (
        SimProcess([{"name": "primary", "deployments": [dep_chat]}], log_name="el-chat") as sim,
        SimProcess(
            [{"name": "primary", "deployments": [dep_embed]}], log_name="el-embed"
        ) as embed_sim,
    ):
        table = gateway_regions(sim, [("primary", 0, "bench-chat", 10**9)], "gpt-4o")
        table += gateway_regions(
            embed_sim, [("primary", 0, "bench-embed", 10**9)], "text-embedding-3-small"
        )
        table[1]["name"] = "embeddings"
        table[1]["models"]["text-embedding-3-small"]["max_inputs"] = MAX_INPUTS
        env = {
            "GATEWAY_REGIONS": json.dumps(table),
            "FUNCTIONS_WORKER_RUNTIME": "python",
            "PYTHON_ENABLE_INIT_INDEXING": "1",
        }
        with DevServer(env) as dev:
            measured = asyncio.run(_measure(dev, settle_s))
    worst = max(m["p99_added_ms"] for m in measured.values())
    f, b = measured["float"]["rss_mib"], measured["base64"]["rss_mib"]
    summary = (
        f"embeddings_load: {INPUTS} inputs through the dev server; chat p99 added "
        f"float {measured['float']['p99_added_ms']} ms, base64 {measured['base64']['p99_added_ms']} ms "
        f"(target < {TARGET_P99_ADDED_MS}); dev server RSS float {f['before']} -> peak {f['peak']} -> "
        f"settled {f['settled']} MiB, base64 {b['before']} -> peak {b['peak']} -> settled {b['settled']} MiB"
    )
    return {
        "name": "embeddings_load",
        "quick": quick,
        "inputs": INPUTS,
        "parts": -(-INPUTS // MAX_INPUTS),
        "settle_s": settle_s,
        "encodings": measured,
        "worst_p99_added_ms": worst,
        "targets": [
            {
                "what": "small chats' p99 added latency during a 2,048-input embeddings call",
                "target": f"< {TARGET_P99_ADDED_MS} ms",
                "measured": worst,
                "unit": "ms",
                "met": worst < TARGET_P99_ADDED_MS,
            }
        ],
        "summary": summary,
        "elapsed_s": round(time.monotonic() - started, 1),
    }


if __name__ == "__main__":
    print(json.dumps(run(quick="--quick" in sys.argv), indent=1))
