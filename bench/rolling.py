"""Rolling window: upstream 429s when the upstream counts requests over a rolling window.

An upstream that counts requests over the last 10 s (not fixed windows) and sends its
remaining/reset headers only on a 429 never tells the gateway a window phase. Here the
simulator plays it (``limit_window: "rolling"``) and ``WORKERS`` callers keep the in-process
gateway (real openai SDK over HTTP) above the deployment's RPM for ``WINDOWS`` request windows:

* ``rolling+ledger``: the gateway as deployed, with the quota ledger on Azurite (its leases
  follow the gateway's own fixed windows);
* ``rolling``: the same without the ledger (per-instance pacing only);
* ``fixed`` (baseline): the same load against the simulator's fixed windows, which send reset
  headers on every answer (the phase is learned).

Reported per arm: the simulator's attempts and 429s, the calls served per request window
against the limit (a ratio: the machine is shared, so absolute rates are indicative only).
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from ._backlog import Azurite, backlog_available
from ._harness import SimProcess, gateway_regions, machine_info, quiet_gateway_logs

__all__ = ["run"]

ALIAS = "gpt-4o"
REGION = "solo"
DEPLOYMENT = "bench-chat"
TPM = 10_000_000  # tokens never bind: requests do
RPM = 360  # 60 requests per 10-second window
WORKERS = 16
TARGET_429 = 0.005


def _regions(window: str) -> list[dict[str, Any]]:
    return [
        {
            "name": REGION,
            "limit_window": window,
            "deployments": [
                {"name": DEPLOYMENT, "model": ALIAS, "kind": "chat", "tpm": TPM, "rpm": RPM}
            ],
        }
    ]


async def _load(gateway: Any, seconds: float) -> dict[str, int]:
    from shared.aoai import AllThrottled, CallContext, ChatRequest, DeadlineExceeded

    outcomes = {"ok": 0, "throttled": 0, "deadline": 0}
    end = time.monotonic() + seconds
    request = ChatRequest(model=ALIAS, messages=[{"role": "user", "content": "hi"}], max_tokens=5)

    async def caller(n: int) -> None:
        while time.monotonic() < end:
            try:
                await gateway.chat(request, CallContext(correlation_id=f"rolling-{n}"))
                outcomes["ok"] += 1
            except AllThrottled:
                outcomes["throttled"] += 1
                await asyncio.sleep(0.05)
            except DeadlineExceeded:
                outcomes["deadline"] += 1

    await asyncio.gather(*(caller(n) for n in range(WORKERS)))
    return outcomes


async def _arm(sim: SimProcess, minute_s: float, windows: int, storage: str | None) -> dict:
    from shared.runtime import build_gateway
    from shared.settings import GatewaySettings

    values: dict[str, Any] = {
        "regions": gateway_regions(sim, [(REGION, 0, DEPLOYMENT, TPM)], ALIAS, rpm={REGION: RPM}),
        "quota_minute_s": minute_s,
        "throttle_wait_s": 2 * minute_s / 6,  # a call waits for our pacing rather than fail
        "call_deadline_s": 60.0,
    }
    if storage is None:
        values["ledger_enabled"] = False
    else:
        values |= {
            "storage_connection": storage,
            "ledger_table": f"ledger{int(time.time() * 1000)}",
            "health_table": f"health{int(time.time() * 1000)}",
            "ledger_timeout_s": 15.0,  # a slow Azurite on a busy machine is not a lost table
        }
    gateway = build_gateway(GatewaySettings.model_validate(values))
    try:
        started = time.monotonic()
        outcomes = await _load(gateway, windows * minute_s / 6)
        elapsed = time.monotonic() - started
        ledger = gateway.health_report().get("ledger") or {}
    finally:
        await gateway.aclose()
    stats = sim.stats(REGION)
    deployment = stats.get("deployments", {}).get(DEPLOYMENT, {})
    attempts = int(deployment.get("requests", stats.get("requests", 0)))
    throttled = int(deployment.get("throttled", stats.get("throttled", 0)))
    limit = RPM // 6
    served_per_window = outcomes["ok"] / (elapsed / (minute_s / 6))
    quota = ledger.get("deployments", {}).get(f"deployment/{REGION}/{DEPLOYMENT}", {})
    return {
        **outcomes,
        "attempts": attempts,
        "upstream_429": throttled,
        "share_429": round(throttled / attempts, 4) if attempts else None,
        "served_per_window": round(served_per_window, 1),
        "served_vs_limit": round(served_per_window / limit, 3),
        "elapsed_s": round(elapsed, 1),
        "ledger": None if storage is None else ledger.get("mode"),
        "phase_known": quota.get("phase_known") if storage is not None else None,
    }


def run(quick: bool = False) -> dict[str, Any]:
    started = time.monotonic()
    minute_s = 30.0 if quick else 60.0
    windows = 4 if quick else 8
    result: dict[str, Any] = {
        "name": "rolling",
        "quick": quick,
        "setup": {
            "rpm": RPM,
            "requests_per_window": RPM // 6,
            "request_window_s": minute_s / 6,
            "windows": windows,
            "workers": WORKERS,
        },
        "load_before": machine_info()["loadavg"],
    }
    arms: dict[str, Any] = {}
    why_not = backlog_available()
    with quiet_gateway_logs():
        for name, window, ledger in (
            ("fixed", "fixed", False),
            ("rolling", "rolling", False),
            ("rolling+ledger", "rolling", True),
        ):
            if ledger and why_not is not None:
                arms[name] = {"skipped": why_not}
                continue
            with SimProcess(_regions(window), minute_seconds=minute_s, log_name=name) as sim:
                sim.reset()
                if ledger:
                    with Azurite() as azurite:
                        arms[name] = asyncio.run(
                            _arm(sim, minute_s, windows, azurite.connection_string)
                        )
                else:
                    arms[name] = asyncio.run(_arm(sim, minute_s, windows, None))
    result["arms"] = arms
    result["load_after"] = machine_info()["loadavg"]
    result["targets"] = [
        {
            "what": f"upstream 429 share against a rolling-window upstream ({name})",
            "target": f"<= {TARGET_429 * 100:.1f} %",
            "measured": round((arm["share_429"] or 0) * 100, 2),
            "unit": "%",
            "met": (arm["share_429"] or 0) <= TARGET_429,
        }
        for name, arm in arms.items()
        if name != "fixed" and "skipped" not in arm
    ]
    parts = []
    for name, arm in arms.items():
        if "skipped" in arm:
            parts.append(f"{name} skipped ({arm['skipped']})")
            continue
        share = (arm["share_429"] or 0) * 100
        parts.append(
            f"{name} {arm['upstream_429']}/{arm['attempts']} 429 ({share:.2f} %), "
            f"served {arm['served_vs_limit']}x the limit"
        )
    result["summary"] = "rolling: " + "; ".join(parts)
    result["elapsed_s"] = round(time.monotonic() - started, 1)
    return result
