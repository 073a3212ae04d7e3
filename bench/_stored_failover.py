"""The failover benchmark's Responses API part: conversations with stored state, reported apart.

A response is stored by the region that produced it, so a conversation continued with
``previous_response_id`` can only be served there: while that region is down the gateway answers
503 ``response_region_unavailable`` (expected, and not a failure), and it must never send the turn
to another region (which would answer a 404 at best). Requests without stored-state references
(``store: false`` with the full input, and the first turn of a conversation) stay free to fail
over, and must not fail while the secondary is healthy.

The gateway runs as the dev server (the Responses API is served by its HTTP layer), with the
primary at priority 0 and the secondary at 1, the failover benchmark's circuit settings and
default timeouts, against its own two-region simulator going through the same timeline as the
chat contenders (healthy -> reset -> hang -> recovered). Callers use the openai SDK
(``AsyncOpenAI`` on ``/api/v1``, no SDK retries):

* ``CONVERSATIONS`` callers each hold a conversation of up to ``TURNS`` turns: the first without
  ``previous_response_id`` (routed, free to fail over), each later one continuing the last
  answer (all of them non-streaming requests). A turn refused with ``response_region_unavailable`` is handled as the error's message
  suggests, both ways: half the callers start over with a new conversation (which fails over),
  the other half wait ``RETRY_WAIT_S`` and send the same turn again until its region is back
  (``resumed``: the retried turns served there afterwards). Any other failure ends the
  conversation and the caller starts over.
* ``STATELESS`` callers send ``store: false`` requests with the full input.

Each answer's ``x-gateway-region`` header says which region served it; a continuation served by
any region but the one that holds its conversation (where turn one was served) is counted as
served elsewhere. A holding region counts as down from the faults' start until it serves a request
again after they end (the gateway's circuit reopens it on its first successful probe).
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass
from typing import Any

from ._harness import API_KEY, Budget, DevServer, SimProcess, gateway_regions, percentile

__all__ = ["stored_state", "stored_state_line", "stored_state_targets"]

ALIAS = "gpt-4o"
CONVERSATIONS = 4  # even-numbered ones start over when refused, odd-numbered ones wait
RETRY_WAIT_S = 0.5
STATELESS = 2
TURNS = 30  # long enough for a conversation to outlive a fail-back and stay where it is stored
THINK_S = 0.05
MAX_OUTPUT = 16
TIMEOUT_S = 60.0
EXPECTED = "503 response_region_unavailable"


@dataclass(frozen=True)
class Turn:
    """One request: when it started and ended (s from t0), what kind, how it ended, where."""

    start: float
    end: float
    kind: str  # "first", "continuation" or "stateless"
    error: str | None
    region: str | None  # the region that served it (x-gateway-region)
    home: str | None  # for a continuation, the region holding its conversation
    retry: bool = False  # a continuation sent again after a refusal


def _error_kind(exc: BaseException) -> str:
    import openai

    if isinstance(exc, openai.APIStatusError):
        body = exc.body if isinstance(exc.body, dict) else {}
        return f"{exc.status_code} {body.get('code') or 'error'}"
    return type(exc).__name__


def _settings_env(
    sim: SimProcess, deployment: str, threshold: int, cooloff_s: float
) -> dict[str, str]:
    table = gateway_regions(
        sim, [("primary", 0, deployment, 10**9), ("secondary", 1, deployment, 10**9)], ALIAS
    )
    return {
        "GATEWAY_REGIONS": json.dumps(table),
        "GATEWAY_CIRCUIT_FAILURE_THRESHOLD": str(threshold),
        "GATEWAY_CIRCUIT_COOLOFF_S": str(cooloff_s),
        "FUNCTIONS_WORKER_RUNTIME": "python",
        "PYTHON_ENABLE_INIT_INDEXING": "1",
    }


async def _drive(
    sim: SimProcess, base_url: str, phases: dict[str, float], sample_s: float
) -> tuple[list[Turn], list[tuple[float, int]]]:
    """The callers and the fault timeline; returns every request and the primary's served count
    sampled every ``sample_s`` (for the time it serves again after the faults)."""
    from openai import AsyncOpenAI

    client = AsyncOpenAI(
        base_url=base_url,
        api_key=API_KEY,
        max_retries=0,
        timeout=TIMEOUT_S,
        default_headers={"x-functions-key": "local"},
    )
    fault_at = phases["healthy"]
    hang_at = fault_at + phases["reset"]
    end_at = hang_at + phases["hang"] + phases["recovered"]
    budget = Budget(end_at + 2 * TIMEOUT_S)
    turns: list[Turn] = []
    served: list[tuple[float, int]] = []
    t0 = time.monotonic()

    def now() -> float:
        return time.monotonic() - t0

    async def send(kind: str, home: str | None, retry: bool = False, **body: Any) -> Any:
        start, region, error, value = now(), None, None, None
        try:
            raw = await client.responses.with_raw_response.create(
                model=ALIAS, max_output_tokens=MAX_OUTPUT, **body
            )
            value, region = raw.parse(), raw.headers.get("x-gateway-region")
        except Exception as exc:  # noqa: BLE001 - a caller-visible error, classified
            error = _error_kind(exc)
        turns.append(Turn(start, now(), kind, error, region, home, retry))
        return value

    async def turn(home: str | None, n: int, previous: str, patient: bool) -> Any:
        """One continuation; a patient caller sends it again while its region is refused."""
        retry = False
        while True:
            reply = await send(
                "continuation", home, retry, input=f"Turn {n}.", previous_response_id=previous
            )
            if reply is not None or not patient or turns[-1].error != EXPECTED:
                return reply
            await asyncio.sleep(RETRY_WAIT_S)
            if now() >= end_at or budget.expired():
                return None
            retry = True

    async def conversation(patient: bool) -> None:
        while now() < end_at and not budget.expired():
            first = await send("first", None, input="Failover probe: a conversation begins.")
            if first is None:
                await asyncio.sleep(THINK_S)
                continue
            home, previous = turns[-1].region, first.id
            for n in range(2, TURNS + 1):
                await asyncio.sleep(THINK_S)
                if now() >= end_at:
                    return
                reply = await turn(home, n, previous, patient)
                if reply is None:
                    break  # refused or failed: start over with a new conversation
                previous = reply.id
            await asyncio.sleep(THINK_S)

    async def stateless() -> None:
        history = [{"role": "user", "content": "Failover probe without stored state."}]
        while now() < end_at and not budget.expired():
            await send("stateless", None, input=history, store=False)
            await asyncio.sleep(THINK_S)

    async def timeline() -> None:
        await asyncio.sleep(fault_at)
        await asyncio.to_thread(sim.fault, "primary", "reset", duration_s=phases["reset"])
        await asyncio.sleep(max(0.0, hang_at - now()))
        await asyncio.to_thread(sim.fault, "primary", "hang", duration_s=phases["hang"])

    async def watch() -> None:
        while now() < end_at + 1.0 and not budget.expired():
            try:
                stats = await asyncio.to_thread(sim.stats, "primary")
                served.append((now(), int(stats["served"])))
            except OSError:
                pass
            await asyncio.sleep(sample_s)

    try:
        await asyncio.gather(
            timeline(),
            watch(),
            *(conversation(patient=i % 2 == 1) for i in range(CONVERSATIONS)),
            *(stateless() for _ in range(STATELESS)),
        )
    finally:
        await client.close()
    return turns, served


def _back_at(served: list[tuple[float, int]], recover_at: float, end_at: float) -> float:
    """When the primary served a request again after the faults ended (the end if never)."""
    at_recovery = next((s for t, s in served if t >= recover_at), None)
    if at_recovery is None:
        return end_at
    return next((t for t, s in served if t >= recover_at and s > at_recovery), end_at)


def _summarize(
    turns: list[Turn], fault_at: float, recover_at: float, back_at: float
) -> dict[str, Any]:
    def down(t: Turn) -> bool:  # its holding region was down at some point of the request
        return t.home == "primary" and t.start < back_at and t.end > fault_at

    continuations = [t for t in turns if t.kind == "continuation"]
    by_kind: dict[str, dict[str, int]] = {}
    for t in turns:
        if t.error:
            counts = by_kind.setdefault(t.kind, {})
            counts[t.error] = counts.get(t.error, 0) + 1
    expected = [t for t in continuations if t.error == EXPECTED and down(t)]
    unexpected = [t for t in continuations if t.error and t not in expected]
    elsewhere = [t for t in continuations if not t.error and t.region != t.home]
    free = [t for t in turns if t.kind != "continuation"]
    free_faults = [t for t in free if fault_at <= t.start < recover_at]
    refusals = [(t.end - t.start) * 1000 for t in expected]
    stayed = [
        t for t in continuations if not t.error and t.home == "secondary" and t.start >= back_at
    ]
    return {
        "requests": {
            kind: sum(1 for t in turns if t.kind == kind)
            for kind in ("first", "continuation", "stateless")
        },
        "errors_by_kind": by_kind,
        "continuations": {
            "served": sum(1 for t in continuations if not t.error),
            "served_elsewhere": len(elsewhere),
            "while_home_down": sum(1 for t in continuations if down(t)),
            "expected_region_unavailable": len(expected),
            "unexpected_errors": len(unexpected),
            "unexpected_by_kind": _count(t.error for t in unexpected),
            "region_unavailable_p50_ms": round(percentile(refusals, 50), 1) if refusals else None,
            "region_unavailable_worst_ms": round(max(refusals), 1) if refusals else None,
            "on_secondary_after_failback": len(stayed),
            "resumed": sum(1 for t in continuations if t.retry and not t.error),
        },
        "free_to_fail_over": {
            "calls_during_faults": len(free_faults),
            "errors_during_faults": sum(1 for t in free_faults if t.error),
            "errors_by_kind": _count(t.error for t in free if t.error),
            "served_by_secondary_during_faults": sum(
                1 for t in free_faults if not t.error and t.region == "secondary"
            ),
        },
        "primary_serves_again_s": round(back_at - recover_at, 2),
    }


def _count(kinds: Any) -> dict[str, int]:
    out: dict[str, int] = {}
    for kind in kinds:
        out[str(kind)] = out.get(str(kind), 0) + 1
    return out


def stored_state(
    phases: dict[str, float],
    *,
    deployment: str,
    threshold: int,
    cooloff_s: float,
    sample_s: float,
    latency: dict[str, float],
) -> dict[str, Any]:
    """Run the part; its result (or ``error``) for the failover benchmark's ``stored_state``."""
    regions = [
        {
            "name": name,
            "deployments": [
                {"name": deployment, "model": "gpt-4o", "kind": "chat", "tpm": 10**9, "rpm": 10**9}
            ],
        }
        for name in ("primary", "secondary")
    ]
    fault_at = phases["healthy"]
    recover_at = fault_at + phases["reset"] + phases["hang"]
    end_at = recover_at + phases["recovered"]
    with SimProcess(regions, latency=latency, log_name="failover-stored") as sim:
        env = _settings_env(sim, deployment, threshold, cooloff_s)
        with DevServer(env) as dev:
            turns, served = asyncio.run(_drive(sim, dev.base_url, phases, sample_s))
    back_at = _back_at(served, recover_at, end_at)
    out = _summarize(turns, fault_at, recover_at, back_at)
    out["setup"] = {
        "conversations": CONVERSATIONS,
        "retry_wait_s": RETRY_WAIT_S,
        "stateless_callers": STATELESS,
        "turns": TURNS,
        "think_s": THINK_S,
        "max_output_tokens": MAX_OUTPUT,
        "first_byte_s": _first_byte_deadline(),
    }
    return out


def _first_byte_deadline() -> float:
    """The gateway's default first-byte deadline (the dev server runs with it)."""
    from shared.settings import GatewaySettings

    return float(GatewaySettings.model_fields["first_byte_timeout_s"].default)


def stored_state_line(s: dict[str, Any]) -> str:
    if "error" in s:
        return f"stored-state conversations FAILED ({str(s['error'])[:80]})"
    c, f = s["continuations"], s["free_to_fail_over"]
    return (
        f"stored-state conversations: {c['served']}/{s['requests']['continuation']} continuations "
        f"served, {c['served_elsewhere']} by another region, {c['expected_region_unavailable']} "
        f"answered {EXPECTED} while their region was down (expected), "
        f"{c['unexpected_errors']} other errors, {c['resumed']} resumed on their region after it, "
        f"{c['on_secondary_after_failback']} stayed on the secondary after fail-back; requests "
        "free to fail over: "
        f"{f['errors_during_faults']}/{f['calls_during_faults']} errors during the faults"
    )


def stored_state_targets(s: dict[str, Any]) -> list[dict[str, Any]]:
    """Target lines; a part that did not run is a miss, never a pass."""
    if "error" in s or "continuations" not in s:
        return [
            {
                "what": "stored-state conversations (Responses API)",
                "target": "runs",
                "measured": str(s.get("error", "missing"))[:120],
                "unit": "",
                "met": False,
            }
        ]
    c, f = s["continuations"], s["free_to_fail_over"]
    return [
        {
            "what": "stored-state continuations served by a region other than the one holding "
            "the conversation",
            "target": "0",
            "measured": c["served_elsewhere"],
            "unit": "turns",
            "met": c["served_elsewhere"] == 0,
        },
        {
            "what": "stored-state continuations: errors other than "
            f"`{EXPECTED}` while their region was down",
            "target": "0",
            "measured": c["unexpected_errors"],
            "unit": "errors",
            "met": c["unexpected_errors"] == 0,
        },
        {
            "what": f"stored-state continuations refused with `{EXPECTED}`: slowest answer "
            "(a turn on a hung region is refused at the first-byte deadline, not left hanging)",
            "target": f"<= first-byte deadline ({s['setup']['first_byte_s']:g} s) + 2 s",
            "measured": c["region_unavailable_worst_ms"],
            "unit": f"ms ({c['expected_region_unavailable']} refusals)",
            "met": c["region_unavailable_worst_ms"] is not None
            and c["region_unavailable_worst_ms"] <= (s["setup"]["first_byte_s"] + 2) * 1000,
        },
        {
            "what": "requests free to fail over (store: false, first turns): errors during "
            "the faults",
            "target": "0",
            "measured": f["errors_during_faults"],
            "unit": f"errors of {f['calls_during_faults']}",
            "met": f["errors_during_faults"] == 0 and f["calls_during_faults"] > 0,
        },
    ]
