"""The HTTP surface: the OpenAI-compatible and Azure-shaped model routes, the Responses API,
the job routes (``/api/v1/jobs``) and the operations routes (``/api/ops/...``); request parsing,
error mapping, SSE streaming, OpenAPI. It sits above the capabilities it exposes (``aoai``,
``jobs``, ``ops``, ``usage``), and none of them imports it.

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
