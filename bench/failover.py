"""Failover: the primary region first resets connections, then hangs, then recovers.

``CALLERS`` concurrent callers send chat requests back to back (``THINK_S`` apart) through each
contender while the simulator's primary goes through the timeline:
healthy -> ``reset`` fault (every request gets a TCP RST) -> ``hang`` fault (requests are read and
never answered) -> recovered. The secondary stays healthy throughout.

Contenders, one after another against the same simulator (reset between them):

* ``gateway``   the access layer, primary priority 0, secondary priority 1, with the **default
  timeouts** (connect 3 s, read 60 s, first byte 10 s, idle 30 s: what a deployment runs with),
  circuit threshold 3 (the default), cool-off ``COOLOFF_S`` (shortened from the 30 s default so
  several cool-offs fit in the hang phase).
* ``fallback``  (b) the seeds' crude loop: primary with the SDK's default 2 retries, on any error
  the secondary; SDK timeout ``PEER_TIMEOUT_S`` (the gateway's read timeout; the SDK's default
  600 s would stall the run).
* ``litellm``   (c) LiteLLM's Router, primary ``order=1``, secondary ``order=2``, documented
  defaults ``num_retries=2``, ``allowed_fails=3``, ``cooldown_time=5`` s, timeout ``PEER_TIMEOUT_S``.

The reset and hang phases are reported separately (``phases``): a hang is what long read
timeouts make expensive, and a 1 s timeout for every contender (as this benchmark once used)
hides it. The gateway runs with its default hedge settings: a call whose first byte is later
than the deployment's threshold (p95 of recent times to first byte, 1-5 s) is also sent to the
secondary; ``hedges`` counts hedged calls in the hang phase and outside it (each call's
attempts say whether one was a hedge). ``long_generation`` checks that the gateway's first-byte
and idle deadlines and its hedge do not cut off or duplicate a long generation (about 60 s in
the full run: ~70 tokens at 0.9 s each): it completes in one attempt.

Requests sent to the dead region are the primary's reset + hang counts from ``/_sim/stats``;
time to fail back is from the faults' end to the primary's next served request (``/_sim/stats``
polled every ``SAMPLE_S``).

``stored_state`` (``_stored_failover``): Responses API conversations continued with
``previous_response_id`` through the dev server over the same timeline, reported apart: their
errors by kind (``response_region_unavailable`` while the region holding them is down is expected),
that none was served by another region, and that requests without stored state kept failing over.
"""

from __future__ import annotations

import asyncio
import math
import threading
import time
from collections.abc import Awaitable, Callable
from typing import Any

from ._harness import Budget, SimProcess, gateway_regions, percentile, quiet_gateway_logs
from ._peers import litellm_router, v1_sdk
from ._stored_failover import stored_state, stored_state_line, stored_state_targets

__all__ = ["run"]

ALIAS = "gpt-4o"
DEPLOYMENT = "bench-chat"
CALLERS = 4
THINK_S = 0.02
PEER_TIMEOUT_S = 60.0  # the gateway's default read timeout, for the peers
COOLOFF_S = 2.0
THRESHOLD = 3
SAMPLE_S = 0.1
MESSAGES = [{"role": "user", "content": "Failover probe: answer briefly."}]
MAX_TOKENS = 16
CONTENDERS = ("gateway", "fallback", "litellm")

Call = Callable[[], Awaitable[Any]]


def _phases(quick: bool) -> dict[str, float]:
    """Seconds of each phase: healthy, reset, hang, recovered (observation window)."""
    return (
        {"healthy": 1.5, "reset": 2.0, "hang": 14.0, "recovered": 6.0}
        if quick
        else {"healthy": 3.0, "reset": 4.0, "hang": 25.0, "recovered": 8.0}
    )


def _sim_regions() -> list[dict[str, Any]]:
    dep = {"name": DEPLOYMENT, "model": "gpt-4o", "kind": "chat", "tpm": 10**9, "rpm": 10**9}
    return [{"name": "primary", "deployments": [dep]}, {"name": "secondary", "deployments": [dep]}]


async def _contender(name: str, sim: SimProcess) -> tuple[Call, Callable[[], Awaitable[None]]]:
    if name == "gateway":
        from shared.aoai import CallContext, ChatRequest, Gateway
        from shared.settings import GatewaySettings

        table = gateway_regions(
            sim, [("primary", 0, DEPLOYMENT, 10**9), ("secondary", 1, DEPLOYMENT, 10**9)], ALIAS
        )
        settings = GatewaySettings(  # default timeouts
            regions=table, circuit_failure_threshold=THRESHOLD, circuit_cooloff_s=COOLOFF_S
        )
        gateway = Gateway(settings)

        async def call() -> Any:
            request = ChatRequest(model=ALIAS, messages=MESSAGES, max_tokens=MAX_TOKENS)
            return await gateway.chat(request, CallContext(correlation_id="failover"))

        return call, gateway.aclose
    if name == "fallback":
        primary = v1_sdk(sim.endpoint("primary"), timeout=PEER_TIMEOUT_S)
        secondary = v1_sdk(sim.endpoint("secondary"), timeout=PEER_TIMEOUT_S)

        async def call() -> Any:
            try:
                return await primary.chat.completions.create(
                    model=DEPLOYMENT, messages=MESSAGES, max_tokens=MAX_TOKENS
                )
            except Exception:  # noqa: BLE001 - the crude loop
                return await secondary.chat.completions.create(
                    model=DEPLOYMENT, messages=MESSAGES, max_tokens=MAX_TOKENS
                )

        async def close() -> None:
            await primary.close()
            await secondary.close()

        return call, close
    router = litellm_router(
        [
            {"endpoint": sim.endpoint("primary"), "deployment": DEPLOYMENT},
            {"endpoint": sim.endpoint("secondary"), "deployment": DEPLOYMENT},
        ],
        num_retries=2,
        allowed_fails=3,
        cooldown_time=5,
        timeout=PEER_TIMEOUT_S,
        order=True,
    )

    async def call_litellm() -> Any:
        return await router.acompletion(model=ALIAS, messages=MESSAGES, max_tokens=MAX_TOKENS)

    async def close_litellm() -> None:
        return None

    return call_litellm, close_litellm


class _PrimaryWatch:
    """Samples the primary's counters from a thread: (t, served, dead requests)."""

    def __init__(self, sim: SimProcess, t0: float, budget: Budget) -> None:
        self._sim, self._t0, self._budget = sim, t0, budget
        self._stop = threading.Event()
        self.samples: list[tuple[float, int, int]] = []
        self._thread = threading.Thread(target=self._loop, name="failover-watch", daemon=True)
        self._thread.start()

    def _take(self) -> None:
        s = self._sim.stats("primary")
        dead = s["failures"].get("reset", 0) + s["failures"].get("hang", 0)
        self.samples.append((time.monotonic() - self._t0, s["served"], dead))

    def _loop(self) -> None:
        while not self._stop.wait(SAMPLE_S) and not self._budget.expired():
            try:
                self._take()
            except OSError:
                pass

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self._take()


async def _run_contender(name: str, sim: SimProcess, phases: dict[str, float]) -> dict[str, Any]:
    call, close = await _contender(name, sim)
    total = sum(phases.values())
    budget = Budget(total + 2 * PEER_TIMEOUT_S)
    await asyncio.to_thread(sim.reset)
    t0 = time.monotonic()
    fault_at = phases["healthy"]
    hang_at = fault_at + phases["reset"]
    recover_at = hang_at + phases["hang"]
    end_at = recover_at + phases["recovered"]
    records: list[tuple[float, float, str | None]] = []  # (start, latency_s, error class)
    hedged: list[float] = []  # starts of the gateway's calls that were hedged
    watch = _PrimaryWatch(sim, t0, budget)

    async def caller() -> None:
        while time.monotonic() - t0 < end_at and not budget.expired():
            start = time.monotonic() - t0
            error = None
            try:
                result = await asyncio.wait_for(call(), timeout=max(0.5, budget.remaining()))
                if any(getattr(a, "hedge", False) for a in getattr(result, "attempts", ())):
                    hedged.append(start)
            except Exception as exc:  # noqa: BLE001 - caller-visible error, classified by type
                error = type(exc).__name__
            records.append((start, time.monotonic() - t0 - start, error))
            await asyncio.sleep(THINK_S)

    async def timeline() -> None:
        await asyncio.sleep(fault_at)
        await asyncio.to_thread(sim.fault, "primary", "reset", duration_s=phases["reset"])
        await asyncio.sleep(max(0.0, hang_at - (time.monotonic() - t0)))
        await asyncio.to_thread(sim.fault, "primary", "hang", duration_s=phases["hang"])

    try:
        await asyncio.gather(timeline(), *(caller() for _ in range(CALLERS)))
    finally:
        await asyncio.to_thread(watch.stop)
        await close()
    stats = {r: await asyncio.to_thread(sim.stats, r) for r in ("primary", "secondary")}
    out = _metrics(name, records, watch.samples, stats, fault_at, recover_at, end_at)
    out["phases"] = {
        phase: _phase(records, out["healthy_p50_ms"] / 1000.0, start, end)
        for phase, start, end in (("reset", fault_at, hang_at), ("hang", hang_at, recover_at))
    }
    if name == "gateway":
        out["hedges"] = _hedges(records, hedged, hang_at, recover_at)
    return out


def _hedges(
    records: list[tuple[float, float, str | None]],
    hedged: list[float],
    hang_at: float,
    recover_at: float,
) -> dict[str, Any]:
    """Hedged calls (a second attempt sent while the first had no first byte), in the hang
    phase and outside it, against all calls started there."""
    in_hang = sum(1 for t in hedged if hang_at <= t < recover_at)
    outside_calls = sum(1 for t, _, _ in records if not hang_at <= t < recover_at)
    outside = len(hedged) - in_hang
    return {
        "hang": in_hang,
        "hang_calls": sum(1 for t, _, _ in records if hang_at <= t < recover_at),
        "outside_hang": outside,
        "outside_hang_calls": outside_calls,
        "outside_hang_share": round(outside / outside_calls, 4) if outside_calls else None,
    }


def _phase(
    records: list[tuple[float, float, str | None]], base_s: float, start: float, end: float
) -> dict[str, Any]:
    """Calls started in [start, end): count, errors, p50/p99 and worst added latency."""
    lat = [latency for t, latency, _ in records if start <= t < end]
    errors = sum(1 for t, _, err in records if start <= t < end and err)
    if not lat:
        return {"calls": 0, "errors": errors}
    return {
        "calls": len(lat),
        "errors": errors,
        "p50_ms": round(percentile(lat, 50) * 1000, 1),
        "p99_ms": round(percentile(lat, 99) * 1000, 1),
        "worst_added_latency_ms": round((max(lat) - base_s) * 1000, 1),
    }


def _metrics(
    name: str,
    records: list[tuple[float, float, str | None]],
    samples: list[tuple[float, int, int]],
    stats: dict[str, dict[str, Any]],
    fault_at: float,
    recover_at: float,
    end_at: float,
) -> dict[str, Any]:
    healthy = [lat for start, lat, err in records if start < fault_at and err is None]
    base_p50 = percentile(healthy, 50) if healthy else 0.0
    during = [(start, lat, err) for start, lat, err in records if fault_at <= start < recover_at]
    errors_during = [err for _, _, err in during if err]
    errors_all: dict[str, int] = {}
    for _, _, err in records:
        if err:
            errors_all[err] = errors_all.get(err, 0) + 1
    dead_total = stats["primary"]["failures"].get("reset", 0) + stats["primary"]["failures"].get(
        "hang", 0
    )
    # Dead-region requests after the first cool-off (the opening burst is allowed THRESHOLD requests).
    first_cooloff_end = fault_at + COOLOFF_S
    dead_at_first = next((d for t, _, d in samples if t >= first_cooloff_end), dead_total)
    later_periods = max(1, math.ceil((recover_at - first_cooloff_end) / COOLOFF_S))
    dead_later = dead_total - dead_at_first
    served_at_recovery = next((s for t, s, _ in samples if t >= recover_at), None)
    failback_s = None
    if served_at_recovery is not None:
        failback_s = next(
            (
                round(t - recover_at, 2)
                for t, s, _ in samples
                if t >= recover_at and s > served_at_recovery
            ),
            None,
        )
    worst = max((lat for _, lat, _ in during), default=0.0)
    return {
        "contender": name,
        "calls": len(records),
        "calls_during_faults": len(during),
        "caller_errors_during_faults": len(errors_during),
        "caller_errors_by_type": errors_all,
        "healthy_p50_ms": round(base_p50 * 1000, 2),
        "fault_p50_ms": round(percentile([lat for _, lat, _ in during], 50) * 1000, 2)
        if during
        else None,
        "worst_added_latency_ms": round((worst - base_p50) * 1000, 1),
        "dead_region_requests": dead_total,
        "dead_region_requests_first_cooloff": dead_at_first,
        "dead_region_requests_per_later_cooloff": round(dead_later / later_periods, 2),
        "later_cooloff_periods": later_periods,
        "failback_s": failback_s,
        "served": {r: s["served"] for r, s in stats.items()},
        "timeline_s": {"fault_at": fault_at, "recover_at": recover_at, "end_at": end_at},
        "latency_series": [
            (round(start, 3), round(lat * 1000, 2), err) for start, lat, err in records
        ],
        "dead_series": [(round(t, 2), d) for t, _, d in samples],
    }


def run(quick: bool = False) -> dict[str, Any]:
    started = time.monotonic()
    with quiet_gateway_logs():
        return _run(quick, started)


def _run(quick: bool, started: float) -> dict[str, Any]:
    phases = _phases(quick)
    contenders: dict[str, Any] = {}
    latency = {"ttft_ms": 5.0, "per_token_ms": 0.0}
    with SimProcess(_sim_regions(), latency=latency, log_name="failover") as sim:
        for name in CONTENDERS:
            try:
                contenders[name] = asyncio.run(_run_contender(name, sim, phases))
            except Exception as exc:  # noqa: BLE001 - recorded; the others still run
                contenders[name] = {"contender": name, "error": f"{type(exc).__name__}: {exc}"}
            print(f"  failover {name}: {_line(contenders[name])}", flush=True)
    long_generation = _long_generation(quick)
    print(f"  failover long generation: {long_generation}", flush=True)
    slow_restart = _slow_restart()
    print(f"  failover slow restart: {slow_restart}", flush=True)
    try:
        stored = stored_state(
            phases,
            deployment=DEPLOYMENT,
            threshold=THRESHOLD,
            cooloff_s=COOLOFF_S,
            sample_s=SAMPLE_S,
            latency=latency,
        )
    except Exception as exc:  # noqa: BLE001 - recorded; a miss in the targets
        stored = {"error": f"{type(exc).__name__}: {exc}"}
    print(f"  failover {stored_state_line(stored)}", flush=True)
    result: dict[str, Any] = {
        "name": "failover",
        "quick": quick,
        "setup": {
            "callers": CALLERS,
            "think_s": THINK_S,
            "gateway_timeouts": "defaults (connect 3 s, read 60 s, first byte 10 s, idle 30 s; "
            "hedge after p95 of recent times to first byte, 1-5 s, at most 5 % of calls)",
            "peer_timeout_s": PEER_TIMEOUT_S,
            "cooloff_s": COOLOFF_S,
            "threshold": THRESHOLD,
            "phases_s": phases,
            "sim_ttft_ms": latency["ttft_ms"],
        },
        "contenders": contenders,
        "long_generation": long_generation,
        "slow_restart": slow_restart,
        "stored_state": stored,
        "elapsed_s": round(time.monotonic() - started, 1),
    }
    result["targets"] = _targets(contenders.get("gateway", {}), long_generation, slow_restart)
    result["targets"] += stored_state_targets(stored)
    result["summary"] = (
        "failover: "
        + "; ".join(f"{n} {_line(c)}" for n, c in contenders.items())
        + f"; {stored_state_line(stored)}"
    )
    return result


def _long_generation(quick: bool) -> dict[str, Any]:
    """One non-streaming chat whose generation takes ~60 s (~12 s quick), default settings."""
    from shared.aoai import CallContext, ChatRequest, Gateway
    from shared.settings import GatewaySettings

    # The simulator stops a story after ~70 tokens: 0.9 s per token makes the full run's ~60 s.
    tokens = 40 if quick else 200
    latency = {"ttft_ms": 5.0, "per_token_ms": 300.0 if quick else 900.0}
    with SimProcess(_sim_regions()[:1], latency=latency, log_name="failover-long") as sim:
        table = gateway_regions(sim, [("primary", 0, DEPLOYMENT, 10**9)], ALIAS)

        async def once() -> dict[str, Any]:
            async with Gateway(GatewaySettings(regions=table)) as gateway:
                started = time.monotonic()
                try:
                    result = await gateway.chat(
                        ChatRequest(
                            model=ALIAS,
                            messages=[{"role": "user", "content": "Tell a long story."}],
                            max_tokens=tokens,
                        ),
                        CallContext(correlation_id="long-generation"),
                    )
                except Exception as exc:  # noqa: BLE001 - reported
                    return {"completed": False, "error": type(exc).__name__}
                return {
                    "completed": True,
                    "seconds": round(time.monotonic() - started, 1),
                    "completion_tokens": result.usage.completion_tokens if result.usage else None,
                    "attempts": len(result.attempts),
                }

        return asyncio.run(once())


SLOW_WARM = 100  # healthy calls first: the hedge share (5 %) of them allows 5 hedges
SLOW_CALLS = 4
SLOW_FIRST_BYTE_MS = 10_000  # as slow as the first-byte deadline itself


def _slow_restart() -> dict[str, Any]:
    """A primary that takes ~10 s to its first byte (as an upstream does after a restart), with
    the gateway's default settings: after ``SLOW_WARM`` healthy calls, ``SLOW_CALLS`` calls one
    after another while the primary is that slow. Each should cost a hedge, not a failure."""
    from shared.aoai import CallContext, ChatRequest, Gateway
    from shared.settings import GatewaySettings

    latency = {"ttft_ms": 5.0, "per_token_ms": 0.0}
    with SimProcess(_sim_regions(), latency=latency, log_name="failover-slow") as sim:
        table = gateway_regions(
            sim, [("primary", 0, DEPLOYMENT, 10**9), ("secondary", 1, DEPLOYMENT, 10**9)], ALIAS
        )

        async def once() -> dict[str, Any]:
            async with Gateway(GatewaySettings(regions=table)) as gateway:
                request = ChatRequest(model=ALIAS, messages=MESSAGES, max_tokens=MAX_TOKENS)
                ctx = CallContext(correlation_id="slow-restart")
                for _ in range(SLOW_WARM):
                    await gateway.chat(request, ctx)
                await asyncio.to_thread(
                    sim.fault, "primary", "slow", delay_ms=SLOW_FIRST_BYTE_MS, count=SLOW_CALLS
                )
                hedged = errors = 0
                worst = 0.0
                for _ in range(SLOW_CALLS):
                    started = time.monotonic()
                    try:
                        result = await gateway.chat(request, ctx)
                        hedged += any(a.hedge for a in result.attempts)
                    except Exception:  # noqa: BLE001 - counted
                        errors += 1
                    worst = max(worst, time.monotonic() - started)
                report = gateway.health_report()["regions"]["primary"]
                return {
                    "calls": SLOW_CALLS,
                    "first_byte_ms": SLOW_FIRST_BYTE_MS,
                    "hedged": hedged,
                    "errors": errors,
                    "worst_s": round(worst, 2),
                    "circuit": report["circuit"]["state"],
                    "circuit_failures": report["circuit"]["consecutive_failures"],
                    "threshold_s": report["deployments"][DEPLOYMENT]["hedge"]["threshold_s"],
                }

        return asyncio.run(once())


def _line(c: dict[str, Any]) -> str:
    if "error" in c:
        return f"FAILED ({c['error'][:80]})"
    hang = c.get("phases", {}).get("hang", {})
    hedges = c.get("hedges")
    hedged = (
        f"; hedged {hedges['hang']} calls in the hang, {hedges['outside_hang']}/"
        f"{hedges['outside_hang_calls']} outside it"
        if hedges
        else ""
    )
    return (
        f"hang phase: {hang.get('errors')}/{hang.get('calls')} errors, worst +{hang.get('worst_added_latency_ms')} ms; "
        f"{c['caller_errors_during_faults']}/{c['calls_during_faults']} caller errors, worst +{c['worst_added_latency_ms']:.0f} ms, "
        f"{c['dead_region_requests']} requests to the dead region "
        f"({c['dead_region_requests_per_later_cooloff']}/cool-off after the first), fail-back {c['failback_s']} s"
        f"{hedged}"
    )


def _targets(
    g: dict[str, Any], long_generation: dict[str, Any], slow_restart: dict[str, Any]
) -> list[dict[str, Any]]:
    if not g or "error" in g:
        return [
            {
                "what": "failover (gateway)",
                "target": "runs",
                "measured": g.get("error", "missing"),
                "unit": "",
                "met": False,
            }
        ]
    return [
        {
            "what": "caller-visible errors while the secondary is healthy",
            "target": "0",
            "measured": g["caller_errors_during_faults"],
            "unit": "errors",
            "met": g["caller_errors_during_faults"] == 0,
        },
        {
            "what": "requests to the dead region per circuit cool-off (after the opening burst)",
            "target": "<= 1",
            "measured": g["dead_region_requests_per_later_cooloff"],
            "unit": "requests",
            "met": g["dead_region_requests_per_later_cooloff"] <= 1.0,
        },
        {
            "what": "hang phase, default settings: worst added latency",
            "target": "<= 2 s + one normal call (healthy p50)",
            "measured": g["phases"]["hang"].get("worst_added_latency_ms"),
            "unit": "ms",
            "met": (g["phases"]["hang"].get("worst_added_latency_ms") or 0)
            <= 2_000 + g["healthy_p50_ms"],
        },
        {
            "what": "hang phase: caller errors",
            "target": "0",
            "measured": g["phases"]["hang"].get("errors"),
            "unit": "errors",
            "met": g["phases"]["hang"].get("errors") == 0,
        },
        _hedge_target(g.get("hedges")),
        {
            "what": "a long non-streaming generation completes under the deadlines, in one attempt",
            "target": "completes, 1 attempt",
            "measured": long_generation.get("seconds", long_generation.get("error")),
            "unit": f"s, {long_generation.get('attempts')} attempt(s)",
            "met": bool(long_generation.get("completed")) and long_generation.get("attempts") == 1,
        },
        {
            "what": "a region 10 s to its first byte after a restart: calls hedged, none failed, "
            "its circuit not counting them",
            "target": f"{SLOW_CALLS} hedged, 0 errors, 0 circuit failures",
            "measured": f"{slow_restart.get('hedged')} hedged, {slow_restart.get('errors')} errors, "
            f"{slow_restart.get('circuit_failures')} circuit failures",
            "unit": "",
            "met": slow_restart.get("hedged") == SLOW_CALLS
            and slow_restart.get("errors") == 0
            and slow_restart.get("circuit_failures") == 0,
        },
    ]


def _hedge_target(hedges: dict[str, Any] | None) -> dict[str, Any]:
    share = (hedges or {}).get("outside_hang_share")
    return {
        "what": "hedged calls outside the hang phase, share of all calls outside it",
        "target": "<= 5 %",
        "measured": None if share is None else round(share * 100, 2),
        "unit": "%",
        "met": share is not None and share <= 0.05,
    }
