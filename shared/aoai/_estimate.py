"""Token estimates of a chat request's prompt and of an assembled answer.

Azure's rate limiter charges a request on arrival from a character estimate, not the billed
count. The gateway mirrors it (``_request_cost.request_tokens``) and counts, at four characters per
token (rounded up over the whole request):

* the text of every message (a string, or the ``text`` of each text part);
* tool calls: each assistant ``tool_calls`` entry's function name and arguments (and the
  legacy ``function_call``); tool results are the ``tool`` messages' text, counted above;
* tool definitions: each entry of ``tools`` (and the legacy ``functions``) as compact JSON.

Images are counted with Azure's documented formula for vision models (GPT-4o, GPT-4 Turbo with
Vision): ``detail: low`` costs 85 tokens; ``high`` scales the image to fit 2048 x 2048, then its
shortest side down to 768 px, and costs 170 per 512-px tile plus 85; ``auto`` (the default) is
the model's choice, so it is counted as ``high``. The size is read from the header of a
``data:`` URL (PNG, GIF, JPEG). For an image given by URL, or one whose size cannot be read,
the size is unknown and the documented worst case for its detail level is charged: 85 for
``low``, 1,445 (a 768 x 2048 image, 8 tiles) otherwise.

The simulator (``aoai_sim``) counts the same way, so tests compare the two.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
from collections.abc import Iterable, Mapping
from typing import Any

__all__ = [
    "IMAGE_LOW_TOKENS",
    "IMAGE_WORST_TOKENS",
    "completion_estimate",
    "image_tokens",
    "prompt_estimate",
]

IMAGE_LOW_TOKENS = 85
_TILE_TOKENS = 170
_TILE = 512
_FIT = 2048
_SHORT_SIDE = 768
# 768 x 2048 after scaling: 2 x 4 tiles, the most any image can cost in high detail.
IMAGE_WORST_TOKENS = IMAGE_LOW_TOKENS + _TILE_TOKENS * 8
_SNIFF_CHARS = 64 * 1024  # base64 characters decoded to find an image's size


def _ceil4(chars: int) -> int:
    return -(-chars // 4)


def prompt_estimate(messages: Iterable[Any], tools: Any = None, functions: Any = None) -> int:
    """Tokens of a chat prompt (see the module docstring). ``messages`` are dicts."""
    chars = 0
    images = 0
    for message in messages:
        if not isinstance(message, Mapping):
            continue
        content = message.get("content")
        if isinstance(content, str):
            chars += len(content)
        elif isinstance(content, list):
            for part in content:
                if not isinstance(part, Mapping):
                    continue
                text = part.get("text")
                if isinstance(text, str):
                    chars += len(text)
                elif part.get("type") == "image_url":
                    images += image_tokens(part.get("image_url"))
        chars += _calls_chars(message.get("tool_calls"), message.get("function_call"))
    chars += _definitions_chars(tools) + _definitions_chars(functions)
    return _ceil4(chars) + images


def completion_estimate(choices: Iterable[Any]) -> int:
    """Tokens of an answer's choices (``chat.completion`` shape): text, refusal and tool calls."""
    chars = 0
    for choice in choices:
        message = choice.get("message") if isinstance(choice, Mapping) else None
        if not isinstance(message, Mapping):
            continue
        for key in ("content", "refusal"):
            value = message.get(key)
            if isinstance(value, str):
                chars += len(value)
        chars += _calls_chars(message.get("tool_calls"), message.get("function_call"))
    return _ceil4(chars)


def _calls_chars(tool_calls: Any, function_call: Any) -> int:
    functions: list[Any] = []
    if isinstance(tool_calls, list):
        functions.extend(c.get("function") for c in tool_calls if isinstance(c, Mapping))
    functions.append(function_call)
    chars = 0
    for function in functions:
        if isinstance(function, Mapping):
            for key in ("name", "arguments"):
                value = function.get(key)
                if isinstance(value, str):
                    chars += len(value)
    return chars


def _definitions_chars(definitions: Any) -> int:
    if not isinstance(definitions, list):
        return 0
    return sum(
        len(json.dumps(d, ensure_ascii=False, separators=(",", ":"), default=str))
        for d in definitions
    )


def image_tokens(image_url: Any) -> int:
    """Tokens of one ``image_url`` part's value (``{"url": ..., "detail": ...}`` or a string)."""
    url, detail = image_url, "auto"
    if isinstance(image_url, Mapping):
        url = image_url.get("url")
        detail = image_url.get("detail") or "auto"
    if detail == "low":
        return IMAGE_LOW_TOKENS
    size = _data_url_size(url) if isinstance(url, str) else None
    if size is None:
        return IMAGE_WORST_TOKENS
    return high_detail_tokens(*size)


def high_detail_tokens(width: int, height: int) -> int:
    """Azure's high-detail image cost for a ``width`` x ``height`` image."""
    if width <= 0 or height <= 0:
        return IMAGE_WORST_TOKENS
    w, h = float(width), float(height)
    if max(w, h) > _FIT:
        scale = _FIT / max(w, h)
        w, h = w * scale, h * scale
    if min(w, h) > _SHORT_SIDE:
        scale = _SHORT_SIDE / min(w, h)
        w, h = w * scale, h * scale
    tiles = math.ceil(w / _TILE) * math.ceil(h / _TILE)
    return IMAGE_LOW_TOKENS + _TILE_TOKENS * tiles


def _data_url_size(url: str) -> tuple[int, int] | None:
    if not url.startswith("data:"):
        return None
    comma = url.find(",", 0, 200)
    if comma < 0 or ";base64" not in url[:comma]:
        return None
    text = url[comma + 1 : comma + 1 + _SNIFF_CHARS]
    text = text[: len(text) - len(text) % 4]
    try:
        head = base64.b64decode(text, validate=False)
    except (binascii.Error, ValueError):
        return None
    return image_size(head)


def image_size(head: bytes) -> tuple[int, int] | None:
    """(width, height) from the first bytes of a PNG, GIF or JPEG file; None if not found."""
    if head[:8] == b"\x89PNG\r\n\x1a\n" and len(head) >= 24:
        return int.from_bytes(head[16:20], "big"), int.from_bytes(head[20:24], "big")
    if head[:6] in (b"GIF87a", b"GIF89a") and len(head) >= 10:
        return int.from_bytes(head[6:8], "little"), int.from_bytes(head[8:10], "little")
    if head[:2] == b"\xff\xd8":
        return _jpeg_size(head)
    return None


def _jpeg_size(data: bytes) -> tuple[int, int] | None:
    index = 2
    while index + 9 < len(data):
        if data[index] != 0xFF:
            return None
        marker = data[index + 1]
        if marker == 0xFF:  # fill byte
            index += 1
            continue
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:
            index += 2
            continue
        length = int.from_bytes(data[index + 2 : index + 4], "big")
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
            height = int.from_bytes(data[index + 5 : index + 7], "big")
            width = int.from_bytes(data[index + 7 : index + 9], "big")
            return width, height
        if length < 2:
            return None
        index += 2 + length
    return None
