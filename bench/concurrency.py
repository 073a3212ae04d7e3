"""Concurrency: one instance's throughput and added latency at 1, 4, 16 and 64 concurrent streams.

What it decides: the Flex Consumption plan's per-instance HTTP concurrency
(``scaleAndConcurrency.triggers.http.perInstanceConcurrency``, default 1 for Python apps) and the
Service Bus trigger's ``maxConcurrentCalls`` in ``host.json``.

One instance = one dev server process (``python -m devserver --http-only``: the app's HTTP
functions on one event loop, as the Python worker runs them), in front of one simulated
deployment whose streams last seconds (``TTFT_MS`` before the first token, then ``TOKENS``
tokens at ``PER_TOKEN_MS`` each: about 3.3 s and 33 tokens/s per stream, the slower end of
how fast Azure OpenAI streams). At each level ``C``, ``C`` callers each run ``STREAMS_PER_CALLER`` streamed chat calls
back to back (their first starts spread over ``STAGGER_S``), with the openai SDK:

* ``direct``  the same SDK pointed straight at the simulator: the baseline;
* ``gateway`` pointed at the dev server (``/api/v1``), which streams from the simulator.

The two arms alternate (direct, gateway, gateway, direct) so drift and other load on the machine
fall on both. Per arm: time to the first content chunk (TTFT), whole-stream duration, tokens per
second over the phase, errors. For the gateway arm only: the dev server's CPU (seconds of CPU per
second of wall time, from ``/proc`` via psutil) and its event-loop lag, probed by a ``GET
/api/health`` every ``PROBE_S`` in both arms (while the direct arm runs, the dev server is idle,
so the direct arm's probes are the in-run baseline; the difference is the time a request waits
for the loop that the streams keep busy).

The figures that matter are ratios and differences against the direct arm of the same level in
the same run; absolute figures depend on the machine (2 shared cores here).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ._harness import API_KEY, Budget, DevServer, SimProcess, gateway_regions, summarize
from ._stats import percentile, ratio

__all__ = [
    "DEPLOYED_PER_INSTANCE",
    "FAST_TOKENS_PER_S",
    "LEVELS",
    "Criteria",
    "choose_concurrency",
    "compare_latency",
    "cpu_cores",
    "level_verdict",
    "run",
]

ALIAS = "gpt-4o"
DEPLOYMENT = "bench-chat"
LEVELS = (1, 4, 16, 64)
TTFT_MS = 300.0
PER_TOKEN_MS = 30.0
TOKENS = 100
# What the templates deploy (infra's perInstanceConcurrency, host.json's maxConcurrentCalls):
# not the highest fit level, but the highest whose CPU leaves room for streams FAST_TOKENS_PER_S
# fast (the instance's CPU grows with chunks per second; see the report's reasoning).
DEPLOYED_PER_INSTANCE = 16
FAST_TOKENS_PER_S = 100.0
STAGGER_S = 1.0
PROBE_S = 0.25
_UNLIMITED = 10**9


@dataclass(frozen=True, slots=True)
class Criteria:
    """When a level is fit for one instance, measured against the direct arm of the same level."""

    max_ttft_added_p99_ms: float = 250.0
    max_duration_ratio_p50: float = 1.05
    min_throughput_ratio: float = 0.95
    max_loop_lag_added_p99_ms: float = 100.0
    max_cpu_cores: float = 0.5  # of the instance's CPU, leaving room for TLS, the host and bursts


@dataclass
class _Phase:
    ttft_ms: list[float] = field(default_factory=list)
    duration_ms: list[float] = field(default_factory=list)
    tokens: int = 0
    errors: list[str] = field(default_factory=list)
    wall_s: float = 0.0
    probes_ms: list[float] = field(default_factory=list)
    cpu_s: float | None = None

    def merge(self, other: _Phase) -> None:
        self.ttft_ms += other.ttft_ms
        self.duration_ms += other.duration_ms
        self.tokens += other.tokens
        self.errors += other.errors
        self.wall_s += other.wall_s
        self.probes_ms += other.probes_ms
        if other.cpu_s is not None:
            self.cpu_s = (self.cpu_s or 0.0) + other.cpu_s


# ---------------------------------------------------------------------------- the math (tested)


def compare_latency(base: Sequence[float], other: Sequence[float]) -> dict[str, Any]:
    """``other`` against ``base`` (unpaired samples): p50/p99 differences and ratios."""
    if not base or not other:
        raise ValueError("both samples must be non-empty")
    b50, b99 = percentile(base, 50), percentile(base, 99)
    o50, o99 = percentile(other, 50), percentile(other, 99)
    return {
        "added_p50": round(o50 - b50, 3),
        "added_p99": round(o99 - b99, 3),
        "ratio_p50": ratio(o50, b50),
        "ratio_p99": ratio(o99, b99),
    }


def cpu_cores(cpu_seconds: float, wall_seconds: float) -> float:
    """Average cores busy: CPU seconds used over a wall-clock interval."""
    if wall_seconds <= 0:
        raise ValueError("wall_seconds must be positive")
    return round(cpu_seconds / wall_seconds, 3)


def level_verdict(level: Mapping[str, Any], criteria: Criteria) -> list[str]:
    """The criteria a measured level misses (empty: fit)."""

    def over(value: float | None, limit: float) -> bool:  # a figure not measured counts as a miss
        return value is None or value > limit

    misses = []
    if level["errors"]["gateway"] or level["errors"]["direct"]:
        misses.append("errors")
    if over(level["ttft"]["added_p99"], criteria.max_ttft_added_p99_ms):
        misses.append("ttft_added_p99")
    if over(level["duration"]["ratio_p50"], criteria.max_duration_ratio_p50):
        misses.append("duration_ratio_p50")
    throughput = level["throughput_ratio"]
    if throughput is None or throughput < criteria.min_throughput_ratio:
        misses.append("throughput_ratio")
    if over(level["loop_lag_ms"]["added_p99"], criteria.max_loop_lag_added_p99_ms):
        misses.append("loop_lag_added_p99")
    if over(level["instance_cpu_cores"], criteria.max_cpu_cores):
        misses.append("instance_cpu_cores")
    return misses


def choose_concurrency(levels: Mapping[int, Mapping[str, Any]], criteria: Criteria) -> int:
    """The highest measured level that is fit with every lower level fit too (at least 1)."""
    chosen = 1
    for c in sorted(levels):
        if level_verdict(levels[c], criteria):
            break
        chosen = c
    return chosen


# ---------------------------------------------------------------------------- the measurement


def _sim_regions() -> list[dict[str, Any]]:
    dep = {
        "name": DEPLOYMENT,
        "model": "gpt-4o",
        "kind": "chat",
        "tpm": _UNLIMITED,
        "rpm": _UNLIMITED,
    }
    return [{"name": "solo", "deployments": [dep]}]


def _gateway_env(sim: SimProcess) -> dict[str, str]:
    regions = gateway_regions(sim, [("solo", 0, DEPLOYMENT, _UNLIMITED)], ALIAS)
    return {
        "GATEWAY_REGIONS": json.dumps(regions),
        "GATEWAY_USAGE": "off",
        "FUNCTIONS_WORKER_RUNTIME": "python",
        "PYTHON_ENABLE_INIT_INDEXING": "1",
    }


def _long_prompt() -> list[dict[str, str]]:
    """Messages whose simulated answer runs past ``TOKENS`` (so every stream is exactly TOKENS
    long): the simulator's natural length (16-127 tokens) is a function of the deployment and
    the messages, computed here with its own generator and checked by one call in ``_measure``."""
    from aoai_sim._text import generate, seed_for

    for i in range(10_000):
        messages = [{"role": "user", "content": f"Tell me a long story, please ({i})."}]
        tokens, natural = generate(seed_for(DEPLOYMENT, messages, 0), TOKENS)
        if len(tokens) >= TOKENS and not natural:
            return messages
    raise RuntimeError(f"no prompt found with an answer of {TOKENS} tokens or more")


async def _check_prompt(client: Any, messages: Any) -> None:
    answer = await client.chat.completions.create(
        model=DEPLOYMENT, messages=messages, max_tokens=TOKENS
    )
    got = answer.usage.completion_tokens if answer.usage is not None else None
    if got != TOKENS:
        raise RuntimeError(
            f"the simulator answered {got} tokens, not {TOKENS}: streams would differ"
        )


async def _one_stream(client: Any, model: str, messages: Any, phase: _Phase) -> None:
    clock = time.perf_counter
    t0 = clock()
    first: float | None = None
    tokens = 0
    try:
        stream = await client.chat.completions.create(
            model=model, messages=messages, max_tokens=TOKENS, stream=True
        )
        async for chunk in stream:
            if chunk.choices and chunk.choices[0].delta and chunk.choices[0].delta.content:
                tokens += 1
                if first is None:
                    first = clock()
    except Exception as exc:  # noqa: BLE001 - counted, the phase goes on
        phase.errors.append(f"{type(exc).__name__}: {str(exc)[:120]}")
        return
    end = clock()
    if first is None:
        phase.errors.append("no content")
        return
    phase.ttft_ms.append((first - t0) * 1000.0)
    phase.duration_ms.append((end - t0) * 1000.0)
    phase.tokens += tokens


async def _probe(url: str, stop: asyncio.Event, out: list[float]) -> None:
    import httpx2

    async with httpx2.AsyncClient(timeout=30.0) as client:
        while not stop.is_set():
            t0 = time.perf_counter()
            try:
                await client.get(url)
                out.append((time.perf_counter() - t0) * 1000.0)
            except Exception:  # noqa: BLE001 - a failed probe is not a latency sample
                pass
            try:
                await asyncio.wait_for(stop.wait(), PROBE_S)
            except TimeoutError:
                pass


async def _phase(
    client: Any,
    model: str,
    messages: Any,
    concurrency: int,
    streams_per_caller: int,
    probe_url: str,
    pid: int | None,
) -> _Phase:
    import psutil

    phase = _Phase()
    stop = asyncio.Event()
    prober = asyncio.create_task(_probe(probe_url, stop, phase.probes_ms))
    proc = psutil.Process(pid) if pid is not None else None
    cpu0 = sum(proc.cpu_times()[:2]) if proc is not None else 0.0

    async def caller(i: int) -> None:
        await asyncio.sleep(STAGGER_S * i / concurrency)
        for _ in range(streams_per_caller):
            await _one_stream(client, model, messages, phase)

    t0 = time.perf_counter()
    try:
        await asyncio.gather(*(caller(i) for i in range(concurrency)))
    finally:
        phase.wall_s = time.perf_counter() - t0
        stop.set()
        await prober
    if proc is not None:
        phase.cpu_s = sum(proc.cpu_times()[:2]) - cpu0
    return phase


def _level(direct: _Phase, gateway: _Phase, concurrency: int) -> dict[str, Any]:
    tps_direct = direct.tokens / direct.wall_s if direct.wall_s else 0.0
    tps_gateway = gateway.tokens / gateway.wall_s if gateway.wall_s else 0.0
    cores = cpu_cores(gateway.cpu_s or 0.0, gateway.wall_s) if gateway.wall_s else 0.0
    streams = len(gateway.duration_ms)
    empty: dict[str, Any] = dict.fromkeys(("added_p50", "added_p99", "ratio_p50", "ratio_p99"))
    both = direct.ttft_ms and gateway.ttft_ms
    return {
        "concurrency": concurrency,
        "streams": {"direct": len(direct.duration_ms), "gateway": streams},
        "ttft_ms": {"direct": summarize(direct.ttft_ms), "gateway": summarize(gateway.ttft_ms)},
        "duration_ms": {
            "direct": summarize(direct.duration_ms),
            "gateway": summarize(gateway.duration_ms),
        },
        "ttft": compare_latency(direct.ttft_ms, gateway.ttft_ms) if both else empty,
        "duration": compare_latency(direct.duration_ms, gateway.duration_ms) if both else empty,
        "tokens_per_s": {"direct": round(tps_direct, 1), "gateway": round(tps_gateway, 1)},
        "throughput_ratio": ratio(tps_gateway, tps_direct),
        "instance_cpu_cores": cores,
        "instance_cpu_ms_per_stream": round(1000.0 * (gateway.cpu_s or 0.0) / streams, 2)
        if streams
        else None,
        "loop_lag_ms": {
            "idle": summarize(direct.probes_ms),
            "busy": summarize(gateway.probes_ms),
            **(
                compare_latency(direct.probes_ms, gateway.probes_ms)
                if direct.probes_ms and gateway.probes_ms
                else empty
            ),
        },
        "errors": {"direct": len(direct.errors), "gateway": len(gateway.errors)},
        "error_samples": (direct.errors + gateway.errors)[:5],
        "wall_s": {"direct": round(direct.wall_s, 1), "gateway": round(gateway.wall_s, 1)},
    }


async def _measure(
    sim: SimProcess, dev: DevServer, levels: Sequence[int], per_caller: Mapping[int, int]
) -> tuple[dict[int, dict[str, Any]], list[dict[str, str]]]:
    from openai import AsyncOpenAI

    from ._peers import v1_sdk

    direct = v1_sdk(sim.endpoint("solo"), max_retries=0, timeout=120.0)
    via = AsyncOpenAI(
        base_url=dev.base_url,
        api_key=API_KEY,
        max_retries=0,
        timeout=120.0,
        default_headers={"x-functions-key": "local"},
    )
    probe_url = dev.base_url.removesuffix("/v1") + "/health"
    pid = dev.proc.pid if dev.proc is not None else None
    out: dict[int, dict[str, Any]] = {}
    try:
        messages = _long_prompt()
        await _check_prompt(direct, messages)
        for client, model in ((direct, DEPLOYMENT), (via, ALIAS)):  # warm-up: connections, imports
            await _phase(client, model, messages, 2, 1, probe_url, None)
        for c in levels:
            arms = {"direct": _Phase(), "gateway": _Phase()}
            for name in ("direct", "gateway", "gateway", "direct"):
                client, model = (direct, DEPLOYMENT) if name == "direct" else (via, ALIAS)
                phase = await _phase(
                    client,
                    model,
                    messages,
                    c,
                    per_caller[c],
                    probe_url,
                    pid if name == "gateway" else None,
                )
                arms[name].merge(phase)
            out[c] = _level(arms["direct"], arms["gateway"], c)
            print(f"  concurrency {c}: {_level_line(out[c])}", flush=True)
    finally:
        await direct.close()
        await via.close()
    return out, messages


def _ms(value: float | None) -> str:
    return "n/a" if value is None else f"{value:+.0f}"


def _level_line(level: Mapping[str, Any]) -> str:
    return (
        f"TTFT {_ms(level['ttft']['added_p50'])}/{_ms(level['ttft']['added_p99'])} ms (p50/p99), "
        f"duration x{level['duration']['ratio_p50']}, throughput x{level['throughput_ratio']}, "
        f"instance CPU {level['instance_cpu_cores']:.2f} cores, "
        f"loop lag {_ms(level['loop_lag_ms']['added_p99'])} ms p99, "
        f"errors {level['errors']['gateway']}/{level['errors']['direct']}"
    )


def run(quick: bool = False) -> dict[str, Any]:
    started = time.monotonic()
    criteria = Criteria()
    # Full: about 26 s per phase at 1 caller (8 streams of 3.3 s), 13 s above; 4 phases a level.
    per_caller = dict.fromkeys(LEVELS, 1) if quick else {1: 8, 4: 4, 16: 4, 64: 4}
    budget = Budget(120 if quick else 480)
    result: dict[str, Any] = {
        "name": "concurrency",
        "quick": quick,
        "setup": {
            "levels": list(LEVELS),
            "streams_per_caller": {str(k): v for k, v in per_caller.items()},
            "ttft_ms": TTFT_MS,
            "per_token_ms": PER_TOKEN_MS,
            "tokens": TOKENS,
            "stagger_s": STAGGER_S,
            "probe_s": PROBE_S,
            "order": "direct, gateway, gateway, direct per level",
        },
        "criteria": {
            "max_ttft_added_p99_ms": criteria.max_ttft_added_p99_ms,
            "max_duration_ratio_p50": criteria.max_duration_ratio_p50,
            "min_throughput_ratio": criteria.min_throughput_ratio,
            "max_loop_lag_added_p99_ms": criteria.max_loop_lag_added_p99_ms,
            "max_cpu_cores": criteria.max_cpu_cores,
        },
    }
    latency = {"ttft_ms": TTFT_MS, "per_token_ms": PER_TOKEN_MS}
    with SimProcess(_sim_regions(), latency=latency, log_name="concurrency") as sim:
        dev = DevServer(_gateway_env(sim))
        with dev:
            levels, messages = asyncio.run(_measure(sim, dev, LEVELS, per_caller))
    if budget.expired():
        result["over_budget_s"] = round(time.monotonic() - started - budget.seconds, 1)
    result["prompt_tokens_cut_at"] = TOKENS
    result["prompt"] = messages[0]["content"]
    result["levels"] = {str(c): v for c, v in levels.items()}
    result["verdicts"] = {str(c): level_verdict(v, criteria) for c, v in levels.items()}
    result["chosen_http_per_instance_concurrency"] = choose_concurrency(levels, criteria)
    result["elapsed_s"] = round(time.monotonic() - started, 1)
    result["summary"] = _summary(result)
    return result


def _summary(result: Mapping[str, Any]) -> str:
    parts = [f"{c}: {_level_line(v)}" for c, v in result["levels"].items()]
    return (
        "concurrency: "
        + "; ".join(parts)
        + f"; fit up to {result['chosen_http_per_instance_concurrency']} concurrent streams"
    )
