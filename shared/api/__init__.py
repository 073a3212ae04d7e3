"""The HTTP surface: the OpenAI-compatible and Azure-shaped model routes, the Responses API,
the job routes (``/api/v1/jobs``) and the operations routes (``/api/ops/...``); request parsing,
error mapping, SSE streaming, OpenAPI. It sits above the capabilities it exposes (``aoai``,
``jobs``, ``ops``, ``usage``), and none of them imports it.

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
    from ._jobs import JobEndpointServices, cancel_job, job_status, submit_job
    from ._openapi import openapi_document
    from ._ops import (
        OpsRoot,
        ops_callers,
        ops_clear,
        ops_dead_letters,
        ops_job_cancel,
        ops_job_status,
        ops_parked,
        ops_parked_redrive,
        ops_redrive,
        ops_state,
    )
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
    "JobEndpointServices",
    "OpsRoot",
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
    "cancel_job",
    "chat_completions",
    "easy_auth_principal",
    "embeddings",
    "error_body",
    "error_response",
    "health",
    "health_details",
    "job_status",
    "key_fingerprint",
    "list_models",
    "openapi",
    "openapi_document",
    "ops_callers",
    "ops_clear",
    "ops_dead_letters",
    "ops_job_cancel",
    "ops_job_status",
    "ops_parked",
    "ops_parked_redrive",
    "ops_redrive",
    "ops_state",
    "parse_body",
    "read_body",
    "request_info",
    "response_by_id",
    "response_cancel",
    "response_delete",
    "response_input_items",
    "response_retrieve",
    "responses_create",
    "submit_job",
    "usage_report",
]


# name -> the module that defines it, imported on first use (lazy: cold start)
_ON_FIRST_USE = {
    "JobEndpointServices": "_jobs",
    "cancel_job": "_jobs",
    "job_status": "_jobs",
    "submit_job": "_jobs",
    "OpsRoot": "_ops",
    "ops_callers": "_ops",
    "ops_clear": "_ops",
    "ops_dead_letters": "_ops",
    "ops_job_cancel": "_ops",
    "ops_job_status": "_ops",
    "ops_parked": "_ops",
    "ops_parked_redrive": "_ops",
    "ops_redrive": "_ops",
    "ops_state": "_ops",
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
