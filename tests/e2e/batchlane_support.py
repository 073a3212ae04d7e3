"""Shared pieces of the batch-lane end-to-end tests: a simulator with a Global Batch deployment, a
harness whose backlog has the lane, and checks that every job ended once and was replied once."""

from __future__ import annotations

import copy
import json
from collections import Counter
from typing import Any

from shared.runtime import build_backlog
from shared.settings import load_backlog_settings

from .conftest import Harness, backlog_env

BATCH_DEP = "gpt-4o-batch"
SIM_BATCH_CLOCK = {
    "validating_s": 0.5,
    "in_progress_s": 1.5,
    "finalizing_s": 0.5,
    "cancelling_s": 0.2,
    "window_s": 8,
}
FILTER = {"prompt_triggers": ["SIM_FILTER_PROMPT"], "category": "violence", "severity": "high"}


def batch_regions(enqueued_tokens: int = 1_000_000) -> list[dict[str, Any]]:
    return [
        {
            "name": "eastus2",
            "deployments": [
                {"name": "gpt-4o-prod", "model": "gpt-4o", "kind": "chat", "tpm": 450000},
                {
                    "name": BATCH_DEP,
                    "model": "gpt-4o",
                    "kind": "chat",
                    "sku": "global_batch",
                    "enqueued_tokens": enqueued_tokens,
                },
            ],
            "content_filter": FILTER,
        }
    ]


LANE_ENV = {
    "BACKLOG_BATCH_MAX_WAIT_S": "0.5",
    "BACKLOG_BATCH_WINDOW_S": "8",
    "BACKLOG_BATCH_MARGIN_S": "1",
    "BACKLOG_BATCH_RETRY_S": "0.5",
}


def lane_harness(
    broker: Any,
    azurite: Any,
    unique_name: Any,
    gateway: Any,
    gateway_settings: Any,
    *,
    lane_checkpoint: Any = None,
    env: dict[str, str] | None = None,
    reply_queue: str | None = None,
    usage: Any = None,
) -> Harness:
    values = backlog_env(broker, azurite, unique_name, **{**LANE_ENV, **(env or {})})
    values.setdefault("BACKLOG_BATCH_TABLE", unique_name("lane"))
    settings = load_backlog_settings(values)
    backlog = build_backlog(
        settings,
        gateway,
        gateway_settings=gateway_settings,
        lane_checkpoint=lane_checkpoint,
        usage=usage,
    )
    assert backlog.services.batch_lane is not None
    harness = Harness(backlog, broker, values, reply_queue=reply_queue or unique_name("replies"))
    if reply_queue is None:
        broker.create_queue(harness.reply_queue)
    return harness


def replies_per_job(harness: Harness) -> Counter[str]:
    return Counter(r["job_id"] for r in harness.replies())


def sim_batches(sim: Any) -> list[dict[str, Any]]:
    return sim.region("eastus2").batches()["batches"]


def with_batch_quota(sim_regions: list[dict[str, Any]], tokens: int) -> list[dict[str, Any]]:
    regions = copy.deepcopy(sim_regions)
    for dep in regions[0]["deployments"]:
        if dep.get("sku") == "global_batch":
            dep["enqueued_tokens"] = tokens
    return regions


def dumps(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True)
