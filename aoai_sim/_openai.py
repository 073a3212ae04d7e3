"""The plain OpenAI surface (``/v1/chat/completions``, ``/v1/embeddings``, ``/v1/models`` on every
region's port, ``Authorization: Bearer <api key>``, ``model`` = the deployment name): the same
operations as the Azure routes, answered with OpenAI's error bodies and headers.

OpenAI's rate-limit headers differ from Azure's: the resets are Go durations (``6m0s``, ``1.5s``,
``250ms``), there is no ``retry-after`` / ``retry-after-ms``, and no ``apim-request-id`` or
``x-ms-region``. A client (the gateway) must read the reset headers to know how long to wait.
"""

from __future__ import annotations

import uuid
from typing import Any

from ._errors import ErrorReply

__all__ = ["error_body", "go_duration", "headers", "invalid_key"]

_RESET = ("x-ratelimit-reset-requests", "x-ratelimit-reset-tokens")
_DROP = frozenset({"retry-after", "retry-after-ms"})


def go_duration(seconds: float) -> str:
    """Seconds as Go's ``time.Duration`` prints them: ``6m0s``, ``1h0m0s``, ``1.5s``, ``250ms``."""
    ms = max(0, round(seconds * 1000))
    if ms == 0:
        return "0s"
    if ms < 1000:
        return f"{ms}ms"
    hours, rest = divmod(ms, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    secs = f"{rest / 1000:.3f}".rstrip("0").rstrip(".") + "s"
    return (f"{hours}h" if hours else "") + (f"{minutes}m" if hours or minutes else "") + secs


def _seconds(text: str) -> float | None:
    try:
        return float(text.rstrip("s"))
    except ValueError:
        return None


def headers(azure_headers: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """OpenAI's response headers from the limiter's Azure-style ones."""
    out = [
        ("x-request-id", f"req_{uuid.uuid4().hex}"),
        ("openai-organization", "org-aoaisim"),
        ("openai-version", "2020-10-01"),
        ("openai-processing-ms", "1"),
    ]
    for name, value in azure_headers:
        if name in _DROP:
            continue
        if name in _RESET:
            seconds = _seconds(value)
            value = go_duration(seconds) if seconds is not None else value
        out.append((name, value))
    return out


def invalid_key() -> ErrorReply:
    """OpenAI's 401 (the Azure code is mapped in ``error_body``)."""
    return 401, {"error": {"code": "invalid_api_key", "message": "Incorrect API key provided."}}


_CODES = {
    "401": "invalid_api_key",
    "DeploymentNotFound": "model_not_found",
    "429": "rate_limit_exceeded",
    "404": "unknown_url",
}


def error_body(status: int, azure_body: dict[str, Any], model: str | None) -> dict[str, Any]:
    """OpenAI's ``{"error": {message, type, param, code}}`` from an Azure error body."""
    err = dict(azure_body.get("error") or {})
    code = _CODES.get(str(err.get("code")), err.get("code"))
    message = str(err.get("message", ""))
    kind = err.get("type") or "invalid_request_error"
    if code == "model_not_found":
        message = f"The model `{model}` does not exist or you do not have access to it."
    elif code == "invalid_api_key":
        message = (
            "Incorrect API key provided. You can find your API key at "
            "https://platform.openai.com/account/api-keys."
        )
    elif code == "rate_limit_exceeded":
        kind = "requests" if "call rate" in message else "tokens"
        message = (
            f"Rate limit reached for {model} in organization org-aoaisim on {kind} per min. "
            "Please try again later (see the x-ratelimit-reset-* headers). "
            "Visit https://platform.openai.com/account/rate-limits to learn more."
        )
    elif code == "unknown_url":
        message, code = "Invalid URL.", None
    elif status >= 500:
        kind = "server_error"
    return {"error": {"message": message, "type": kind, "param": err.get("param"), "code": code}}
