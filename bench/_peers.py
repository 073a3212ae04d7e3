"""What users would otherwise pick: the bare openai SDK and LiteLLM's Router, set up offline.

LiteLLM: 1.109.1 declares ``certifi>=2026.10.19``, which the package index here does not carry,
and every older release caps ``openai<3`` while this app runs openai 3.x. So requirements-bench.txt
lists LiteLLM's dependencies, and ``ensure_litellm`` installs LiteLLM itself with ``--no-deps``
(the certifi pin is a CA-bundle date and changes nothing on loopback). Its telemetry, cost-map
download and callbacks are switched off: no traffic leaves 127.0.0.1.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import subprocess
import sys
from collections.abc import Mapping, Sequence
from typing import Any

from ._harness import API_KEY

__all__ = [
    "API_VERSION",
    "LITELLM_PIN",
    "azure_sdk",
    "ensure_litellm",
    "litellm_router",
    "litellm_version",
    "v1_sdk",
]

LITELLM_PIN = "litellm==1.109.1"
API_VERSION = "2024-10-21"


def ensure_litellm() -> None:
    """Install the pinned LiteLLM without its (unsatisfiable here) certifi pin, once."""
    os.environ["LITELLM_LOCAL_MODEL_COST_MAP"] = "True"
    if importlib.util.find_spec("litellm") is not None:
        return
    print(f"bench: installing {LITELLM_PIN} --no-deps (see bench/_peers.py)", flush=True)
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            "--no-deps",
            LITELLM_PIN,
        ],
        check=True,
        timeout=600,
    )


def litellm_version() -> str:
    try:
        from importlib.metadata import version

        return version("litellm")
    except Exception:  # noqa: BLE001 - informational only
        return "unknown"


def _quiet_litellm() -> Any:
    ensure_litellm()
    import litellm

    litellm.telemetry = False
    litellm.suppress_debug_info = True
    litellm.set_verbose = False
    litellm.success_callback = []
    litellm.failure_callback = []
    litellm.callbacks = []
    for name in ("LiteLLM", "LiteLLM Router", "LiteLLM Proxy", "litellm"):
        logging.getLogger(name).setLevel(logging.CRITICAL)
    return litellm


def litellm_router(
    deployments: Sequence[Mapping[str, str]],
    *,
    num_retries: int = 0,
    allowed_fails: int | None = None,
    cooldown_time: float | None = None,
    timeout: float | None = None,
    routing_strategy: str = "simple-shuffle",
    order: bool = False,
) -> Any:
    """A Router with one model group "gpt-4o" over ``deployments`` ({endpoint, deployment}).

    ``order=True`` sets each deployment's ``order`` (1, 2, ...) so the first is preferred and the
    others are used when it fails: LiteLLM's documented primary/secondary setup.
    """
    _quiet_litellm()
    from litellm import Router

    model_list = []
    for i, dep in enumerate(deployments):
        params: dict[str, Any] = {
            "model": f"azure/{dep['deployment']}",
            "api_base": dep["endpoint"],
            "api_key": API_KEY,
            "api_version": API_VERSION,
        }
        if timeout is not None:
            params["timeout"] = timeout
        if order:
            params["order"] = i + 1
        model_list.append(
            {
                "model_name": "gpt-4o",
                "litellm_params": params,
                "model_info": {"id": f"d{i}", "base_model": "azure/gpt-4o"},
            }
        )
    kwargs: dict[str, Any] = {
        "model_list": model_list,
        "num_retries": num_retries,
        "routing_strategy": routing_strategy,
    }
    if allowed_fails is not None:
        kwargs["allowed_fails"] = allowed_fails
    if cooldown_time is not None:
        kwargs["cooldown_time"] = cooldown_time
    if timeout is not None:
        kwargs["timeout"] = timeout
    return Router(**kwargs)


def v1_sdk(endpoint: str, *, max_retries: int = 2, timeout: float | None = None) -> Any:
    """The bare openai SDK against Azure's v1 API (``AsyncOpenAI``; default retries unless told)."""
    from openai import AsyncOpenAI

    kwargs: dict[str, Any] = {
        "base_url": f"{endpoint}/openai/v1/",
        "api_key": API_KEY,
        "max_retries": max_retries,
    }
    if timeout is not None:
        kwargs["timeout"] = timeout
    return AsyncOpenAI(**kwargs)


def azure_sdk(endpoint: str, *, max_retries: int = 2, timeout: float | None = None) -> Any:
    """The bare openai SDK against the dated API (``AsyncAzureOpenAI``), as LiteLLM's azure/ calls it."""
    from openai import AsyncAzureOpenAI

    kwargs: dict[str, Any] = {
        "azure_endpoint": endpoint,
        "api_key": API_KEY,
        "api_version": API_VERSION,
        "max_retries": max_retries,
    }
    if timeout is not None:
        kwargs["timeout"] = timeout
    return AsyncAzureOpenAI(**kwargs)
