"""The OpenAPI 3.1 document of the HTTP API, generated from the pydantic models the handlers use
(``ChatRequest``/``EmbeddingsRequest`` for bodies, the models below for the API's own answers)."""

from __future__ import annotations

import functools
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic.json_schema import models_json_schema

from shared.aoai import ChatRequest, EmbeddingsRequest

from ._openapi_azure import AZURE_SCHEMAS, azure_paths  # the Azure-shaped routes
from ._openapi_responses import responses_paths  # the Responses API routes

__all__ = [
    "ChatCompletionChunk",
    "ErrorObject",
    "ErrorResponse",
    "HealthResponse",
    "JobAccepted",
    "ModelCard",
    "ModelList",
    "openapi_document",
]


class ErrorObject(BaseModel):
    model_config = ConfigDict(extra="allow")

    message: str
    type: str = Field(
        description="invalid_request_error, rate_limit_error, gateway_error, upstream_error or server_error."
    )
    param: str | None = Field(description="The offending request field, when one is to blame.")
    code: str = Field(
        description="Stable code: invalid_json, invalid_request, request_too_large, model_not_found, bad_request, "
        "max_tokens_over_model_limit, too_many_inputs, content_filter, all_throttled, caller_rate_limited, "
        "caller_budget_exhausted, upstream_auth_failed, deployment_not_found, upstream_unavailable, "
        "upstream_request_failed, deadline_exceeded, stream_interrupted, unauthenticated, "
        "easy_auth_not_enabled, reply_to_not_allowed, job_not_found, job_not_cancellable, "
        "job_already_finished, job_id_conflict, job_too_large, response_not_found, "
        "response_region_unavailable, response_affinity_unavailable, gateway_misconfigured, internal_error."
    )
    correlation_id: str = Field(
        description="Also in the x-correlation-id header; quote it when reporting a problem."
    )


class ErrorResponse(BaseModel):
    error: ErrorObject


class ModelCard(BaseModel):
    id: str = Field(description="A logical model alias: use it as `model` in requests.")
    object: Literal["model"] = "model"
    created: int = 0
    owned_by: str = "gateway"


class ModelList(BaseModel):
    object: Literal["list"] = "list"
    data: list[ModelCard]


class HealthResponse(BaseModel):
    model_config = ConfigDict(extra="allow")

    status: Literal["ok", "degraded", "unavailable"] = Field(
        description="degraded: a region's circuit is not closed, or a deployment is exhausted, "
        "missing or cooling down long; traffic still flows to the others."
    )
    alive: bool
    time: float
    regions_down: list[str] | None = Field(
        default=None, description="Regions whose circuit is not closed."
    )
    deployments_degraded: list[str] | None = Field(
        default=None, description="health/details only: region/deployment pairs that are out."
    )
    gateway: dict[str, Any] | None = Field(
        default=None,
        description="health/details only: each region's circuit, cooldowns and budgets.",
    )
    error: dict[str, Any] | None = Field(
        default=None, description="Why the gateway cannot serve (e.g. invalid app settings)."
    )


class ChunkChoice(BaseModel):
    model_config = ConfigDict(extra="allow")

    index: int
    delta: dict[str, Any] = Field(description="role, content, refusal, tool_calls (partial).")
    finish_reason: str | None = Field(
        default=None,
        description="Set on the choice's last chunk (stop, length, content_filter...).",
    )


class ChatCompletionChunk(BaseModel):
    """One Server-Sent Event of a streamed chat: ``data: {chunk}``. The stream ends with
    ``data: [DONE]``, or, when upstream broke off after it started, with one
    ``data: {"error": {...}}`` event (an ErrorResponse) and no [DONE]."""

    model_config = ConfigDict(extra="allow")

    id: str
    object: Literal["chat.completion.chunk", ""]
    created: int
    model: str
    choices: list[ChunkChoice]
    usage: dict[str, Any] | None = Field(
        default=None, description="On the last chunk when stream_options.include_usage is true."
    )


class JobAccepted(BaseModel):
    id: str
    object: Literal["job"] = "job"
    status: str
    status_url: str


_PASS_THROUGH = {"type": "object", "additionalProperties": True}
_GATEWAY_HEADERS = {
    "x-gateway-region": {"description": "The region that answered.", "schema": {"type": "string"}},
    "x-gateway-deployment": {
        "description": "The deployment that answered.",
        "schema": {"type": "string"},
    },
    "x-gateway-attempts": {
        "description": "Attempts made, including failovers.",
        "schema": {"type": "integer"},
    },
    "x-correlation-id": {
        "description": "The caller's x-correlation-id / x-ms-client-request-id, or a new id.",
        "schema": {"type": "string"},
    },
}


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _errors(*statuses: int) -> dict[str, Any]:
    content = {"application/json": {"schema": _ref("ErrorResponse")}}
    out: dict[str, Any] = {
        str(s): {"description": "OpenAI-shaped error", "content": content} for s in statuses
    }
    if "429" in out:
        out["429"] = {
            **out["429"],
            "headers": {
                "Retry-After": {
                    "description": "Seconds until the soonest deployment accepts work.",
                    "schema": {"type": "integer"},
                }
            },
        }
    return out


def _json(
    schema: dict[str, Any], description: str, headers: dict[str, Any] | None = None
) -> dict[str, Any]:
    out: dict[str, Any] = {
        "description": description,
        "content": {"application/json": {"schema": schema}},
    }
    if headers:
        out["headers"] = headers
    return out


_KEY_SECURITY: list[dict[str, list[str]]] = [{"functionKey": []}, {"functionKeyQuery": []}]


@functools.cache
def openapi_document() -> dict[str, Any]:
    """The document (built once per process; treat it as read-only)."""
    from shared.jobs import JobMessage  # lazy: cold start (model routes never load the backlog)

    models = (
        ChatRequest,
        EmbeddingsRequest,
        ErrorResponse,
        ModelList,
        HealthResponse,
        ChatCompletionChunk,
        JobAccepted,
        JobMessage,
    )
    _, schemas = models_json_schema(
        [(m, "validation") for m in models], ref_template="#/components/schemas/{model}"
    )
    upstream_errors = _errors(400, 404, 413, 429, 500, 502, 503, 504)
    chat_ok = {
        "description": "A chat.completion object (JSON), or with `stream: true` chat.completion.chunk objects as "
        "Server-Sent Events ending with `data: [DONE]`.",
        "headers": _GATEWAY_HEADERS,
        "content": {
            "application/json": {"schema": _PASS_THROUGH},
            "text/event-stream": {
                "schema": {
                    "type": "string",
                    "description": "`data: <ChatCompletionChunk JSON>` events, then `data: [DONE]` "
                    "(or one `data: <ErrorResponse JSON>` event if upstream broke off).",
                },
                "x-event-schema": _ref("ChatCompletionChunk"),
            },
        },
    }
    embeddings_ok = _json(
        _PASS_THROUGH, "An OpenAI embeddings list, in input order.", _GATEWAY_HEADERS
    )

    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Azure OpenAI gateway",
            "version": "1",
            "description": "OpenAI-compatible: point an openai SDK's base_url at /api/v1 and send the function key "
            "in the x-functions-key header. `model` is a logical alias (GET /api/v1/models).",
        },
        "servers": [{"url": "/api"}],
        "paths": {
            "/v1/chat/completions": {
                "post": {
                    "operationId": "createChatCompletion",
                    "security": _KEY_SECURITY,
                    "requestBody": {
                        "required": True,
                        "content": {"application/json": {"schema": _ref("ChatRequest")}},
                    },
                    "responses": {"200": chat_ok, **upstream_errors},
                }
            },
            "/v1/embeddings": {
                "post": {
                    "operationId": "createEmbedding",
                    "security": _KEY_SECURITY,
                    "requestBody": {
                        "required": True,
                        "content": {"application/json": {"schema": _ref("EmbeddingsRequest")}},
                    },
                    "responses": {
                        "200": _json(
                            _PASS_THROUGH,
                            "An OpenAI embeddings list, in input order.",
                            _GATEWAY_HEADERS,
                        ),
                        **upstream_errors,
                    },
                }
            },
            "/v1/models": {
                "get": {
                    "operationId": "listModels",
                    "security": _KEY_SECURITY,
                    "responses": {
                        "200": _json(_ref("ModelList"), "The aliases this gateway serves."),
                        **_errors(500),
                    },
                }
            },
            "/health": {
                "get": {
                    "operationId": "health",
                    "security": [],
                    "responses": {
                        "200": _json(_ref("HealthResponse"), "Alive and configured."),
                        "503": _json(
                            _ref("HealthResponse"), "Alive, but cannot serve (the error says why)."
                        ),
                    },
                }
            },
            "/health/details": {
                "get": {
                    "operationId": "healthDetails",
                    "security": _KEY_SECURITY,
                    "responses": {
                        "200": _json(
                            _ref("HealthResponse"),
                            "Alive and configured, with every region's and deployment's state.",
                        ),
                        "503": _json(
                            _ref("HealthResponse"), "Alive, but cannot serve (the error says why)."
                        ),
                    },
                }
            },
            "/v1/jobs": {
                "post": {
                    "operationId": "submitJob",
                    "security": _KEY_SECURITY,
                    "requestBody": {
                        "required": True,
                        "content": {"application/json": {"schema": _ref("JobMessage")}},
                    },
                    "responses": {
                        "202": _json(_ref("JobAccepted"), "Recorded and queued; poll status_url."),
                        **_errors(400, 404, 409, 413, 500, 503),
                    },
                }
            },
            "/v1/jobs/{job_id}": {
                "get": {
                    "operationId": "getJob",
                    "security": _KEY_SECURITY,
                    "parameters": [
                        {
                            "name": "job_id",
                            "in": "path",
                            "required": True,
                            "schema": {"type": "string"},
                        }
                    ],
                    "responses": {
                        "200": _json(_PASS_THROUGH, "The job's status, then result or failure."),
                        **_errors(404, 500, 503),
                    },
                }
            },
            "/v1/jobs/{job_id}/cancel": {
                "post": {
                    "operationId": "cancelJob",
                    "security": _KEY_SECURITY,
                    "parameters": [
                        {
                            "name": "job_id",
                            "in": "path",
                            "required": True,
                            "schema": {"type": "string"},
                        }
                    ],
                    "responses": {
                        "200": _json(
                            _PASS_THROUGH, "Cancelled (or cancelled already): its status."
                        ),
                        **_errors(404, 409, 500, 503),
                    },
                }
            },
            "/v1/usage": {
                "get": {
                    "operationId": "getUsage",
                    "security": _KEY_SECURITY,
                    "parameters": [
                        {
                            "name": name,
                            "in": "query",
                            "required": False,
                            "schema": {"type": "string"},
                        }
                        for name in ("from", "to", "group_by")
                    ],
                    "responses": {
                        "200": {
                            "description": "The calling identity's token use and cost "
                            "(CSV with Accept: text/csv); see docs/operations.md.",
                            "content": {
                                "application/json": {"schema": _PASS_THROUGH},
                                "text/csv": {"schema": {"type": "string"}},
                            },
                        },
                        **_errors(400, 500, 503),
                    },
                }
            },
            "/v1/openapi.json": {
                "get": {
                    "operationId": "openapi",
                    "security": [],
                    "responses": {"200": _json({"type": "object"}, "This document.")},
                }
            },
            **azure_paths(chat_ok, embeddings_ok),
            **responses_paths(_KEY_SECURITY),
        },
        "components": {
            "schemas": {**schemas["$defs"], **AZURE_SCHEMAS},
            "securitySchemes": {
                "functionKey": {"type": "apiKey", "in": "header", "name": "x-functions-key"},
                "functionKeyQuery": {"type": "apiKey", "in": "query", "name": "code"},
            },
        },
    }
