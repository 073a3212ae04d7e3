"""The one place exceptions become OpenAI-shaped errors."""

from __future__ import annotations

import json
import time

import pytest

from shared.aoai import (
    AllThrottled,
    Attempt,
    AuthFailed,
    BadRequest,
    ContentFiltered,
    DeadlineExceeded,
    DeploymentNotFound,
    FailureKind,
    RegionsUnavailable,
    StreamInterrupted,
    UnknownModel,
)
from shared.api import ApiError, error_body, error_response
from shared.api._errors import scrub
from shared.settings import SettingsError

ATTEMPT = Attempt("eastus2", "gpt-4o-prod", FailureKind.THROTTLED, 429, 3.0)


@pytest.mark.parametrize(
    ("exc", "status", "code", "type_"),
    [
        (
            UnknownModel("gpt-5", ("gpt-4o", "text-embedding-3-small")),
            404,
            "model_not_found",
            "invalid_request_error",
        ),
        (
            BadRequest(
                "context too long", upstream_code="context_length_exceeded", param="messages"
            ),
            400,
            "bad_request",
            "invalid_request_error",
        ),
        (
            ContentFiltered(
                "blocked", categories={"violence": {"filtered": True, "severity": "high"}}
            ),
            400,
            "content_filter",
            "invalid_request_error",
        ),
        (
            AllThrottled("gpt-4o", retry_at=time.time() + 5, now=time.time()),
            429,
            "all_throttled",
            "rate_limit_error",
        ),
        (
            AuthFailed(
                region="eastus2", identity="api key", status=401, upstream_message="Access denied"
            ),
            502,
            "upstream_auth_failed",
            "gateway_error",
        ),
        (
            DeploymentNotFound(region="eastus2", deployment="x", alias="gpt-4o"),
            502,
            "deployment_not_found",
            "gateway_error",
        ),
        (RegionsUnavailable("down"), 503, "upstream_unavailable", "upstream_error"),
        (DeadlineExceeded("late"), 504, "deadline_exceeded", "upstream_error"),
        (StreamInterrupted("cut"), 502, "stream_interrupted", "upstream_error"),
        (
            ApiError(413, "request_too_large", "too big"),
            413,
            "request_too_large",
            "invalid_request_error",
        ),
        (SettingsError("GATEWAY_REGIONS: missing"), 500, "gateway_misconfigured", "gateway_error"),
        (KeyError("boom"), 500, "internal_error", "server_error"),
    ],
)
def test_status_code_and_shape(exc: BaseException, status: int, code: str, type_: str) -> None:
    got_status, body = error_body(exc, "cid-1")
    assert got_status == status
    error = body["error"]
    assert {"message", "type", "param", "code", "correlation_id"} <= set(error)
    assert (error["code"], error["type"], error["correlation_id"]) == (code, type_, "cid-1")
    json.dumps(body)  # JSON-able


def test_unknown_model_lists_the_aliases() -> None:
    _, body = error_body(UnknownModel("gpt-5", ("gpt-4o", "emb")), "c")
    assert body["error"]["known_models"] == ["gpt-4o", "emb"]
    assert body["error"]["param"] == "model"
    assert "gpt-4o, emb" in body["error"]["message"]


def test_content_filter_carries_the_categories() -> None:
    cats = {
        "violence": {"filtered": True, "severity": "high"},
        "hate": {"filtered": False, "severity": "safe"},
    }
    _, body = error_body(ContentFiltered("blocked", categories=cats), "c")
    assert body["error"]["content_filter_result"] == cats
    assert body["error"]["filtered_categories"] == ["violence"]
    assert body["error"]["param"] == "prompt"


def test_internal_error_hides_the_exception() -> None:
    _, body = error_body(RuntimeError("secret internals at /srv/x.py line 3"), "cid-9")
    assert "internals" not in json.dumps(body)
    assert "cid-9" in body["error"]["message"]


def test_settings_error_does_not_leak_to_callers() -> None:
    _, body = error_body(SettingsError("GATEWAY_REGIONS[0].api_key: bad"), "c")
    assert "api_key" not in body["error"]["message"]


@pytest.mark.parametrize(("wait", "header"), [(0.2, "1"), (4.01, "5"), (7.0, "7"), (0.0, "1")])
def test_retry_after_is_the_ceiling_in_seconds(wait: float, header: str) -> None:
    now = time.time()
    exc = AllThrottled("gpt-4o", retry_at=now + wait, now=now, attempts=(ATTEMPT,))
    response = error_response(exc, "c")
    assert response.status_code == 429
    assert response.headers["retry-after"] == header
    assert int(response.headers["retry-after-ms"]) >= 1
    assert response.headers["x-gateway-attempts"] == "1"


def test_auth_failure_scrubs_keys_and_tokens() -> None:
    token = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.c2lnbmF0dXJlLXZhbHVl"
    exc = AuthFailed(
        region="eastus2",
        identity="api key",
        status=401,
        upstream_message=f"key super-secret-key-123 / token {token} / Bearer abcdefghijkl",
    )
    _, body = error_body(exc, "c", secrets=("super-secret-key-123",))
    text = json.dumps(body)
    assert "super-secret-key-123" not in text and token not in text and "abcdefghijkl" not in text
    assert "Cognitive Services OpenAI User" in body["error"]["message"]  # the diagnostic stays
    assert body["error"]["region"] == "eastus2"


def test_scrub_leaves_ordinary_text() -> None:
    assert scrub("The model 'gpt-4o' is busy.") == "The model 'gpt-4o' is busy."
