"""No input makes a handler answer 500 or show a stack trace: random bytes, random JSON, valid
bodies with fields swapped for values of the wrong type, huge and deeply nested bodies."""

from __future__ import annotations

import json
import random
from typing import Any

import function_app
from tests.functional.api._asgi import body_of, make_request

VALID = {
    "chat": {"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 3},
    "embeddings": {"model": "text-embedding-3-small", "input": ["a", "b"]},
}
HANDLERS = {"chat": function_app.chat_completions, "embeddings": function_app.embeddings}


def random_value(rng: random.Random, depth: int = 0) -> Any:
    choices: list[Any] = [
        None,
        True,
        False,
        0,
        -1,
        2**64,
        1e308,
        -0.5,
        "",
        "x" * rng.randint(1, 50),
        "gpt-4o",
        "\u0000\ud7ff",
        [],
        {},
    ]
    if depth < 3:
        choices += [
            [random_value(rng, depth + 1) for _ in range(rng.randint(1, 3))],
            {
                rng.choice(["role", "content", "model", "input", "type", "text"]): random_value(
                    rng, depth + 1
                )
            },
        ]
    return rng.choice(choices)


def bodies(rng: random.Random, kind: str) -> list[bytes]:
    valid = VALID[kind]
    out = [bytes(rng.getrandbits(8) for _ in range(rng.randint(0, 64))) for _ in range(15)]
    out += [json.dumps(random_value(rng)).encode() for _ in range(15)]
    for _ in range(40):
        body = json.loads(json.dumps(valid))
        for field in rng.sample(
            sorted(body) + ["stream", "n", "max_tokens", "dimensions", "encoding_format"],
            k=rng.randint(1, 2),
        ):
            body[field] = random_value(rng)
        if (
            kind == "chat"
            and rng.random() < 0.5
            and isinstance(body.get("messages"), list)
            and body["messages"]
        ):
            body["messages"][0] = random_value(rng)
        out.append(json.dumps(body).encode())
    out += [
        b"[" * 50_000 + b"]" * 50_000,
        b'{"a":' * 5000 + b"1" + b"}" * 5000,
        b"x" * 5_000_000,
        b'{"model": "' + b"m" * 3_000_000 + b'"}',
    ]
    return out


async def test_no_input_yields_500(sim, configure) -> None:
    configure(sim)
    rng = random.Random(20261123)
    seen: dict[int, int] = {}
    for kind, handler in HANDLERS.items():
        for raw in bodies(rng, kind):
            response = await handler(make_request("POST", f"/api/v1/{kind}", raw))
            text = await body_of(response)
            seen[response.status_code] = seen.get(response.status_code, 0) + 1
            assert response.status_code < 500 or response.status_code in (502, 503), (
                response.status_code,
                raw[:200],
                text[:500],
            )
            assert b"Traceback" not in text and b'File "' not in text, text[:500]
            if response.status_code >= 400:
                assert json.loads(text)["error"]["code"] != "internal_error", text[:500]
    assert seen.get(400, 0) > 50 and seen.get(200, 0) >= 1, seen
    assert seen.get(413, 0) >= 2, seen


async def test_wrong_methods_and_query_noise_on_read_routes(sim, configure) -> None:
    configure(sim)
    for handler in (function_app.list_models, function_app.health, function_app.openapi):
        response = await handler(
            make_request(
                "GET",
                "/x",
                b"\xff" * 100,
                {"x-correlation-id": "\n\r bad", "x-ms-client-principal-name": "\x00" * 300},
            )
        )
        assert response.status_code == 200
