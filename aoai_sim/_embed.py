"""Deterministic, normalized embedding vectors."""

from __future__ import annotations

import base64
import hashlib
import json
import math
import sys
from array import array
from functools import lru_cache

__all__ = ["embedding", "embedding_json", "encode_base64"]

_SCALE = 1.0 / 2**31


@lru_cache(maxsize=256)
def _full(model: str, text: str, dims: int) -> tuple[float, ...]:
    raw = array("i")
    raw.frombytes(hashlib.shake_256(f"{model}\x00{text}".encode()).digest(4 * dims))
    return tuple(v * _SCALE for v in raw)


def embedding(model: str, text: str, model_dims: int, dims: int | None = None) -> list[float]:
    """A unit vector of ``dims`` (default: the model's) floats, stable for (model, text).

    Shortened vectors are the full vector's prefix renormalized, as text-embedding-3 does.
    """
    full = _full(model, text, model_dims)
    vec = full if dims is None or dims == model_dims else full[:dims]
    norm = math.sqrt(sum(v * v for v in vec)) or 1.0
    return [v / norm for v in vec]


def encode_base64(vec: list[float]) -> str:
    """Little-endian float32 bytes, base64 (what encoding_format=base64 returns)."""
    arr = array("f", vec)
    if arr.itemsize != 4:
        raise RuntimeError("float32 array expected")
    if sys.byteorder != "little":
        arr.byteswap()
    return base64.b64encode(arr.tobytes()).decode("ascii")


@lru_cache(maxsize=1024)
def embedding_json(
    model: str, text: str, model_dims: int, dims: int | None, as_base64: bool
) -> str:
    """The vector serialized for a response body: a JSON string of base64, or a JSON array of
    the same float32 values (as Azure's float answer is), so both encodings decode alike."""
    vec = embedding(model, text, model_dims, dims)
    return json.dumps(encode_base64(vec)) if as_base64 else json.dumps(array("f", vec).tolist())
