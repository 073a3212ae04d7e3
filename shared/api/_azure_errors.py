"""The gateway's errors in Azure OpenAI's shape, for the Azure-shaped routes.

Azure answers ``{"error": {"code", "message", "param", "type", ...}}`` like OpenAI, but with its
own codes, and a prompt blocked by the content filter carries ``innererror``::

    {"error": {"code": "content_filter", "param": "prompt", "status": 400, "message": ...,
               "innererror": {"code": "ResponsibleAIPolicyViolation",
                              "content_filter_result": {"hate": {...}, "violence": {...}, ...}}}}

so code written against Azure (``e.body["innererror"]["content_filter_result"]``) keeps working.
The gateway's own stable code stays in ``gateway_code``, and every other field (the correlation
id, ``known_models``, ``retry_after_s``...) is kept.
"""

from __future__ import annotations

import json
from typing import Any

from starlette.responses import JSONResponse, Response

__all__ = ["AZURE_CODES", "azure_error_body", "azure_response"]

# gateway code -> the code Azure OpenAI uses for the same situation
AZURE_CODES = {
    "model_not_found": "DeploymentNotFound",
    "all_throttled": "429",
    "invalid_json": "BadRequest",
    "invalid_request": "BadRequest",
    "bad_request": "BadRequest",
    "request_too_large": "BadRequest",
    "unauthenticated": "401",
    "upstream_unavailable": "ServiceUnavailable",
    "deadline_exceeded": "Timeout",
    "internal_error": "InternalServerError",
}


def azure_error_body(error: dict[str, Any]) -> dict[str, Any]:
    """One OpenAI-shaped ``error`` object (as ``_errors.error_body`` builds it) in Azure's shape."""
    out = dict(error)
    code = out.get("code")
    if code == "content_filter":
        result = out.pop("content_filter_result", {})
        out.update(
            param=out.get("param") or "prompt",
            status=400,
            innererror={
                "code": "ResponsibleAIPolicyViolation",
                "content_filter_result": result,
            },
        )
    elif isinstance(code, str) and code in AZURE_CODES:
        out["code"] = AZURE_CODES[code]
        out["gateway_code"] = code
    return {"error": out}


def azure_response(response: Response) -> Response:
    """``response`` unchanged when it is not a JSON error; else the same error in Azure's shape."""
    if response.status_code < 400 or not isinstance(response, JSONResponse):
        return response
    try:
        body = json.loads(bytes(response.body))
    except ValueError:
        return response
    if not isinstance(body, dict) or not isinstance(body.get("error"), dict):
        return response
    headers = {k: v for k, v in response.headers.items() if k.lower() != "content-length"}
    return JSONResponse(
        azure_error_body(body["error"]), status_code=response.status_code, headers=headers
    )
