"""Overhead: what the access layer, the HTTP path and LiteLLM add to one call.

Core (in-process, one event loop): arms call the same zero-latency simulated deployment, one
call per arm per round, the order rotated each round (``interleaved_rounds``):

* ``sdk``        ``AsyncOpenAI(...).chat.completions.create`` (v1 API, typed response): what users write
* ``sdk_raw``    the same client's ``client.post(..., cast_to=httpx Response)`` + ``json()``: the very
                 transport the access layer uses, so ``gateway - sdk_raw`` is the layer's own work
* ``sdk_raw_stream`` the same raw ``post`` with ``stream=True`` (and ``include_usage``), every SSE event
                 decoded by the SDK's ``AsyncStream``: the transport the access layer uses by default, since
                 it asks upstream for a stream even for a non-streaming caller (``stream_upstream``, the
                 hung-region deadlines of issue 10). The layer decodes that same response's events itself
                 (``shared/aoai/_sse_reader.py``, cheaper than ``AsyncStream``), so its added figure is its
                 own work net of that saving
* ``gateway``    ``Gateway.chat(ChatRequest, CallContext)`` (v1 API, default settings: streamed upstream and
                 reassembled), request model built inside the timing, so ``gateway - sdk_raw_stream`` is
                 the layer's own work on its default path
* ``gateway_json`` the same with ``GATEWAY_STREAM_UPSTREAM=false`` (one JSON answer upstream), against
                 ``sdk_raw``; ``gateway - gateway_json`` is what streaming upstream costs
* ``sdk_dated``  ``AsyncAzureOpenAI(...).chat.completions.create`` (dated API, what LiteLLM's azure/ uses)
* ``litellm``    ``Router.acompletion`` over the same deployment (dated API)
* ``sdk_raw_responses`` the raw ``post("/responses")`` with ``stream: true``, every event read through
                 the SDK's ``AsyncStream`` (the Responses API, stored)
* ``gateway_responses`` ``Gateway.call_deployment("responses", ...)`` with ``streamed_create``: what
                 the gateway's Responses route runs for a non-streaming create on its default path
                 (streamed upstream under the first-byte and idle deadlines, answered with the
                 final event's response), so ``gateway_responses - sdk_raw_responses`` is the
                 layer's own work there over the same streamed transport

Full HTTP path (separate processes): the caller's ``AsyncOpenAI`` pointed at the dev server
(``/api/v1``) against the same client pointed straight at the simulator; non-streaming latency
and, for ``stream=True``, time to the first content chunk. The Responses API arm runs in the same
interleaved rounds: ``client.responses.create`` (stored, the default, so the gateway records where
each response lives) through the dev server against the same call straight at the simulator, and
for ``stream=True`` the time to the first ``response.output_text.delta``. Its target compares it
with the chat arm of the same rounds (``RESPONSES_MARGIN_MS``): the Responses route runs the same
call loop as chat plus the affinity record (in memory on the dev server; a Table write in Azure,
not measured here), so it should cost no more than chat's route on this machine and run plus a
small margin; an absolute figure would say more about the machine's load than about the route.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from ._harness import (
    API_KEY,
    Budget,
    DevServer,
    SimProcess,
    added_latency,
    gateway_regions,
    interleaved_rounds,
    summarize,
)
from ._peers import azure_sdk, litellm_router, litellm_version, v1_sdk

__all__ = ["run"]

ALIAS = "gpt-4o"
DEPLOYMENT = "bench-chat"
MESSAGES = [{"role": "user", "content": "Say hello in five words."}]
MAX_TOKENS = 8
TARGET_P50_MS = 0.3
TARGET_P99_MS = 1.0
RESPONSES_INPUT = "Say hello in five words."
RESPONSES_MAX_OUTPUT = 16  # the Responses API's minimum
RESPONSES_MARGIN_MS = 1.0  # HTTP path: the Responses route may add this much more than chat's
_UNLIMITED = 10**9

Call = Callable[[], Awaitable[Any]]


def _sim_regions() -> list[dict[str, Any]]:
    dep = {
        "name": DEPLOYMENT,
        "model": "gpt-4o",
        "kind": "chat",
        "tpm": _UNLIMITED,
        "rpm": _UNLIMITED,
    }
    return [{"name": "solo", "deployments": [dep]}]


async def _timed_rounds(
    arms: dict[str, Call], rounds: int, warmup: int, budget: Budget
) -> dict[str, list[float]]:
    """Run every arm once per round in rotated order; return per-arm latencies in ms (paired by index)."""
    names = tuple(arms)
    for _ in range(warmup):
        for name in names:
            await arms[name]()
    samples: dict[str, list[float]] = {name: [] for name in names}
    clock = time.perf_counter
    for _, order in interleaved_rounds(names, rounds):
        if budget.expired():
            break
        for name in order:
            t0 = clock()
            await arms[name]()
            samples[name].append((clock() - t0) * 1000.0)
    return samples


async def _core(sim: SimProcess, rounds: int, budget: Budget) -> dict[str, Any]:
    import httpx2

    from shared.aoai import CallContext, ChatRequest, Gateway
    from shared.responses import streamed_create
    from shared.settings import GatewaySettings

    endpoint = sim.endpoint("solo")
    settings = GatewaySettings(
        regions=gateway_regions(sim, [("solo", 0, DEPLOYMENT, _UNLIMITED)], ALIAS)
    )
    gateway = Gateway(settings)
    gateway_json = Gateway(settings.model_copy(update={"stream_upstream": False}))
    sdk = v1_sdk(endpoint, max_retries=0)
    raw = v1_sdk(endpoint, max_retries=0)
    dated = azure_sdk(endpoint, max_retries=0)
    router = litellm_router([{"endpoint": endpoint, "deployment": DEPLOYMENT}], num_retries=0)
    body = {"model": DEPLOYMENT, "messages": MESSAGES, "max_tokens": MAX_TOKENS}

    async def call_sdk() -> Any:
        return await sdk.chat.completions.create(
            model=DEPLOYMENT, messages=MESSAGES, max_tokens=MAX_TOKENS
        )

    async def call_raw() -> Any:
        response = await raw.post("/chat/completions", body=body, cast_to=httpx2.Response)
        return response.json()

    streamed = dict(body, stream=True, stream_options={"include_usage": True})

    async def call_raw_stream() -> Any:
        from openai import AsyncStream

        response = await raw.post(
            "/chat/completions", body=streamed, cast_to=httpx2.Response, stream=True
        )
        return [event async for event in AsyncStream(cast_to=object, response=response, client=raw)]

    async def call_gateway() -> Any:
        request = ChatRequest(model=ALIAS, messages=MESSAGES, max_tokens=MAX_TOKENS)
        return await gateway.chat(request, CallContext(correlation_id=uuid.uuid4().hex))

    async def call_gateway_json() -> Any:
        request = ChatRequest(model=ALIAS, messages=MESSAGES, max_tokens=MAX_TOKENS)
        return await gateway_json.chat(request, CallContext(correlation_id=uuid.uuid4().hex))

    async def call_dated() -> Any:
        return await dated.chat.completions.create(
            model=DEPLOYMENT, messages=MESSAGES, max_tokens=MAX_TOKENS
        )

    async def call_litellm() -> Any:
        return await router.acompletion(model=ALIAS, messages=MESSAGES, max_tokens=MAX_TOKENS)

    responses_body = {"input": RESPONSES_INPUT, "max_output_tokens": RESPONSES_MAX_OUTPUT}

    async def call_raw_responses() -> Any:
        from openai import AsyncStream

        body = {"model": DEPLOYMENT, **responses_body, "stream": True}
        response = await raw.post("/responses", body=body, cast_to=httpx2.Response, stream=True)
        return [event async for event in AsyncStream(cast_to=object, response=response, client=raw)]

    async def call_gateway_responses() -> Any:
        value, _ = await gateway.call_deployment(
            "responses",
            ALIAS,
            path="/responses",
            body={"model": ALIAS, **responses_body},
            send=streamed_create(gateway.senders),
            cost=RESPONSES_MAX_OUTPUT + len(RESPONSES_INPUT) // 4 + 1,
            ctx=CallContext(correlation_id=uuid.uuid4().hex),
        )
        return value

    arms = {
        "sdk": call_sdk,
        "sdk_raw": call_raw,
        "sdk_raw_stream": call_raw_stream,
        "gateway": call_gateway,
        "gateway_json": call_gateway_json,
        "sdk_dated": call_dated,
        # before litellm: the arm after it (cyclically, ``sdk``) pays for the background work
        # LiteLLM leaves behind, so new arms go where they do not change who follows it
        "sdk_raw_responses": call_raw_responses,
        "gateway_responses": call_gateway_responses,
        "litellm": call_litellm,
    }
    try:
        samples = await _timed_rounds(arms, rounds, warmup=min(100, rounds), budget=budget)
    finally:
        await gateway.aclose()
        await gateway_json.aclose()
        for client in (sdk, raw, dated):
            await client.close()
    stats = sim.stats("solo")
    return {
        "rounds": len(samples["sdk"]),
        "latency_ms": {name: summarize(values) for name, values in samples.items()},
        "gateway_vs_sdk": added_latency(samples["sdk"], samples["gateway"]),
        "gateway_vs_sdk_raw_stream": added_latency(samples["sdk_raw_stream"], samples["gateway"]),
        "gateway_json_vs_sdk_raw": added_latency(samples["sdk_raw"], samples["gateway_json"]),
        "stream_upstream_cost": added_latency(samples["gateway_json"], samples["gateway"]),
        "litellm_vs_sdk_dated": added_latency(samples["sdk_dated"], samples["litellm"]),
        "litellm_vs_sdk": added_latency(samples["sdk"], samples["litellm"]),
        "gateway_responses_vs_sdk_raw_responses": added_latency(
            samples["sdk_raw_responses"], samples["gateway_responses"]
        ),
        "litellm_version": litellm_version(),
        "sim_requests": stats.get("requests"),
        "sim_non_200": {k: v for k, v in (stats.get("by_status") or {}).items() if k != "200"},
    }


async def _first_content(stream: Any) -> None:
    async for chunk in stream:
        if chunk.choices and chunk.choices[0].delta and chunk.choices[0].delta.content:
            return


async def _http(
    sim: SimProcess, dev: DevServer, rounds: int, stream_rounds: int, budget: Budget
) -> dict[str, Any]:
    from openai import AsyncOpenAI

    direct = v1_sdk(sim.endpoint("solo"), max_retries=0)
    via = AsyncOpenAI(
        base_url=dev.base_url,
        api_key=API_KEY,
        max_retries=0,
        default_headers={"x-functions-key": "local"},
    )

    def chat(client: Any, model: str) -> Call:
        async def call() -> Any:
            return await client.chat.completions.create(
                model=model, messages=MESSAGES, max_tokens=MAX_TOKENS
            )

        return call

    def respond(client: Any, model: str) -> Call:
        async def call() -> Any:
            return await client.responses.create(
                model=model, input=RESPONSES_INPUT, max_output_tokens=RESPONSES_MAX_OUTPUT
            )

        return call

    def respond_first_delta(client: Any, model: str) -> Call:
        async def call() -> Any:
            stream = await client.responses.create(
                model=model,
                input=RESPONSES_INPUT,
                max_output_tokens=RESPONSES_MAX_OUTPUT,
                stream=True,
            )
            try:
                async for event in stream:
                    if event.type == "response.output_text.delta":
                        return
            finally:
                await stream.close()

        return call

    def ttft(client: Any, model: str) -> Call:
        async def call() -> Any:
            stream = await client.chat.completions.create(
                model=model, messages=MESSAGES, max_tokens=MAX_TOKENS, stream=True
            )
            try:
                await _first_content(stream)
            finally:
                await stream.close()

        return call

    try:
        plain = await _timed_rounds(
            {
                "direct": chat(direct, DEPLOYMENT),
                "devserver": chat(via, ALIAS),
                "responses_direct": respond(direct, DEPLOYMENT),
                "responses_devserver": respond(via, ALIAS),
            },
            rounds,
            30,
            budget,
        )
        streams = await _timed_rounds(
            {
                "direct": ttft(direct, DEPLOYMENT),
                "devserver": ttft(via, ALIAS),
                "responses_direct": respond_first_delta(direct, DEPLOYMENT),
                "responses_devserver": respond_first_delta(via, ALIAS),
            },
            stream_rounds,
            10,
            budget,
        )
    finally:
        await direct.close()
        await via.close()
    return {
        "rounds": len(plain["direct"]),
        "latency_ms": {name: summarize(v) for name, v in plain.items()},
        "added": added_latency(plain["direct"], plain["devserver"]),
        "stream_rounds": len(streams["direct"]),
        "ttft_ms": {name: summarize(v) for name, v in streams.items()},
        "ttft_added": added_latency(streams["direct"], streams["devserver"]),
        "responses_added": added_latency(plain["responses_direct"], plain["responses_devserver"]),
        "responses_first_delta_added": added_latency(
            streams["responses_direct"], streams["responses_devserver"]
        ),
    }


def _gateway_env(sim: SimProcess) -> dict[str, str]:
    import json

    regions = gateway_regions(sim, [("solo", 0, DEPLOYMENT, _UNLIMITED)], ALIAS)
    return {
        "GATEWAY_REGIONS": json.dumps(regions),
        "FUNCTIONS_WORKER_RUNTIME": "python",
        "PYTHON_ENABLE_INIT_INDEXING": "1",
    }


def run(quick: bool = False) -> dict[str, Any]:
    started = time.monotonic()
    rounds = 200 if quick else 2000
    http_rounds = 100 if quick else 1000
    stream_rounds = 30 if quick else 300
    result: dict[str, Any] = {"name": "overhead", "quick": quick}
    with SimProcess(_sim_regions(), log_name="overhead") as sim:
        result["core"] = asyncio.run(_core(sim, rounds, Budget(60 if quick else 240)))
        try:
            with DevServer(_gateway_env(sim)) as dev:
                result["http"] = asyncio.run(
                    _http(sim, dev, http_rounds, stream_rounds, Budget(80 if quick else 300))
                )
        except Exception as exc:  # noqa: BLE001 - reported, the other parts still count
            result["http"] = {"error": f"{type(exc).__name__}: {exc}"}
    result["elapsed_s"] = round(time.monotonic() - started, 1)
    result["targets"] = _targets(result)
    result["summary"] = _summary(result)
    return result


def _targets(result: dict[str, Any]) -> list[dict[str, Any]]:
    core = result["core"]
    out = []
    for key, label in (
        ("gateway_vs_sdk_raw_stream", "default path, vs the same streamed SDK transport"),
        ("gateway_json_vs_sdk_raw", "stream_upstream off, vs the same JSON SDK transport"),
        (
            "gateway_responses_vs_sdk_raw_responses",
            "Responses API, vs the same streamed SDK transport",
        ),
    ):
        added = core[key]
        out += [
            {
                "what": f"core added p50 ({label})",
                "target": f"<= {TARGET_P50_MS} ms",
                "measured": added["p50"],
                "unit": "ms",
                "met": added["p50"] <= TARGET_P50_MS,
            },
            {
                "what": f"core added p99 ({label})",
                "target": f"<= {TARGET_P99_MS} ms",
                "measured": added["p99"],
                "unit": "ms",
                "met": added["p99"] <= TARGET_P99_MS,
            },
        ]
    out.append(
        {
            "what": "core rounds (each arm)",
            "target": ">= 2000",
            "measured": core["rounds"],
            "unit": "calls",
            "met": core["rounds"] >= 2000,
        }
    )
    return out + responses_http_targets(result.get("http", {}))


def responses_http_targets(http: dict[str, Any]) -> list[dict[str, Any]]:
    """The HTTP path's Responses arm against the chat arm of the same interleaved rounds: what
    the Responses route adds (p50, and the first text delta of a stream) may exceed what the chat
    route adds by at most ``RESPONSES_MARGIN_MS``. Not measured is a miss, never a pass."""
    rows = (
        ("added p50", "responses_added", "added"),
        ("first text delta added p50 (stream)", "responses_first_delta_added", "ttft_added"),
    )
    out = []
    for what, key, chat_key in rows:
        mine, chat = http.get(key), http.get(chat_key)
        label = f"HTTP path, Responses API: {what}, minus chat's in the same rounds"
        target = f"<= {RESPONSES_MARGIN_MS} ms"
        if not mine or not chat:
            why = http.get("error", "no Responses arm in this run")
            measured = f"not measured ({why})"[:120]
            out.append(
                {"what": label, "target": target, "measured": measured, "unit": "", "met": False}
            )
            continue
        excess = round(mine["p50"] - chat["p50"], 3)
        out.append(
            {
                "what": label,
                "target": target,
                "measured": excess,
                "unit": f"ms (Responses +{mine['p50']:.3f}, chat +{chat['p50']:.3f})",
                "met": excess <= RESPONSES_MARGIN_MS,
            }
        )
    return out


def _summary(result: dict[str, Any]) -> str:
    core = result["core"]
    g, ll = core["gateway_vs_sdk"], core["litellm_vs_sdk_dated"]
    gs, gj = core["gateway_vs_sdk_raw_stream"], core["gateway_json_vs_sdk_raw"]
    cost = core["stream_upstream_cost"]
    sdk_p50 = core["latency_ms"]["sdk"]["p50"]
    line = (
        f"overhead: core n={core['rounds']} gateway adds p50 {gs['p50']:+.3f} ms / p99 {gs['p99']:+.3f} ms over the same "
        f"streamed SDK transport (stream_upstream off: {gj['p50']:+.3f}/{gj['p99']:+.3f} ms over the JSON transport; "
        f"streaming upstream costs p50 {cost['p50']:+.3f} ms); "
        f"{g['p50']:+.3f}/{g['p99']:+.3f} ms vs typed SDK call, p50 ratio {core['latency_ms']['gateway']['p50'] / sdk_p50:.2f}x; "
        f"LiteLLM adds p50 {ll['p50']:+.3f} ms / p99 {ll['p99']:+.3f} ms "
        f"(ratio {core['latency_ms']['litellm']['p50'] / core['latency_ms']['sdk_dated']['p50']:.2f}x)"
    )
    http = result.get("http", {})
    if "added" in http:
        line += (
            f"; HTTP path adds p50 {http['added']['p50']:+.3f} ms / p99 {http['added']['p99']:+.3f} ms, "
            f"stream TTFT +{http['ttft_added']['p50']:.3f} ms p50"
        )
    elif "error" in http:
        line += f"; HTTP path not measured ({http['error'][:80]})"
    resp = core.get("gateway_responses_vs_sdk_raw_responses")
    if resp:
        line += (
            f"; Responses API: core adds p50 {resp['p50']:+.3f} ms / p99 {resp['p99']:+.3f} ms "
            "over the same streamed transport"
        )
    if "responses_added" in http:
        ra, rd = http["responses_added"], http["responses_first_delta_added"]
        line += (
            f", HTTP path adds p50 {ra['p50']:+.3f} ms / p99 {ra['p99']:+.3f} ms, "
            f"first text delta +{rd['p50']:.3f} ms p50"
        )
    return line
