"""``GatewaySettings`` wired to a running simulator.

``settings_for_sim(sim, **options)`` maps every simulated region to a ``RegionConfig`` (the
deployment's ``model`` becomes the alias: ``gpt-4o``, ``text-embedding-3-small``), with
test-sized timeouts (``TEST_TIMINGS``) and the simulator's scaled minute.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from shared.settings import GatewaySettings

if TYPE_CHECKING:
    from shared.aoai import ManualClock

__all__ = ["TEST_TIMINGS", "RecordedSleeps", "settings_for_sim", "unique_ledger_table"]

# Small enough to keep the suite fast, large enough for a loaded CI machine.
TEST_TIMINGS: dict[str, Any] = {
    "connect_timeout_s": 1.0,
    "read_timeout_s": 2.0,
    "call_deadline_s": 15.0,
    "circuit_failure_threshold": 2,
    "circuit_cooloff_s": 1.0,
    "default_throttle_cooldown_s": 1.0,
    "health_cache_s": 0.2,
}


def unique_ledger_table() -> str:
    """A quota ledger table of its own for one test's app: tests share one Azurite, and a
    ledger row that another test's gateways leased would pace this one's calls."""
    return f"ledger{uuid.uuid4().hex[:12]}"


def settings_for_sim(
    sim: Any,
    *,
    regions: list[str] | None = None,
    auth: str = "api_key",
    api_style: str = "v1",
    api_keys: Mapping[str, str] | None = None,
    client_id: str | None = None,
    priorities: Mapping[str, int] | None = None,
    region_overrides: Mapping[str, Mapping[str, Any]] | None = None,
    deployment_overrides: Mapping[str, Mapping[str, Any]] | None = None,
    **overrides: Any,
) -> GatewaySettings:
    """Settings for ``sim``'s regions (all, or those named in ``regions``, in that order).

    * ``auth``: ``api_key`` (the region's key, or ``api_keys[name]``), ``managed_identity``
      (``client_id`` optional) or ``openai`` (v1 routes as a plain OpenAI endpoint).
    * ``region_overrides[name]`` / ``deployment_overrides[deployment]``: fields replaced in the
      generated region / deployment dicts (e.g. a wrong deployment name, a priority, max_inputs).
    * other keyword arguments override ``GatewaySettings`` fields (defaults: ``TEST_TIMINGS``).
    """
    config = json.loads(sim.config_path.read_text())
    sim_regions = {r["name"]: r for r in config["regions"]}
    names = regions if regions is not None else list(sim_regions)
    table = []
    for name in names:
        raw = sim_regions[name]
        handle = sim.region(name)
        models: dict[str, Any] = {}
        batch: dict[str, Any] = {}
        for dep in raw["deployments"]:
            if dep.get("sku") == "global_batch":  # the batch lane's deployments
                batch[dep["model"]] = {
                    "deployment": dep["name"],
                    "enqueued_tokens": dep.get("enqueued_tokens", 5_000_000),
                }
                continue
            entry: dict[str, Any] = {"deployment": dep["name"], "tpm": dep.get("tpm", 450000)}
            if dep.get("rpm") is not None:
                entry["rpm"] = dep["rpm"]
            entry.update((deployment_overrides or {}).get(dep["name"], {}))
            models[dep["model"]] = entry
        region: dict[str, Any] = {
            "name": name,
            "priority": (priorities or {}).get(name, 1),
            "auth": auth,
            "api_style": api_style,
            "models": models,
        }
        if batch:
            region["batch"] = batch
        if auth == "openai":
            region["endpoint"] = handle.v1_base_url.rstrip("/")
        else:
            region["endpoint"] = handle.endpoint
        if auth in ("api_key", "openai"):
            region["api_key"] = (api_keys or {}).get(name, handle.api_key)
        elif client_id is not None:
            region["client_id"] = client_id
        region.update((region_overrides or {}).get(name, {}))
        table.append(region)
    values = {
        **TEST_TIMINGS,
        "quota_minute_s": float(config.get("minute_seconds", 60)),
        **overrides,
    }
    if overrides.get("storage_connection") and "ledger_table" not in overrides:
        values["ledger_table"] = unique_ledger_table()  # each settings object is its own app
    return GatewaySettings.model_validate({"regions": table, **values})


class RecordedSleeps:
    """A ``sleep`` seam (the call loop's, the ledger's): records each wait in ``waits`` and moves
    the ``ManualClock`` by it instead of sleeping; ``yield_to_others`` lets other tasks run."""

    def __init__(self, clock: ManualClock, *, yield_to_others: bool = False) -> None:
        self.clock = clock
        self.yield_to_others = yield_to_others
        self.waits: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)
        self.clock.advance(seconds)
        if self.yield_to_others:
            await asyncio.sleep(0)
