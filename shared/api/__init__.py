"""The OpenAI-compatible HTTP API: request parsing, error mapping, SSE streaming, OpenAPI.

Handlers take a Starlette/FastAPI ``Request`` plus the services (``shared.runtime``) and return a
``Response``; ``function_app.py`` only wires routes to them. Never imports ``azure.functions``.
"""

from ._context import RequestInfo, request_info
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

__all__ = [
    "ApiError",
    "RequestInfo",
    "Services",
    "chat_completions",
    "embeddings",
    "error_body",
    "error_response",
    "health",
    "health_details",
    "list_models",
    "openapi",
    "openapi_document",
    "parse_body",
    "read_body",
    "request_info",
]
