"""`make run`'s configuration works: the example settings' region table matches the simulator's
`aoai_sim/local.json`, and the aliases `gpt-4o` and `text-embedding-3-small` answer through the
dev server (here on free ports instead of 8081/8082/7071)."""

from __future__ import annotations

import json
from pathlib import Path

from openai import OpenAI

from shared.settings import load_gateway_settings

ROOT = Path(__file__).resolve().parents[3]


def example_values() -> dict[str, str]:
    return json.loads((ROOT / "local.settings.example.json").read_text())["Values"]


def sim_config() -> dict:
    return json.loads((ROOT / "aoai_sim" / "local.json").read_text())


def test_example_region_table_matches_the_local_simulator():
    settings = load_gateway_settings(example_values())
    sim = {region["name"]: region for region in sim_config()["regions"]}
    assert set(settings.aliases) >= {"gpt-4o", "text-embedding-3-small"}
    for region in settings.regions:
        served = {d["name"]: d for d in sim[region.name]["deployments"]}
        assert region.endpoint == f"http://127.0.0.1:{sim[region.name]['port']}"
        assert region.api_key.get_secret_value() == sim_config()["api_key"]
        for alias, deployment in region.models.items():
            assert served[deployment.deployment]["model"] == alias
            assert deployment.tpm == served[deployment.deployment]["tpm"], (
                "the gateway would pace below (or above) the quota"
            )


def test_the_local_aliases_answer_through_the_dev_server(sim_factory, app_env, devserver):
    regions = [
        {k: v for k, v in region.items() if k != "port"} for region in sim_config()["regions"]
    ]
    sim = sim_factory(regions)
    table = json.loads(example_values()["GATEWAY_REGIONS"])
    for region in table:
        region["endpoint"] = sim.region(region["name"]).endpoint
    app_env({"GATEWAY_REGIONS": json.dumps(table)})
    client = OpenAI(
        base_url=devserver.base_url + "/v1",
        api_key="unused",
        default_headers={"x-functions-key": "local"},
        max_retries=0,
    )

    chat = client.chat.completions.with_raw_response.create(
        model="gpt-4o", messages=[{"role": "user", "content": "hello"}], max_tokens=8
    )
    assert chat.headers["x-gateway-region"] == "eastus2"  # priority 1 first
    assert chat.headers["x-gateway-deployment"] == "gpt-4o-prod"
    assert chat.parse().choices[0].message.content
    embedded = client.embeddings.create(model="text-embedding-3-small", input=["a", "b"])
    assert [len(item.embedding) for item in embedded.data] == [1536, 1536]
    assert sim.region("eastus2").stats()["served"] == 2
