"""The OpenAI-compatible HTTP API: request parsing, error mapping, SSE streaming, OpenAPI.

Handlers take a Starlette/FastAPI ``Request`` plus the services (``shared.runtime``) and return a
``Response``; ``function_app.py`` only wires routes to them. Never imports ``azure.functions``.
"""

from ._azure import (
    azure_chat_completions,
    azure_embeddings,
    azure_v1_chat_completions,
    azure_v1_embeddings,
    azure_v1_models,
)
from ._context import (
    CallerPolicy,
    Principal,
    RequestInfo,
    easy_auth_principal,
    key_fingerprint,
    request_info,
)
from ._errors import ApiError, error_body, error_response
from ._handlers import (
    Services,
    chat_completions,
    embeddings,
    health,
    health_details,
    list_models,
    openapi,
)
from ._openapi import openapi_document
from ._parse import parse_body, read_body
from ._responses import (
    ResponsesServices,
    response_by_id,
    response_cancel,
    response_delete,
    response_input_items,
    response_retrieve,
    responses_create,
)
from ._usage import UsageServices, usage_report

__all__ = [
    "ApiError",
    "CallerPolicy",
    "Principal",
    "RequestInfo",
    "ResponsesServices",
    "Services",
    "UsageServices",
    "azure_chat_completions",
    "azure_embeddings",
    "azure_v1_chat_completions",
    "azure_v1_embeddings",
    "azure_v1_models",
    "chat_completions",
    "easy_auth_principal",
    "embeddings",
    "error_body",
    "error_response",
    "health",
    "health_details",
    "key_fingerprint",
    "list_models",
    "openapi",
    "openapi_document",
    "parse_body",
    "read_body",
    "request_info",
    "response_by_id",
    "response_cancel",
    "response_delete",
    "response_input_items",
    "response_retrieve",
    "responses_create",
    "usage_report",
]
