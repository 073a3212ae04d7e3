"""Image input tokens, as Azure documents them for vision models (GPT-4o, GPT-4 Turbo with Vision).

``detail: low``: 85 tokens. ``high``: the image is scaled to fit 2048 x 2048, then its shortest
side down to 768 px; 170 tokens per 512-px tile, plus 85. ``auto`` (the default) is counted as
``high``. The simulator reads the size from a ``data:`` URL's PNG, GIF or JPEG header; an image
given by URL (the simulator never downloads it) or of unreadable size costs the worst case,
1,445 tokens (768 x 2048, 8 tiles).
"""

from __future__ import annotations

import base64
import binascii
import math
from typing import Any

__all__ = ["image_tokens", "prompt_image_tokens"]

_LOW = 85
_TILE_TOKENS = 170
_WORST = _LOW + _TILE_TOKENS * 8


def prompt_image_tokens(messages: list[Any]) -> int:
    """Tokens of every ``image_url`` part of ``messages``."""
    total = 0
    for message in messages:
        content = message.get("content") if isinstance(message, dict) else None
        if isinstance(content, list):
            for part in content:
                if isinstance(part, dict) and part.get("type") == "image_url":
                    total += image_tokens(part.get("image_url"))
    return total


def image_tokens(image_url: Any) -> int:
    url, detail = image_url, "auto"
    if isinstance(image_url, dict):
        url, detail = image_url.get("url"), image_url.get("detail") or "auto"
    if detail == "low":
        return _LOW
    size = _size(url) if isinstance(url, str) else None
    if size is None or min(size) <= 0:
        return _WORST
    w, h = float(size[0]), float(size[1])
    if max(w, h) > 2048:
        w, h = w * 2048 / max(w, h), h * 2048 / max(w, h)
    if min(w, h) > 768:
        w, h = w * 768 / min(w, h), h * 768 / min(w, h)
    return _LOW + _TILE_TOKENS * math.ceil(w / 512) * math.ceil(h / 512)


def _size(url: str) -> tuple[int, int] | None:
    head_end = url.find(",", 0, 200)
    if not url.startswith("data:") or head_end < 0 or ";base64" not in url[:head_end]:
        return None
    text = url[head_end + 1 : head_end + 1 + 65536]
    try:
        data = base64.b64decode(text[: len(text) - len(text) % 4])
    except (binascii.Error, ValueError):
        return None
    if data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) >= 24:
        return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    if data[:6] in (b"GIF87a", b"GIF89a") and len(data) >= 10:
        return int.from_bytes(data[6:8], "little"), int.from_bytes(data[8:10], "little")
    if data[:2] != b"\xff\xd8":
        return None
    i = 2
    while i + 9 < len(data) and data[i] == 0xFF:
        marker = data[i + 1]
        if marker == 0xFF:
            i += 1
            continue
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:
            i += 2
            continue
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
            return int.from_bytes(data[i + 7 : i + 9], "big"), int.from_bytes(
                data[i + 5 : i + 7], "big"
            )
        length = int.from_bytes(data[i + 2 : i + 4], "big")
        if length < 2:
            return None
        i += 2 + length
    return None
