"""The OpenAI-compatible HTTP API: request parsing, error mapping, SSE streaming, OpenAPI.

Handlers take a Starlette/FastAPI ``Request`` plus the services (``shared.runtime``) and return a
``Response``; ``function_app.py`` only wires routes to them. Never imports ``azure.functions``.

What a chat or embeddings request does not use (the Responses API, the usage report, the OpenAPI
document) is imported on first use of one of its names, not with the package: a process's first
chat answer does not compile and build them.
"""

from typing import TYPE_CHECKING, Any

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
from ._parse import parse_body, read_body

if TYPE_CHECKING:  # loaded on first use by __getattr__ below
    from ._openapi import openapi_document
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


# name -> the module that defines it, imported on first use (lazy: cold start)
_ON_FIRST_USE = {
    "openapi_document": "_openapi",
    "ResponsesServices": "_responses",
    "response_by_id": "_responses",
    "response_cancel": "_responses",
    "response_delete": "_responses",
    "response_input_items": "_responses",
    "response_retrieve": "_responses",
    "responses_create": "_responses",
    "UsageServices": "_usage",
    "usage_report": "_usage",
}


def __getattr__(name: str) -> Any:
    module = _ON_FIRST_USE.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from importlib import import_module

    value = getattr(import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value
