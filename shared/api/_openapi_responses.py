"""The OpenAPI paths of the Responses API routes (``_responses.py``), merged into the document by
``_openapi.openapi_document``: ``/v1/responses...`` (OpenAI's errors), ``/openai/v1/responses...``
(Azure's v1 API, Azure's errors) and ``/openai/responses...`` (Azure's dated route, with
``api-version``)."""

from __future__ import annotations

from typing import Any

__all__ = ["responses_paths"]

_OBJECT: dict[str, Any] = {"type": "object", "additionalProperties": True}
_ID = {"name": "response_id", "in": "path", "required": True, "schema": {"type": "string"}}


def _errors(*statuses: int, azure: bool = False) -> dict[str, Any]:
    """OpenAI's error shape on ``/v1``, Azure's on the ``/openai`` routes."""
    schema = "AzureErrorResponse" if azure else "ErrorResponse"
    content = {"application/json": {"schema": {"$ref": f"#/components/schemas/{schema}"}}}
    return {str(s): {"description": "Error", "content": content} for s in statuses}


def _ok(description: str, stream: bool = False) -> dict[str, Any]:
    content: dict[str, Any] = {"application/json": {"schema": _OBJECT}}
    if stream:
        content["text/event-stream"] = {
            "schema": {
                "type": "string",
                "description": "The Responses event stream (`event: response.created` ... "
                "`event: response.completed`), as the region sent it.",
            }
        }
    return {"description": description, "content": content}


def responses_paths(security: list[dict[str, list[str]]]) -> dict[str, Any]:
    """Both front doors' Responses paths."""
    paths: dict[str, Any] = {}
    for prefix, tag in (("/v1", ""), ("/openai/v1", "AzureV1"), ("/openai", "Azure")):
        base = f"{prefix}/responses"
        paths[base] = {
            "post": {
                "operationId": f"create{tag}Response",
                "security": security,
                "requestBody": {
                    "required": True,
                    "content": {"application/json": {"schema": _OBJECT}},
                },
                "responses": {
                    "200": _ok(
                        "A response object, or with `stream: true` its event stream. With "
                        "`previous_response_id` it runs on the region that stores that response.",
                        stream=True,
                    ),
                    **_errors(400, 404, 413, 429, 500, 502, 503, 504, azure=bool(tag)),
                },
            }
        }
        paths[f"{base}/{{response_id}}"] = {
            "get": {
                "operationId": f"get{tag}Response",
                "security": security,
                "parameters": [_ID],
                "responses": {
                    "200": _ok("The stored response, from its region."),
                    **_errors(400, 404, 429, 503, azure=bool(tag)),
                },
            },
            "delete": {
                "operationId": f"delete{tag}Response",
                "security": security,
                "parameters": [_ID],
                "responses": {
                    "200": _ok("Deleted in its region."),
                    **_errors(404, 429, 503, azure=bool(tag)),
                },
            },
        }
        paths[f"{base}/{{response_id}}/cancel"] = {
            "post": {
                "operationId": f"cancel{tag}Response",
                "security": security,
                "parameters": [_ID],
                "responses": {
                    "200": _ok("The background response, cancelled."),
                    **_errors(400, 404, 429, 503, azure=bool(tag)),
                },
            }
        }
        paths[f"{base}/{{response_id}}/input_items"] = {
            "get": {
                "operationId": f"list{tag}ResponseInputItems",
                "security": security,
                "parameters": [_ID],
                "responses": {
                    "200": _ok("The response's input items (a list)."),
                    **_errors(404, 429, 503, azure=bool(tag)),
                },
            }
        }
    return paths
