"""Memory: peak RSS while ``STREAMS`` concurrent streaming chat requests pass through the gateway.

Three measurements in one run, against one simulator whose streams last about a second
(``TOKENS`` tokens at ``PER_TOKEN_MS``), so all of them are open at once:

* ``gateway`` (in-process): a fresh ``python -m bench.memory --child gateway`` process builds the
  access layer and holds ``STREAMS`` ``open_chat_stream`` streams at once, reading every chunk.
* ``sdk`` (in-process baseline): a fresh child process does the same with the bare openai SDK
  (``AsyncOpenAI(...).chat.completions.create(stream=True)``).
* ``devserver`` (process RSS): the dev server, serving the streams over HTTP (SSE) to callers in
  the benchmark process; its RSS is sampled from outside, the baseline is its RSS at rest after
  one warm-up stream.

Peak RSS is sampled every ``SAMPLE_S`` with psutil; ``delta`` is peak minus the RSS just before
the streams were opened (imports, clients and one warm-up stream already done).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import threading
import time
from typing import Any

from ._harness import API_KEY, PY, ROOT, DevServer, SimProcess, child_env, gateway_regions

__all__ = ["run"]

ALIAS = "gpt-4o"
DEPLOYMENT = "bench-chat"
STREAMS = 200
TOKENS = 100
PER_TOKEN_MS = 40.0
SAMPLE_S = 0.02
MESSAGES = [{"role": "user", "content": "Stream a short paragraph, please."}]


class _Peak:
    """Samples one process's RSS from a thread until stopped."""

    def __init__(self, pid: int) -> None:
        import psutil

        self._proc = psutil.Process(pid)
        self._stop = threading.Event()
        self.base = self._proc.memory_info().rss
        self.peak = self.base
        self._thread = threading.Thread(target=self._loop, name="rss", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        for _ in range(100_000):
            if self._stop.wait(SAMPLE_S):
                break
            try:
                self.peak = max(self.peak, self._proc.memory_info().rss)
            except Exception:  # noqa: BLE001 - the process may be gone
                break

    def stop(self) -> dict[str, float]:
        self._stop.set()
        self._thread.join(timeout=5)
        mib = 1024 * 1024
        return {
            "base_mib": round(self.base / mib, 1),
            "peak_mib": round(self.peak / mib, 1),
            "delta_mib": round((self.peak - self.base) / mib, 1),
        }


async def _consume_sdk(client: Any, model: str) -> int:
    stream = await client.chat.completions.create(
        model=model, messages=MESSAGES, max_tokens=TOKENS, stream=True
    )
    chunks = 0
    async for _ in stream:
        chunks += 1
    return chunks


async def _child_gateway(endpoint: str) -> dict[str, Any]:
    import os

    from shared.aoai import CallContext, ChatRequest, Gateway
    from shared.settings import GatewaySettings

    table = [
        {
            "name": "solo",
            "endpoint": endpoint,
            "priority": 0,
            "auth": "api_key",
            "api_key": API_KEY,
            "api_style": "v1",
            "models": {ALIAS: {"deployment": DEPLOYMENT, "tpm": 10**9, "rpm": 10**9}},
        }
    ]
    gateway = Gateway(GatewaySettings(regions=table))

    async def one() -> int:
        stream = await gateway.open_chat_stream(
            ChatRequest(model=ALIAS, messages=MESSAGES, max_tokens=TOKENS, stream=True),
            CallContext(correlation_id="mem"),
        )
        chunks = 0
        try:
            async for _ in stream:
                chunks += 1
        finally:
            await stream.aclose()
        return chunks

    await one()
    peak = _Peak(os.getpid())
    counts = await asyncio.gather(*(one() for _ in range(STREAMS)))
    rss = peak.stop()
    await gateway.aclose()
    return {**rss, "streams": len(counts), "chunks": sum(counts)}


async def _child_sdk(endpoint: str) -> dict[str, Any]:
    import os

    from ._peers import v1_sdk

    client = v1_sdk(endpoint, max_retries=0)
    await _consume_sdk(client, DEPLOYMENT)
    peak = _Peak(os.getpid())
    counts = await asyncio.gather(*(_consume_sdk(client, DEPLOYMENT) for _ in range(STREAMS)))
    rss = peak.stop()
    await client.close()
    return {**rss, "streams": len(counts), "chunks": sum(counts)}


def _child(kind: str, endpoint: str) -> dict[str, Any]:
    out = subprocess.run(
        [PY, "-m", "bench.memory", "--child", kind, "--endpoint", endpoint],
        cwd=ROOT,
        env=child_env(),
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    if out.returncode != 0:
        raise RuntimeError(f"memory child {kind} failed: {out.stderr.strip()[-800:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


async def _devserver(dev: DevServer) -> dict[str, Any]:
    from openai import AsyncOpenAI

    client = AsyncOpenAI(base_url=dev.base_url, api_key=API_KEY, max_retries=0, timeout=60)
    try:
        await _consume_sdk(client, ALIAS)
        assert dev.proc is not None
        peak = _Peak(dev.proc.pid)
        counts = await asyncio.gather(*(_consume_sdk(client, ALIAS) for _ in range(STREAMS)))
        rss = peak.stop()
    finally:
        await client.close()
    return {**rss, "streams": len(counts), "chunks": sum(counts)}


def run(quick: bool = False) -> dict[str, Any]:
    started = time.monotonic()
    regions = [
        {
            "name": "solo",
            "deployments": [
                {"name": DEPLOYMENT, "model": "gpt-4o", "kind": "chat", "tpm": 10**9, "rpm": 10**9}
            ],
        }
    ]
    result: dict[str, Any] = {
        "name": "memory",
        "quick": quick,
        "streams": STREAMS,
        "setup": {"tokens_per_stream": TOKENS, "per_token_ms": PER_TOKEN_MS, "sample_s": SAMPLE_S},
    }
    with SimProcess(
        regions, latency={"ttft_ms": 20.0, "per_token_ms": PER_TOKEN_MS}, log_name="memory"
    ) as sim:
        endpoint = sim.endpoint("solo")
        arms: dict[str, Any] = {}
        for kind in ("sdk", "gateway"):
            sim.reset()
            arms[kind] = _child(kind, endpoint)
            arms[kind]["sim_max_in_flight"] = sim.stats("solo").get("max_in_flight")
        sim.reset()
        env = {
            "GATEWAY_REGIONS": json.dumps(
                gateway_regions(sim, [("solo", 0, DEPLOYMENT, 10**9)], ALIAS)
            ),
            "FUNCTIONS_WORKER_RUNTIME": "python",
            "PYTHON_ENABLE_INIT_INDEXING": "1",
        }
        try:
            with DevServer(env) as dev:
                arms["devserver"] = asyncio.run(_devserver(dev))
                arms["devserver"]["sim_max_in_flight"] = sim.stats("solo").get("max_in_flight")
        except Exception as exc:  # noqa: BLE001 - reported; the in-process figures still count
            arms["devserver"] = {"error": f"{type(exc).__name__}: {exc}"}
    result["arms"] = arms
    g, s = arms["gateway"], arms["sdk"]
    result["peak_ratio_gateway_vs_sdk"] = round(g["peak_mib"] / s["peak_mib"], 2)
    result["delta_ratio_gateway_vs_sdk"] = (
        round(g["delta_mib"] / s["delta_mib"], 2) if s["delta_mib"] > 0 else None
    )
    result["targets"] = []  # the issue sets no memory target; reported for comparison
    dev = arms.get("devserver", {})
    dev_text = (
        f"; dev server {dev['base_mib']} -> {dev['peak_mib']} MiB (+{dev['delta_mib']})"
        if "peak_mib" in dev
        else f"; dev server not measured ({dev.get('error', '')[:60]})"
    )
    result["summary"] = (
        f"memory: {STREAMS} concurrent streams, in-process peak RSS gateway {g['peak_mib']} MiB (+{g['delta_mib']}) vs "
        f"SDK {s['peak_mib']} MiB (+{s['delta_mib']}) = {result['peak_ratio_gateway_vs_sdk']}x peak, "
        f"{result['delta_ratio_gateway_vs_sdk']}x growth{dev_text}"
    )
    result["elapsed_s"] = round(time.monotonic() - started, 1)
    return result


def _main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.memory")
    parser.add_argument("--child", choices=("gateway", "sdk"), required=True)
    parser.add_argument("--endpoint", required=True)
    args = parser.parse_args(argv)
    runner = _child_gateway if args.child == "gateway" else _child_sdk
    print(json.dumps(asyncio.run(runner(args.endpoint))))
    return 0


if __name__ == "__main__":
    sys.exit(_main())
