"""Request parsing (413 / invalid_json / field-naming validation errors) and request identity."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json

import pytest
from starlette.requests import Request

from shared.aoai import ChatRequest, EmbeddingsRequest
from shared.api import ApiError, key_fingerprint, request_info
from shared.api._context import require_caller
from shared.api._parse import field_path, parse_body, read_body


def make_request(
    body: bytes = b"", headers: dict[str, str] | None = None, query: str = "", chunk: int = 0
) -> Request:
    raw_headers = [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()]
    parts = [body[i : i + chunk] for i in range(0, len(body), chunk)] if chunk else [body]
    messages = [
        {"type": "http.request", "body": p, "more_body": i < len(parts) - 1}
        for i, p in enumerate(parts)
    ]

    async def receive() -> dict:
        return messages.pop(0) if messages else {"type": "http.disconnect"}

    scope = {
        "type": "http",
        "method": "POST",
        "path": "/",
        "headers": raw_headers,
        "query_string": query.encode(),
    }
    return Request(scope, receive)


def test_declared_length_over_the_limit_is_refused_unread() -> None:
    with pytest.raises(ApiError) as info:
        asyncio.run(read_body(make_request(b"{}", {"content-length": "999999"}), 1000))
    assert (info.value.status, info.value.code) == (413, "request_too_large")


def test_streamed_body_over_the_limit_is_refused() -> None:
    with pytest.raises(ApiError) as info:
        asyncio.run(read_body(make_request(b"x" * 5000, chunk=100), 1000))
    assert info.value.status == 413


def test_body_at_the_limit_is_read() -> None:
    assert asyncio.run(read_body(make_request(b"x" * 1000, chunk=7), 1000)) == b"x" * 1000


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"   ",
        b"{",
        b"{'a': 1}",
        b"\xff\xfe\x00garbage",
        b"[" * 100_000,
        b'{"model": NaN}',
        b"1" * 5000,
    ],
)
def test_malformed_json_is_invalid_json(raw: bytes) -> None:
    with pytest.raises(ApiError) as info:
        parse_body(raw, ChatRequest)
    assert (info.value.status, info.value.code) == (400, "invalid_json")


@pytest.mark.parametrize("raw", [b"[]", b"3", b'"text"', b"null"])
def test_json_that_is_not_an_object(raw: bytes) -> None:
    with pytest.raises(ApiError) as info:
        parse_body(raw, ChatRequest)
    assert (info.value.status, info.value.code) == (400, "invalid_request")


@pytest.mark.parametrize(
    ("body", "param"),
    [
        (b'{"model": "gpt-4o"}', "messages"),
        (b'{"messages": [{"role": "user", "content": "hi"}]}', "model"),
        (
            b'{"model": "gpt-4o", "messages": [{"role": "robot", "content": "hi"}]}',
            "messages[0].role",
        ),
        (
            b'{"model": "gpt-4o", "messages": [{"role": "user", "content": 5}]}',
            "messages[0].content",
        ),
        (b'{"model": "gpt-4o", "messages": [], "max_tokens": 3}', "messages"),
        (b'{"model": "gpt-4o", "messages": [{"role": "user"}], "max_tokens": -1}', "max_tokens"),
        (b'{"model": "gpt-4o", "messages": [{"role": "user"}], "stream": "sometimes"}', "stream"),
    ],
)
def test_validation_errors_name_the_field(body: bytes, param: str) -> None:
    with pytest.raises(ApiError) as info:
        parse_body(body, ChatRequest)
    err = info.value
    assert (err.status, err.code, err.type, err.param) == (
        400,
        "invalid_request",
        "invalid_request_error",
        param,
    )
    assert f"'{param}'" in err.message


def test_embeddings_union_errors_become_one_reason() -> None:
    with pytest.raises(ApiError) as info:
        parse_body(b'{"model": "e", "input": 42}', EmbeddingsRequest)
    assert info.value.param == "input"
    assert "other invalid field" not in info.value.message


def test_field_path() -> None:
    assert (
        field_path(("messages", 0, "content", "list[dict[str,any]]", 1)) == "messages[0].content[1]"
    )
    assert field_path(("input", "function-after[_not_empty(), union[str,list[str]]]")) == "input"
    assert field_path(()) is None


def test_correlation_id_is_taken_from_the_caller() -> None:
    assert (
        request_info(make_request(headers={"x-correlation-id": "abc-123"})).correlation_id
        == "abc-123"
    )
    assert (
        request_info(make_request(headers={"x-ms-client-request-id": "req.7"})).correlation_id
        == "req.7"
    )


@pytest.mark.parametrize("bad", ["has space", "x" * 200, "semi;colon", "new\u2028line"])
def test_malformed_correlation_ids_are_replaced(bad: str) -> None:
    info = request_info(
        make_request(headers={"x-correlation-id": bad.encode("utf-8").decode("latin-1")})
    )
    assert info.correlation_id != bad and len(info.correlation_id) == 32


class _Settings:
    """The one thing identity reads of the services: the gateway's settings."""

    def __init__(self, **env: str) -> None:
        from shared.settings import load_gateway_settings

        regions = '[{"name": "r", "endpoint": "https://r.openai.azure.com", "models": {"m": {"deployment": "d", "tpm": 1000}}}]'
        self._settings = load_gateway_settings({"GATEWAY_REGIONS": regions, **env})

    def settings(self):
        return self._settings


PRINCIPAL_HEADERS = {
    "x-ms-client-principal": base64.b64encode(
        json.dumps({"auth_typ": "aad", "claims": [{"typ": "appid", "val": "app-1"}]}).encode()
    ).decode(),
    "x-ms-client-principal-name": "alice@contoso.com",
    "x-ms-client-principal-id": "oid",
    "x-functions-key": "k",
}
KEY_K = "key:" + hashlib.sha256(b"k").hexdigest()[:12]


def test_function_key_mode_ignores_every_principal_header() -> None:
    """Without App Service Authentication nobody strips these headers: a caller could claim any
    principal's limits, budget and usage. The function key is the identity."""
    for services in (None, _Settings(), _Settings(WEBSITE_AUTH_ENABLED="True")):
        assert request_info(make_request(headers=PRINCIPAL_HEADERS), services).caller == KEY_K
    bare = {"x-ms-client-principal-name": "alice@contoso.com"}
    assert request_info(make_request(headers=bare), _Settings()).caller == "anonymous"


def test_easy_auth_mode_trusts_only_the_platforms_principal_document() -> None:
    on = _Settings(GATEWAY_HTTP_AUTH="easy_auth", WEBSITE_AUTH_ENABLED="True")
    assert request_info(make_request(headers=PRINCIPAL_HEADERS), on).caller == "principal:app-1"
    bare = {"x-ms-client-principal-id": "oid-1", "x-ms-client-principal-name": "alice"}
    assert request_info(make_request(headers=bare), on).caller == "anonymous"
    off = _Settings(
        GATEWAY_HTTP_AUTH="easy_auth"
    )  # authentication off: the headers are the client's
    assert request_info(make_request(headers=PRINCIPAL_HEADERS), off).caller == KEY_K


def test_easy_auth_mode_refuses_to_serve_while_platform_auth_is_off() -> None:
    off = _Settings(GATEWAY_HTTP_AUTH="easy_auth")
    with pytest.raises(ApiError) as refused:
        require_caller(make_request(headers=PRINCIPAL_HEADERS), off)
    assert refused.value.status == 503 and refused.value.code == "easy_auth_not_enabled"
    assert "WEBSITE_AUTH_ENABLED" in refused.value.message
    on = _Settings(GATEWAY_HTTP_AUTH="easy_auth", WEBSITE_AUTH_ENABLED="true")
    require_caller(make_request(headers=PRINCIPAL_HEADERS), on)  # served
    with pytest.raises(ApiError) as bare:  # a bare id header is not a principal
        require_caller(make_request(headers={"x-ms-client-principal-id": "oid-1"}), on)
    assert bare.value.status == 401 and bare.value.code == "unauthenticated"
    require_caller(make_request(), _Settings())  # function keys: the host checked


def test_named_keys() -> None:
    fingerprint = key_fingerprint("k")
    named = _Settings(GATEWAY_KEY_NAMES=json.dumps({"orders": fingerprint.upper()}))
    assert (
        request_info(make_request(headers={"x-functions-key": "k"}), named).caller == "key:orders"
    )
    other = request_info(make_request(headers={"x-functions-key": "other"}), named).caller
    assert other == "key:" + key_fingerprint("other")


@pytest.mark.parametrize(
    "value",
    [
        '{"a b": "0123456789ab"}',
        '{"a": "xyz"}',
        '["a"]',
        "{",
        '{"a": "0123456789ab", "b": "0123456789AB"}',
    ],
)
def test_bad_key_names_fail_by_name(value: str) -> None:
    from shared.settings import SettingsError

    with pytest.raises(SettingsError, match="GATEWAY_KEY_NAMES"):
        _Settings(GATEWAY_KEY_NAMES=value)


def test_caller_is_a_key_fingerprint_never_the_key() -> None:
    expected = "key:" + hashlib.sha256(b"the-function-key").hexdigest()[:12]
    assert (
        request_info(make_request(headers={"x-functions-key": "the-function-key"})).caller
        == expected
    )
    assert request_info(make_request(query="code=the-function-key")).caller == expected
    assert request_info(make_request()).caller == "anonymous"
