"""Client builders for the simulator tests (always max_retries=0)."""

from __future__ import annotations

from typing import Any

import openai

from tests.fixtures.sim import RegionHandle

API_VERSION = "2024-10-21"
SCOPE = "https://cognitiveservices.azure.com/.default"
MESSAGES = [{"role": "user", "content": "Say something about gateways."}]


def azure_client(region: RegionHandle, **kwargs: Any) -> openai.AzureOpenAI:
    """AzureOpenAI on the dated routes with the region's api key."""
    kwargs.setdefault("api_key", region.api_key)
    kwargs.setdefault("timeout", 5)
    return openai.AzureOpenAI(
        azure_endpoint=region.endpoint, api_version=API_VERSION, max_retries=0, **kwargs
    )


def v1_client(region: RegionHandle, **kwargs: Any) -> openai.OpenAI:
    """OpenAI against the region's /openai/v1/ base URL."""
    kwargs.setdefault("api_key", region.api_key)
    kwargs.setdefault("timeout", 5)
    return openai.OpenAI(base_url=region.v1_base_url, max_retries=0, **kwargs)


def chat_deployment(region: RegionHandle) -> str:
    """The region's chat deployment name (first one not named embed*)."""
    return next(d for d in region.deployments if not d.startswith("embed"))


def embed_deployment(region: RegionHandle) -> str:
    """The region's embeddings deployment name."""
    return next(d for d in region.deployments if d.startswith("embed"))
