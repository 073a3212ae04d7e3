"""Embedding vectors as base64 end to end; floats only for a caller who asked for them.

The gateway always asks upstream for ``encoding_format: "base64"`` (the openai SDK does the
same when its caller does not ask for floats): a vector is then one string of little-endian
float32 bytes instead of ~1,536 Python float objects. 2,048 float vectors are ~3 million
floats, ~100 MB of small objects in pymalloc arenas that a process keeps after the call; the
same vectors as base64 are 2,048 strings of ~8 KB. Vectors stay strings while the parts are
decoded and merged; ``float_vector`` decodes one vector at a time when the answer is written
for a caller who asked for floats (or, on the HTTP API, did not say: OpenAI's default).
"""

from __future__ import annotations

import base64
import sys
from array import array
from typing import Any

__all__ = ["base64_vector", "float32_array", "float_vector", "vectors_as"]

_SWAP = sys.byteorder != "little"


def float32_array(value: Any) -> array[float]:
    """A vector as float32 values: a base64 string decoded, a list of numbers converted."""
    if not isinstance(value, str):
        return array("f", value)
    values = array("f", base64.b64decode(value))
    if _SWAP:
        values.byteswap()
    return values


def float_vector(value: Any) -> list[float]:
    """A vector as a list of floats: a base64 string of float32 decoded, a list kept as is."""
    return float32_array(value).tolist() if isinstance(value, str) else list(value)


def base64_vector(value: Any) -> str:
    """A vector as base64 float32: a string kept as is, a list of floats encoded (an upstream
    that ignored ``encoding_format``)."""
    if isinstance(value, str):
        return value
    values = array("f", value)
    if _SWAP:
        values.byteswap()
    return base64.b64encode(values.tobytes()).decode("ascii")


def vectors_as(body: dict[str, Any], encoding: str) -> dict[str, Any]:
    """``body`` with every item's ``embedding`` in ``encoding`` (``float`` or ``base64``)."""
    convert = float_vector if encoding == "float" else base64_vector
    data = [dict(item, embedding=convert(item.get("embedding"))) for item in body.get("data") or ()]
    return dict(body, data=data)
