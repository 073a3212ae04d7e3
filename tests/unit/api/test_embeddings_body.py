"""The embeddings answer writer: float32 values exact in both encodings, the shell around the
items kept whatever the other fields hold, never a non-JSON number."""

from __future__ import annotations

import base64
import json
import math
from array import array

import pytest

from shared.aoai._vectors import base64_vector, float_vector, vectors_as
from shared.api._embeddings_body import SLICE, embeddings_chunks


def _b64(values: list[float]) -> str:
    return base64.b64encode(array("f", values).tobytes()).decode()


async def _write(body: dict, as_float: bool) -> bytes:
    return b"".join([chunk async for chunk in embeddings_chunks(body, as_float)])


@pytest.mark.parametrize("count", [1, SLICE, SLICE + 1, 3 * SLICE + 5])
async def test_float_and_base64_answers_carry_the_same_float32_values(count: int) -> None:
    vectors = [[math.sin(i + j) / 7 for j in range(12)] + [1e-30, -3.5e7] for i in range(count)]
    body = {
        "object": "list",
        "data": [
            {"object": "embedding", "index": i, "embedding": _b64(v)} for i, v in enumerate(vectors)
        ],
        "model": 'odd "data":[] name',
        "usage": {"prompt_tokens": 3, "total_tokens": 3},
    }
    as_float = json.loads(await _write(body, True))
    as_base64 = json.loads(await _write(body, False))
    assert as_float["model"] == as_base64["model"] == 'odd "data":[] name'
    assert as_float["usage"] == {"prompt_tokens": 3, "total_tokens": 3}
    assert [d["index"] for d in as_float["data"]] == list(range(count))
    assert as_base64["data"] == body["data"]
    for item, vector in zip(as_float["data"], vectors, strict=True):
        assert item["object"] == "embedding"
        assert array("f", item["embedding"]).tobytes() == array("f", vector).tobytes()


async def test_a_non_finite_value_is_refused_not_written_as_invalid_json() -> None:
    body = {"object": "list", "data": [{"index": 0, "embedding": _b64([1.0, math.nan])}]}
    with pytest.raises(ValueError, match="finite"):
        await _write(body, True)


def test_vectors_convert_both_ways_and_accept_an_upstream_that_sent_floats() -> None:
    values = [0.25, -0.5, 1.0 / 3.0]
    encoded = _b64(values)
    assert base64_vector(encoded) is encoded
    assert base64_vector(values) == encoded
    assert float_vector(encoded) == array("f", values).tolist()
    assert float_vector(values) == values
    body = {"data": [{"index": 0, "embedding": values}], "model": "m"}
    assert vectors_as(body, "base64")["data"] == [{"index": 0, "embedding": encoded}]
    assert vectors_as(vectors_as(body, "base64"), "float")["data"][0]["embedding"] == (
        array("f", values).tolist()
    )
