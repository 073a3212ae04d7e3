"""Reasoning and cached tokens of Responses API calls, as the simulator reports them (Azure's
``output_tokens_details.reasoning_tokens`` and ``input_tokens_details.cached_tokens``), counted
in the usage rows (written to and read back from Azurite), the caller's report and its cost."""

from __future__ import annotations

import uuid

from shared.aoai import CallContext
from shared.responses import InMemoryAffinityStore, ResponsesRequest, create_response
from shared.settings import Price, PriceTable
from shared.storage import StorageTarget
from shared.usage import CallerTokenCounter, TableUsageStore, UsageRecorder, summarize

REGION = {
    "name": "eastus2",
    "api_keys": ["local-dev-key"],
    "deployments": [{"name": "o4-mini-prod", "model": "o4-mini", "kind": "chat", "tpm": 900000}],
}
PRICE = Price(input=1.1, cached_input=0.275, output=4.4)


async def test_reasoning_and_cached_tokens_reach_the_rows_the_report_and_the_cost(
    sim_factory, gateway_settings_factory, gateway_factory, azurite, unique_name
):
    sim = sim_factory([REGION])
    store = TableUsageStore(
        StorageTarget(connection=azurite.connection_string).table(unique_name("usage"))
    )
    recorder = UsageRecorder(store, flush_s=60)
    gateway = gateway_factory(
        gateway_settings_factory(sim), observers=[CallerTokenCounter([recorder])]
    )
    caller = f"key:{uuid.uuid4().hex[:12]}"
    affinity = InMemoryAffinityStore()

    def ctx() -> CallContext:
        return CallContext(uuid.uuid4().hex, caller=caller, lane="backlog")

    # A long first turn: its stored context is served from the prompt cache when continued.
    first = await create_response(
        gateway,
        affinity,
        ResponsesRequest(model="o4-mini", input="tell me about herons " * 400),
        ctx(),
        default_max_tokens=400,
    )
    second = await create_response(
        gateway,
        affinity,
        ResponsesRequest(
            model="o4-mini", input="and egrets?", previous_response_id=first.response["id"]
        ),
        ctx(),
        default_max_tokens=400,
    )
    reported = [r.response["usage"] for r in (first, second)]
    reasoning = sum(u["output_tokens_details"]["reasoning_tokens"] for u in reported)
    cached = sum(u["input_tokens_details"]["cached_tokens"] for u in reported)
    assert reasoning > 0 and cached > 0  # as the simulator (and Azure) report them

    assert await recorder.flush()
    rows = await store.read("2000010100", "2999123123", caller=caller)  # from the table
    ((key, counts),) = rows
    assert (key.alias, key.deployment) == ("o4-mini", "o4-mini-prod")
    assert counts.requests == 2
    assert counts.input_tokens == sum(u["input_tokens"] for u in reported)
    assert counts.cached_input_tokens == cached
    assert counts.output_tokens == sum(u["output_tokens"] for u in reported)
    assert counts.reasoning_output_tokens == reasoning

    report = summarize(rows, ["caller"], PriceTable(prices={"o4-mini": PRICE}))
    (mine,) = report["data"]
    assert mine["reasoning_output_tokens"] == reasoning
    assert mine["cached_input_tokens"] == cached
    expected = (
        (counts.input_tokens - cached) * PRICE.input
        + cached * PRICE.cached_input
        + counts.output_tokens * PRICE.output  # reasoning is billed as output, counted in it
    ) / 1e6
    assert abs(mine["cost"] - round(expected, 6)) < 1e-9
    await recorder.aclose()
