"""The embeddings answer written to the caller, a slice of vectors at a time, off the loop.

The gateway hands the handler its vectors as base64 strings (``shared.aoai._vectors``). For a
caller who asked for floats (or did not say: OpenAI's HTTP default) each slice of vectors is
decoded and serialized in a worker thread and sent as it is ready, so neither the event loop
nor memory ever holds the whole float answer (~40 MB of JSON, ~100 MB of float objects for
2,048 vectors): at most one slice of floats exists at a time. A float is written with 9
significant digits, which give back its float32 value exactly. A base64 answer is written the
same way. An answer of one slice is sent as a plain body with a length. A worker thread still
competes with the event loop for the GIL, and a thread waiting for the GIL gets it only after
the switch interval (5 ms) unless the holder lets go: the worker lets go after every vector, so
small calls on the loop are not held back 5 ms per step (bench/embeddings_load.py: median chat
p99 added during a 2,048-vector float answer 27 -> 18 ms over six alternating runs).
"""

from __future__ import annotations

import asyncio
import ctypes
import json
import time
from collections.abc import AsyncIterator, Callable
from functools import lru_cache
from typing import Any

from shared.aoai import float32_array

__all__ = ["SLICE", "embeddings_chunks", "json_bytes", "release_freed_memory"]

SLICE = 64  # vectors per worker-thread hop: ~0.4 MB of base64, ~2 MB of float JSON
_DATA = b'"data":[]'


def json_bytes(body: Any) -> bytes:
    """What JSONResponse would send (compact, UTF-8)."""
    return json.dumps(
        body, ensure_ascii=False, allow_nan=False, indent=None, separators=(",", ":")
    ).encode("utf-8")


@lru_cache(maxsize=8)
def _format(dims: int) -> str:
    # 9 significant digits give back every float32 exactly (and are 40% shorter and 3x faster
    # to write than the shortest repr of the float64 each value becomes in Python).
    return "[" + ",".join(["%.9g"] * dims) + "]"


def _floats(vector: Any) -> str:
    """A vector as a JSON array of its float32 values."""
    values = float32_array(vector)
    text = _format(len(values)) % tuple(values)
    if "n" in text:  # nan or inf: not JSON (and never an embedding)
        raise ValueError("an embedding holds a value that is not a finite number")
    return text


def _item(item: dict[str, Any], as_float: bool) -> bytes:
    if not as_float:
        return json_bytes(item)
    rest = json_bytes({k: v for k, v in item.items() if k != "embedding"})
    vector = b'"embedding":' + _floats(item.get("embedding")).encode("ascii")
    return rest[:-1] + (b"," if len(rest) > 2 else b"") + vector + b"}"


def _items(items: list[dict[str, Any]], as_float: bool, first: bool) -> bytes:
    parts = []
    for item in items:
        parts.append(_item(item, as_float))
        time.sleep(0)  # hand the GIL to the event loop's thread between vectors
    encoded = b",".join(parts)
    return encoded if first else b"," + encoded


def _shell(body: dict[str, Any]) -> tuple[bytes, bytes]:
    """The answer's bytes before and after its ``data`` items."""
    shell = json_bytes(dict(body, data=[]))
    head, _, tail = shell.partition(_DATA)  # a string value cannot hold it unescaped
    return head + b'"data":[', b"]" + tail


async def embeddings_chunks(body: dict[str, Any], as_float: bool) -> AsyncIterator[bytes]:
    """The answer's bytes, one slice of ``SLICE`` vectors at a time, each made off the loop.
    After a large answer the heap pages it freed are given back to the OS."""
    data = body.get("data") or []
    head, tail = _shell(body)
    del body  # the generator's frame must not keep the vectors alive until the trim below
    yield head
    for start in range(0, len(data), SLICE):
        yield await asyncio.to_thread(_items, data[start : start + SLICE], as_float, start == 0)
    large = len(data) > SLICE
    del data
    yield tail
    if large:
        await asyncio.to_thread(release_freed_memory)


@lru_cache(maxsize=1)
def _malloc_trim() -> Callable[[int], int] | None:
    try:
        return ctypes.CDLL("libc.so.6").malloc_trim  # glibc (Linux, Azure Functions)
    except (OSError, AttributeError):  # another C library: nothing to do
        return None


def release_freed_memory() -> None:
    """Ask glibc to give freed heap pages back to the OS. Python frees a large answer's
    objects at once, but glibc keeps the pages in its heaps (one per thread that allocated:
    the worker threads above), so RSS would stay ~45 MB above the baseline after a
    2,048-vector answer; ``malloc_trim`` returns it (bench/embeddings_load.py)."""
    trim = _malloc_trim()
    if trim is not None:
        trim(0)
