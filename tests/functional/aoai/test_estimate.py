"""The gateway's token estimate counts what Azure's rate limiter counts: tool definitions, tool
calls, tool results and images, checked against the simulator's own charge (real openai SDK)."""

from __future__ import annotations

import base64
import struct
import zlib
from typing import Any

import pytest

from shared.aoai import ChatRequest

from ._helpers import TWO_SMALL_REGIONS, ctx

_TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "lookup_order",
            "description": "Find an order by its number and return its status. " * 20,
            "parameters": {
                "type": "object",
                "properties": {"order": {"type": "string", "description": "Order number ü"}},
                "required": ["order"],
            },
        },
    }
]


def _png(width: int, height: int) -> str:
    """A data URL of a valid PNG header (IHDR) of the given size (the pixels are not needed)."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    chunk = (
        struct.pack(">I", len(ihdr))
        + b"IHDR"
        + ihdr
        + struct.pack(">I", zlib.crc32(b"IHDR" + ihdr))
    )
    return "data:image/png;base64," + base64.b64encode(b"\x89PNG\r\n\x1a\n" + chunk).decode()


def _jpeg(width: int, height: int) -> str:
    """A data URL of a JPEG's first segments: SOI, an APP0 (JFIF) segment, then SOF0 with the size."""
    app0 = b"\xff\xe0" + struct.pack(">H", 16) + b"JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00"
    sof0 = b"\xff\xc0" + struct.pack(">HBHHB", 17, 8, height, width, 3) + b"\x01\x22\x00" * 3
    data = b"\xff\xd8" + app0 + sof0 + b"\x00" * 16
    return "data:image/jpeg;base64," + base64.b64encode(data).decode()


def _image(url: str, detail: str | None = None) -> dict[str, Any]:
    value: dict[str, Any] = {"url": url}
    if detail:
        value["detail"] = detail
    return {"type": "image_url", "image_url": value}


_CASES: dict[str, dict[str, Any]] = {
    "tool_definitions": {
        "messages": [{"role": "user", "content": "What is the status of order 42?"}],
        "tools": _TOOLS,
        "tool_choice": "none",
    },
    "tool_calls_and_results": {
        "messages": [
            {"role": "user", "content": "Status of order 42?"},
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": "call_1",
                        "type": "function",
                        "function": {
                            "name": "lookup_order",
                            "arguments": '{"order": "42", "note": "' + "x" * 400 + '"}',
                        },
                    }
                ],
            },
            {"role": "tool", "tool_call_id": "call_1", "content": '{"status": "shipped"}' * 30},
        ],
    },
    "image_high_detail_png": {
        "messages": [
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "Describe."},
                    _image(_png(2048, 4096), "high"),
                ],
            }
        ],
    },
    "image_auto_detail_jpeg": {
        "messages": [{"role": "user", "content": [_image(_jpeg(1024, 1024))]}],
    },
    "image_low_detail": {
        "messages": [{"role": "user", "content": [_image(_png(4096, 8192), "low")]}],
    },
    "image_url_unknown_size": {
        "messages": [{"role": "user", "content": [_image("https://example.invalid/cat.jpg")]}],
    },
}

_EXPECTED_PROMPT = {  # what the old estimate missed, at least
    "tool_definitions": 250,
    "tool_calls_and_results": 100,
    "image_high_detail_png": 1105,  # Azure's documented example: 2048 x 4096 high = 1,105
    "image_low_detail": 85,
    "image_auto_detail_jpeg": 765,  # Azure's documented example: 1024 x 1024 high = 765
    "image_url_unknown_size": 1445,  # the worst case: 768 x 2048, 8 tiles
}


@pytest.mark.parametrize("kind", sorted(_CASES))
async def test_estimate_matches_the_simulators_charge(
    kind, sim_factory, gateway_settings_factory, gateway_factory
):
    sim = sim_factory(TWO_SMALL_REGIONS)
    big = {"tpm": 200_000}
    gateway = gateway_factory(
        gateway_settings_factory(
            sim,
            priorities={"eastus2": 0, "swedencentral": 1},
            deployment_overrides={"gpt-4o-prod": big, "gpt4o-sweden": big},
        )
    )
    request = ChatRequest(model="gpt-4o", max_tokens=10, **_CASES[kind])
    estimate = gateway.estimate_cost(request)
    assert request.prompt_tokens() >= _EXPECTED_PROMPT[kind]
    await gateway.chat(request, ctx())
    stats = sim.region("eastus2").stats()
    charged = stats["deployments"]["gpt-4o-prod"]["tokens_charged"]
    assert charged == estimate
