import json

import httpx2
import openai
import pytest

from shared.aoai import AuthFailed, BadRequest, ContentFiltered, FailureKind
from shared.aoai._classify import FailureAction, classify
from shared.aoai._exceptions import LocalFailure

COOLDOWN, CIRCUIT, RAISE = FailureAction.COOLDOWN, FailureAction.CIRCUIT, FailureAction.RAISE
SKIP_CREDENTIALS, SKIP_DEPLOYMENT = FailureAction.SKIP_CREDENTIALS, FailureAction.SKIP_DEPLOYMENT

_REQUEST = httpx2.Request("POST", "http://127.0.0.1/openai/v1/chat/completions")


def status_error(
    status: int, body: dict | None = None, headers: dict | None = None
) -> openai.APIStatusError:
    client = openai.AsyncOpenAI(api_key="k", base_url="http://127.0.0.1/")
    response = httpx2.Response(
        status, headers=headers or {}, json={"error": body or {}}, request=_REQUEST
    )
    return client._make_status_error("err", body={"error": body or {}}, response=response)


@pytest.mark.parametrize(
    ("status", "body", "kind", "action"),
    [
        (429, {"code": "429"}, FailureKind.THROTTLED, COOLDOWN),
        (500, {}, FailureKind.SERVER_ERROR, CIRCUIT),
        (503, {}, FailureKind.SERVER_ERROR, CIRCUIT),
        (401, {"message": "bad key"}, FailureKind.AUTH, SKIP_CREDENTIALS),
        (403, {}, FailureKind.AUTH, SKIP_CREDENTIALS),
        (404, {"code": "DeploymentNotFound"}, FailureKind.NOT_FOUND, SKIP_DEPLOYMENT),
        (400, {"code": "content_filter"}, FailureKind.CONTENT_FILTER, RAISE),
        (400, {"code": "context_length_exceeded"}, FailureKind.BAD_REQUEST, RAISE),
        (422, {}, FailureKind.BAD_REQUEST, RAISE),
    ],
)
def test_status_table(status, body, kind, action):
    mapped = classify(status_error(status, body))
    assert (mapped.kind, mapped.action, mapped.status) == (kind, action, status)


def test_transport_errors():
    assert classify(openai.APITimeoutError(request=_REQUEST)).kind is FailureKind.TIMEOUT
    assert classify(openai.APITimeoutError(request=_REQUEST)).opens_circuit_at_once
    assert classify(openai.APIConnectionError(request=_REQUEST)).kind is FailureKind.CONNECTION
    assert classify(TimeoutError()).kind is FailureKind.TIMEOUT
    assert classify(json.JSONDecodeError("bad json", "{", 0)).kind is FailureKind.SERVER_ERROR
    assert classify(httpx2.RemoteProtocolError("peer closed")).kind is FailureKind.CONNECTION


@pytest.mark.parametrize(
    "exc",
    [
        UnicodeEncodeError("utf-8", "\ud800", 0, 1, "surrogates not allowed"),
        TypeError("Object of type set is not JSON serializable"),
        ValueError("our own bug"),
        KeyError("choices"),
        RuntimeError("anything else"),
    ],
)
def test_errors_from_our_process_or_the_request_are_local(exc):
    """Issue 10 finding 1: nothing that originates here may touch circuits, cooldowns or budgets."""
    mapped = classify(exc)
    assert (mapped.kind, mapped.action, mapped.status) == (FailureKind.LOCAL, RAISE, None)
    error = mapped.error(())
    if isinstance(exc, UnicodeEncodeError):
        assert isinstance(error, BadRequest) and error.http_status == 400
    else:
        assert isinstance(error, LocalFailure) and error.http_status == 500
        assert error.code == "internal_error"


def test_identity_endpoint_errors_are_auth():
    from azure.core.exceptions import ClientAuthenticationError

    assert classify(ClientAuthenticationError("no token")).kind is FailureKind.AUTH


def test_content_filter_error_carries_the_categories():
    result = {
        "violence": {"filtered": True, "severity": "high"},
        "hate": {"filtered": False, "severity": "safe"},
    }
    body = {
        "code": "content_filter",
        "message": "filtered",
        "param": "prompt",
        "innererror": {"code": "ResponsibleAIPolicyViolation", "content_filter_result": result},
    }
    error = classify(status_error(400, body)).error(())
    assert isinstance(error, ContentFiltered) and error.filtered_categories == ["violence"]


def test_bad_request_keeps_upstream_code_and_param():
    error = classify(
        status_error(
            400, {"code": "context_length_exceeded", "param": "messages", "message": "too long"}
        )
    ).error(())
    assert isinstance(error, BadRequest) and (error.upstream_code, error.param, error.message) == (
        "context_length_exceeded",
        "messages",
        "too long",
    )


def test_throttle_keeps_headers_for_the_cooldown():
    mapped = classify(status_error(429, {}, {"retry-after-ms": "1500"}))
    assert mapped.headers["retry-after-ms"] == "1500"


def test_auth_failed_message():
    error = AuthFailed(
        region="eastus2",
        identity="system-assigned managed identity",
        status=403,
        upstream_message="no",
    )
    assert "Cognitive Services OpenAI User" in str(error) and "5-15 minutes" in str(error)


def test_auth_failed_advice_fits_the_auth_mode():
    """Issue 10 finding 11: key auth is told about keys, identity auth about the role."""
    key = AuthFailed(
        region="eastus2",
        identity="api key",
        status=401,
        upstream_message="Access denied due to invalid subscription key.",
        auth="api_key",
    )
    assert "rotated" in str(key) and "Cognitive Services OpenAI User" not in str(key)
    assert "invalid subscription key" in str(key) and key.details()["role_needed"] is None
    refused = AuthFailed(
        region="eastus2", identity="api key", status=403, upstream_message="x", auth="api_key"
    )
    assert "disableLocalAuth" in str(refused) and "role" not in str(refused)
    identity = AuthFailed(
        region="eastus2",
        identity="system-assigned managed identity",
        status=403,
        upstream_message="PermissionDenied",
        auth="managed_identity",
    )
    assert "Cognitive Services OpenAI User" in str(identity) and "5-15 minutes" in str(identity)
    assert "PermissionDenied" in str(identity)
