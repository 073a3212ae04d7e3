"""Helpers for the access layer's functional tests (real SDK, simulated regions)."""

from __future__ import annotations

import uuid

from shared.aoai import CallContext, ChatRequest

# Two regions, one small gpt-4o deployment each (2,000 TPM, 600 RPM).
TWO_SMALL_REGIONS = [
    {
        "name": "eastus2",
        "deployments": [
            {"name": "gpt-4o-prod", "model": "gpt-4o", "kind": "chat", "tpm": 2000, "rpm": 600}
        ],
    },
    {
        "name": "swedencentral",
        "deployments": [
            {"name": "gpt4o-sweden", "model": "gpt-4o", "kind": "chat", "tpm": 2000, "rpm": 600}
        ],
    },
]


def ctx(timeout_s: float | None = None) -> CallContext:
    return CallContext(correlation_id=uuid.uuid4().hex, caller="tests", timeout_s=timeout_s)


def chat(
    text: str = "Say hello to the gateway.", *, max_tokens: int = 20, stream: bool = False, **extra
) -> ChatRequest:
    return ChatRequest(
        model="gpt-4o",
        messages=[{"role": "user", "content": text}],
        max_tokens=max_tokens,
        stream=stream,
        **extra,
    )


def chat_requests(stats: dict, deployment: str) -> int:
    """Requests the simulator saw for one deployment (any outcome)."""
    return int(stats.get("deployments", {}).get(deployment, {}).get("requests", 0))
