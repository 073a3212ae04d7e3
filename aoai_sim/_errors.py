"""Azure OpenAI error bodies, with the codes and messages Azure sends."""

from __future__ import annotations

from typing import Any

__all__ = [
    "ErrorReply",
    "bad_request",
    "content_filter_blocked",
    "deployment_not_found",
    "invalid_key",
    "invalid_token",
    "operation_not_supported",
    "permission_denied",
    "rate_limited",
    "resource_not_found",
    "server_error",
    "v1_api_version_not_allowed",
]

ErrorReply = tuple[int, dict[str, Any]]

_QUOTA_URL = "https://aka.ms/oai/quotaincrease"
_FILTER_URL = "https://go.microsoft.com/fwlink/?linkid=2198766"


def _err(status: int, code: str, message: str, /, **extra: Any) -> ErrorReply:
    return status, {"error": {"code": code, "message": message, **extra}}


def resource_not_found() -> ErrorReply:
    """Unknown route, or a missing or unsupported api-version on a dated route."""
    return _err(404, "404", "Resource not found")


def deployment_not_found() -> ErrorReply:
    """The deployment named in the path (or in ``model`` on v1) does not exist."""
    return _err(
        404,
        "DeploymentNotFound",
        "The API deployment for this resource does not exist. If you created the deployment "
        "within the last 5 minutes, please wait a moment and try again.",
    )


def v1_api_version_not_allowed() -> ErrorReply:
    """A dated api-version sent to a /openai/v1 route."""
    return _err(400, "BadRequest", "api-version query parameter is not allowed when using /v1 path")


def invalid_key() -> ErrorReply:
    """Missing or wrong api-key."""
    return _err(
        401,
        "401",
        "Access denied due to invalid subscription key or wrong API endpoint. Make sure to provide a "
        "valid key for an active subscription and use a correct regional API endpoint for your resource.",
    )


def invalid_token() -> ErrorReply:
    """Bad, expired or wrong-audience bearer token."""
    return _err(
        401,
        "401",
        "Unauthorized. Access token is missing, invalid, audience is incorrect "
        "(https://cognitiveservices.azure.com), or have expired.",
    )


def permission_denied(principal: str, data_action: str, operation: str) -> ErrorReply:
    """A valid token for a principal without the Cognitive Services OpenAI User role."""
    return _err(
        403,
        "PermissionDenied",
        f"The principal `{principal}` lacks the required data action `{data_action}` "
        f"to perform `{operation}` operation.",
    )


def rate_limited(
    operation: str, api_version: str, retry_after_s: int, *, calls: bool
) -> ErrorReply:
    """Azure's 429 body for a token- or call-rate limit."""
    what = "call rate limit" if calls else "token rate limit"
    return _err(
        429,
        "429",
        f"Requests to the {operation} Operation under Azure OpenAI API version {api_version} have "
        f"exceeded {what} of your current OpenAI S0 pricing tier. Please retry after {retry_after_s} "
        f"seconds. Please go here: {_QUOTA_URL} if you would like to further increase the default rate limit.",
    )


def server_error(status: int) -> ErrorReply:
    """A 5xx body in Azure's style."""
    if status == 503:
        return _err(
            503,
            "ServiceUnavailable",
            "The service is temporarily unable to process your request. Please try again later.",
        )
    if status == 502:
        return _err(502, "BadGateway", "Bad gateway.")
    if status == 504:
        return _err(504, "Timeout", "The operation was timeout.")
    if status >= 500:
        return _err(
            status,
            "InternalServerError",
            "The server had an error while processing your request. Sorry about that!",
        )
    return _err(status, str(status), "Simulated error.")


def bad_request(message: str, param: str | None = None) -> ErrorReply:
    """A malformed request body."""
    return _err(400, "BadRequest", message, param=param, type="invalid_request_error")


def output_too_large(param: str, limit: int, given: int) -> ErrorReply:
    """An output cap above the model's max output tokens (Azure's wording)."""
    return _err(
        400,
        "invalid_value",
        f"{param} is too large: {given}. This model supports at most {limit} completion tokens, "
        f"whereas you provided {given}.",
        param=param,
        type="invalid_request_error",
    )


def operation_not_supported(operation: str, model: str) -> ErrorReply:
    """Chat on an embeddings deployment, or the reverse."""
    return _err(
        400,
        "OperationNotSupported",
        f"The {operation} operation does not work with the specified model, {model}. Please choose different "
        "model and try again. You can learn more about which models can be used with each operation here: "
        "https://go.microsoft.com/fwlink/?linkid=2197993.",
    )


def content_filter_blocked(content_filter_result: dict[str, Any]) -> ErrorReply:
    """A prompt blocked by the content filter."""
    return _err(
        400,
        "content_filter",
        "The response was filtered due to the prompt triggering Azure OpenAI's content management policy. "
        "Please modify your prompt and retry. To learn more about our content filtering policies please "
        f"read our documentation: {_FILTER_URL}",
        param="prompt",
        status=400,
        type=None,
        innererror={
            "code": "ResponsibleAIPolicyViolation",
            "content_filter_result": content_filter_result,
        },
    )
