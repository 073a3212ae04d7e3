"""The OpenAPI paths and schemas of the Azure OpenAI-shaped routes (``_azure.py``), merged into the
document ``_openapi.openapi_document`` builds."""

from __future__ import annotations

from typing import Any

from ._versions import AZURE_API_VERSIONS, V1_API_VERSIONS

__all__ = ["AZURE_SCHEMAS", "azure_paths"]

_PASS_THROUGH = {"type": "object", "additionalProperties": True}
_KEY_SECURITY: list[dict[str, list[str]]] = [{"functionKey": []}, {"functionKeyQuery": []}]

AZURE_SCHEMAS: dict[str, Any] = {
    "AzureErrorObject": {
        "type": "object",
        "additionalProperties": True,
        "required": ["code", "message"],
        "properties": {
            "code": {
                "type": "string",
                "description": "Azure's code: 404, DeploymentNotFound, BadRequest, 401, 429, "
                "content_filter, ServiceUnavailable, Timeout, InternalServerError, or the "
                "gateway's own code where Azure has none.",
            },
            "message": {"type": "string"},
            "param": {"type": ["string", "null"]},
            "type": {"type": ["string", "null"]},
            "gateway_code": {
                "type": "string",
                "description": "The gateway's stable code (see ErrorObject) when `code` was mapped.",
            },
            "correlation_id": {"type": "string"},
            "innererror": {
                "type": "object",
                "description": "Content filter: code ResponsibleAIPolicyViolation and "
                "content_filter_result (hate, sexual, violence, self_harm: filtered, severity).",
                "properties": {
                    "code": {"type": "string"},
                    "content_filter_result": {"type": "object", "additionalProperties": True},
                },
            },
        },
    },
    "AzureErrorResponse": {
        "type": "object",
        "required": ["error"],
        "properties": {"error": {"$ref": "#/components/schemas/AzureErrorObject"}},
    },
}


def _errors(*statuses: int) -> dict[str, Any]:
    content = {"application/json": {"schema": {"$ref": "#/components/schemas/AzureErrorResponse"}}}
    return {
        str(s): {"description": "Azure OpenAI-shaped error", "content": content} for s in statuses
    }


def _version(dated: bool) -> dict[str, Any]:
    if dated:
        return {
            "name": "api-version",
            "in": "query",
            "required": True,
            "description": "A dated Azure OpenAI API version, or v1. Missing or unknown: 404 "
            "Resource not found, as Azure answers.",
            "schema": {"type": "string", "enum": sorted(AZURE_API_VERSIONS)},
        }
    return {
        "name": "api-version",
        "in": "query",
        "required": False,
        "description": "Omit it (or v1, preview, latest); a dated version is 400 BadRequest.",
        "schema": {"type": "string", "enum": sorted(V1_API_VERSIONS)},
    }


_DEPLOYMENT = {
    "name": "deployment",
    "in": "path",
    "required": True,
    "description": "A logical alias, or a deployment name from the region table (mapped to its alias).",
    "schema": {"type": "string"},
}


def _post(op_id: str, body_schema: str, dated: bool, ok: dict[str, Any]) -> dict[str, Any]:
    params = [_DEPLOYMENT, _version(True)] if dated else [_version(False)]
    return {
        "post": {
            "operationId": op_id,
            "tags": ["azure"],
            "security": _KEY_SECURITY,
            "parameters": params,
            "requestBody": {
                "required": True,
                "content": {
                    "application/json": {"schema": {"$ref": f"#/components/schemas/{body_schema}"}}
                },
            },
            "responses": {"200": ok, **_errors(400, 401, 404, 413, 429, 500, 502, 503, 504)},
        }
    }


def azure_paths(chat_ok: dict[str, Any], embeddings_ok: dict[str, Any]) -> dict[str, Any]:
    """The Azure-shaped paths; ``chat_ok`` / ``embeddings_ok`` are the OpenAI routes' 200s."""
    dated_note = {
        "description": "The request body's `model` is ignored: the path names the deployment."
    }
    chat = _post("azureCreateChatCompletion", "ChatRequest", True, chat_ok)
    chat["post"].update(dated_note)
    emb = _post("azureCreateEmbedding", "EmbeddingsRequest", True, embeddings_ok)
    emb["post"].update(dated_note)
    return {
        "/openai/deployments/{deployment}/chat/completions": chat,
        "/openai/deployments/{deployment}/embeddings": emb,
        "/openai/v1/chat/completions": _post(
            "azureV1CreateChatCompletion", "ChatRequest", False, chat_ok
        ),
        "/openai/v1/embeddings": _post(
            "azureV1CreateEmbedding", "EmbeddingsRequest", False, embeddings_ok
        ),
        "/openai/v1/models": {
            "get": {
                "operationId": "azureV1ListModels",
                "tags": ["azure"],
                "security": _KEY_SECURITY,
                "parameters": [_version(False)],
                "responses": {
                    "200": {
                        "description": "The aliases this gateway serves.",
                        "content": {
                            "application/json": {
                                "schema": {"$ref": "#/components/schemas/ModelList"}
                            }
                        },
                    },
                    **_errors(400, 401, 500),
                },
            }
        },
    }
