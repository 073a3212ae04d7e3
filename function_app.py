"""Azure Functions entry point (Python v2 programming model). Wiring only: each handler parses
its input, calls ``shared/`` and maps the outcome. The logic lives in ``shared/``."""

import logging
import os

import azure.functions as func

# The Azure SDKs log every HTTP request and AMQP state change at INFO, and the openai SDK's HTTP
# client (httpx2) every upstream call, which the gateway logs once itself: noise and cost in
# Application Insights. Their warnings and errors still come through.
logging.getLogger("azure").setLevel(logging.WARNING)
logging.getLogger("httpx").setLevel(logging.WARNING)
logging.getLogger("httpx2").setLevel(logging.WARNING)

app = func.FunctionApp(http_auth_level=func.AuthLevel.FUNCTION)

# Model routes: function keys (default), or anonymous to the host when App Service Authentication
# (Easy Auth) validates Entra ID tokens in front of them (GATEWAY_HTTP_AUTH=easy_auth; the handlers
# then refuse requests without x-ms-client-principal). Read at indexing: docs/configuration.md.
_MODEL_AUTH = (
    func.AuthLevel.ANONYMOUS
    if os.environ.get("GATEWAY_HTTP_AUTH", "").strip() == "easy_auth"
    else func.AuthLevel.FUNCTION
)

# --- HTTP API ------------------------------------------------------------------------------
# (section owned by the HTTP API work)
# Importing the FastAPI extension at indexing time is what turns on HTTP streaming in the worker
# (with PYTHON_ENABLE_INIT_INDEXING=1); from then on every HTTP function takes and returns FastAPI
# types. shared.api (pydantic, the access layer) is imported inside the handlers, on first call.
from azurefunctions.extensions.http.fastapi import Request, Response  # noqa: E402

http_api = func.Blueprint()


@http_api.route(route="v1/chat/completions", methods=["POST"], auth_level=_MODEL_AUTH)
async def chat_completions(req: Request) -> Response:
    """OpenAI chat completions; SSE when the body says ``"stream": true``."""
    from shared import api, runtime

    return await api.chat_completions(req, runtime)


@http_api.route(route="v1/embeddings", methods=["POST"], auth_level=_MODEL_AUTH)
async def embeddings(req: Request) -> Response:
    from shared import api, runtime

    return await api.embeddings(req, runtime)


@http_api.route(route="v1/models", methods=["GET"], auth_level=_MODEL_AUTH)
async def list_models(req: Request) -> Response:
    from shared import api, runtime

    return await api.list_models(req, runtime)


@http_api.route(route="health", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
async def health(req: Request) -> Response:
    """Liveness and region health; answers (503, naming the bad setting) even when misconfigured."""
    from shared import api, runtime

    return await api.health(req, runtime)


@http_api.route(route="health/details", methods=["GET"], auth_level=func.AuthLevel.FUNCTION)
async def health_details(req: Request) -> Response:
    """Circuits, cooldowns, budgets and degraded deployments: behind a function key."""
    from shared import api, runtime

    return await api.health_details(req, runtime)


@http_api.route(route="v1/openapi.json", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
async def openapi(req: Request) -> Response:
    """The API description: anonymous so tools can fetch it; it holds no configuration."""
    from shared import api, runtime

    return await api.openapi(req, runtime)


app.register_blueprint(http_api)

# --- Azure OpenAI-shaped routes --------------------------------------------------------------
# (section owned by the Azure front door work) The same handlers behind the paths AzureOpenAI,
# LangChain's and LlamaIndex's Azure classes and the v1 API build; errors in Azure's shape.
azure_api = func.Blueprint()


@azure_api.route(
    route="openai/deployments/{deployment}/chat/completions",
    methods=["POST"],
    auth_level=_MODEL_AUTH,
)
async def azure_chat_completions(req: Request) -> Response:
    from shared import api, runtime

    return await api.azure_chat_completions(req, runtime)


@azure_api.route(
    route="openai/deployments/{deployment}/embeddings", methods=["POST"], auth_level=_MODEL_AUTH
)
async def azure_embeddings(req: Request) -> Response:
    from shared import api, runtime

    return await api.azure_embeddings(req, runtime)


@azure_api.route(route="openai/v1/chat/completions", methods=["POST"], auth_level=_MODEL_AUTH)
async def azure_v1_chat_completions(req: Request) -> Response:
    from shared import api, runtime

    return await api.azure_v1_chat_completions(req, runtime)


@azure_api.route(route="openai/v1/embeddings", methods=["POST"], auth_level=_MODEL_AUTH)
async def azure_v1_embeddings(req: Request) -> Response:
    from shared import api, runtime

    return await api.azure_v1_embeddings(req, runtime)


@azure_api.route(route="openai/v1/models", methods=["GET"], auth_level=_MODEL_AUTH)
async def azure_v1_models(req: Request) -> Response:
    from shared import api, runtime

    return await api.azure_v1_models(req, runtime)


app.register_blueprint(azure_api)

# --- Backlog: Service Bus worker, timer, poison handlers -----------------------------------
# (section owned by the backlog work)
# Each handler converts its trigger's input, calls shared.jobs (imported on first call, so
# indexing stays cheap) and maps the outcome: returning completes the message; raising makes
# Service Bus redeliver it (and dead-letter it after MaxDeliveryCount).
backlog_api = func.Blueprint()


@backlog_api.route(route="v1/jobs", methods=["POST"], auth_level=func.AuthLevel.FUNCTION)
async def submit_job(req: Request) -> Response:
    """Validate and enqueue a backlog job: 202 with the job id and its status URL."""
    from shared import api, runtime

    return await api.submit_job(req, runtime)


@backlog_api.route(route="v1/jobs/{job_id}", methods=["GET"], auth_level=func.AuthLevel.FUNCTION)
async def job_status(req: Request) -> Response:
    """A job's status; its result or failure once it is done."""
    from shared import api, runtime

    return await api.job_status(req, runtime)


@backlog_api.route(
    route="v1/jobs/{job_id}/cancel", methods=["POST"], auth_level=func.AuthLevel.FUNCTION
)
async def cancel_job(req: Request) -> Response:
    """Cancel a waiting job (queued, parked, in the batch lane); 409 while it runs or once done."""
    from shared import api, runtime

    return await api.cancel_job(req, runtime)


@backlog_api.service_bus_queue_trigger(
    arg_name="msg", queue_name="%BACKLOG_QUEUE%", connection="ServiceBusConnection"
)
async def backlog_worker(msg: func.ServiceBusMessage) -> None:
    """Run one job: success/permanent failure/parked all complete the message; transient raises."""
    from shared import jobs, runtime

    await jobs.BacklogTriggers(runtime.backlog).worker(msg)


@backlog_api.service_bus_queue_trigger(
    arg_name="msg", queue_name="%BACKLOG_QUEUE%/$DeadLetterQueue", connection="ServiceBusConnection"
)
async def backlog_dead_letters(msg: func.ServiceBusMessage) -> None:
    """Dead-lettered jobs: re-drive a bounded number of times, else a terminal failure + reply + alert."""
    from shared import jobs, runtime

    await jobs.BacklogTriggers(runtime.backlog).dead_letters(msg)


@backlog_api.timer_trigger(
    arg_name="timer", schedule="%RETRY_TIMER_SCHEDULE%", run_on_startup=False
)
async def backlog_timer(timer: func.TimerRequest) -> None:
    """Probe regions, re-drive parked jobs within quota, poison the hopeless ones."""
    from shared import jobs, runtime

    await jobs.BacklogTriggers(runtime.backlog).timer(timer)


@backlog_api.queue_trigger(
    arg_name="msg", queue_name="%PARKING_QUEUE%-poison", connection="AzureWebJobsStorage"
)
async def parking_poison(msg: func.QueueMessage) -> None:
    """Parked jobs the timer gave up on: terminal failure with the reason, reply, alert."""
    from shared import jobs, runtime

    await jobs.BacklogTriggers(runtime.backlog).parking_poison(msg)


app.register_blueprint(backlog_api)

# --- Usage and operations -------------------------------------------------------------------
# (section owned by the operations work) Usage per caller; ops routes take the host's master key
# (auth level ADMIN) and live under ops/ (the host reserves routes starting with "admin").
ops_api = func.Blueprint()


@ops_api.route(route="v1/usage", methods=["GET"], auth_level=func.AuthLevel.FUNCTION)
async def usage(req: Request) -> Response:
    """The calling identity's own token use and cost (JSON, or CSV with Accept: text/csv)."""
    from shared import api, runtime

    return await api.usage_report(req, runtime, everyone=False)


@ops_api.route(route="ops/usage", methods=["GET"], auth_level=func.AuthLevel.ADMIN)
async def ops_usage(req: Request) -> Response:
    """Every caller's token use and cost."""
    from shared import api, runtime

    return await api.usage_report(req, runtime, everyone=True)


app.register_blueprint(ops_api)


ops_routes = func.Blueprint()


@ops_routes.route(route="ops/state", methods=["GET"], auth_level=func.AuthLevel.ADMIN)
async def ops_state(req: Request) -> Response:
    """Every region, deployment, circuit, cooldown and exhaustion, across instances."""
    from shared import api, runtime

    return await api.ops_state(req, runtime)


@ops_routes.route(route="ops/clear", methods=["POST"], auth_level=func.AuthLevel.ADMIN)
async def ops_clear(req: Request) -> Response:
    """Clear one region's or deployment's state on every instance (shared region-state table)."""
    from shared import api, runtime

    return await api.ops_clear(req, runtime)


@ops_routes.route(route="ops/parked", methods=["GET"], auth_level=func.AuthLevel.ADMIN)
async def ops_parked(req: Request) -> Response:
    from shared import api, runtime

    return await api.ops_parked(req, runtime)


@ops_routes.route(route="ops/parked/redrive", methods=["POST"], auth_level=func.AuthLevel.ADMIN)
async def ops_parked_redrive(req: Request) -> Response:
    """Re-drive parked jobs to the backlog now: ``{"job_ids": [...]}`` or ``{"all": true}``."""
    from shared import api, runtime

    return await api.ops_parked_redrive(req, runtime)


@ops_routes.route(route="ops/deadletters", methods=["GET"], auth_level=func.AuthLevel.ADMIN)
async def ops_dead_letters(req: Request) -> Response:
    """Peek at the backlog's dead-letter queue."""
    from shared import api, runtime

    return await api.ops_dead_letters(req, runtime)


@ops_routes.route(
    route="ops/deadletters/redrive", methods=["POST"], auth_level=func.AuthLevel.ADMIN
)
async def ops_redrive(req: Request) -> Response:
    """Send chosen dead-lettered messages back to the backlog."""
    from shared import api, runtime

    return await api.ops_redrive(req, runtime)


@ops_routes.route(route="ops/callers", methods=["GET"], auth_level=func.AuthLevel.ADMIN)
async def ops_callers(req: Request) -> Response:
    """Caller limits in force and each caller's use against them."""
    from shared import api, runtime

    return await api.ops_callers(req, runtime)


@ops_routes.route(route="ops/jobs/{job_id}", methods=["GET"], auth_level=func.AuthLevel.ADMIN)
async def ops_job_status(req: Request) -> Response:
    """Any job's status, whole (its submitter sees its own jobs at v1/jobs/{id})."""
    from shared import api, runtime

    return await api.ops_job_status(req, runtime)


@ops_routes.route(
    route="ops/jobs/{job_id}/cancel", methods=["POST"], auth_level=func.AuthLevel.ADMIN
)
async def ops_job_cancel(req: Request) -> Response:
    """Cancel any waiting job."""
    from shared import api, runtime

    return await api.ops_job_cancel(req, runtime)


app.register_blueprint(ops_routes)

# --- Responses API ---------------------------------------------------------------------------
# (section owned by the Responses API work) Both front doors: /api/v1/... (OpenAI's errors,
# aliases), /api/openai/v1/... (Azure's v1 API: deployment names too, Azure's errors) and Azure's
# dated route /api/openai/responses?api-version=... (what AzureOpenAI builds for client.responses).
responses_api = func.Blueprint()


@responses_api.route(route="v1/responses", methods=["POST"], auth_level=_MODEL_AUTH)
async def responses_create(req: Request) -> Response:
    """Create a response (JSON, the event stream, or background); continuations stay on the
    region that stores ``previous_response_id``."""
    from shared import api, runtime

    return await api.responses_create(req, runtime)


@responses_api.route(
    route="v1/responses/{response_id}", methods=["GET", "DELETE"], auth_level=_MODEL_AUTH
)
async def response_by_id(req: Request) -> Response:
    """Retrieve (GET) or delete (DELETE) a response, in the region that stores it."""
    from shared import api, runtime

    return await api.response_by_id(req, runtime)


@responses_api.route(
    route="v1/responses/{response_id}/cancel", methods=["POST"], auth_level=_MODEL_AUTH
)
async def response_cancel(req: Request) -> Response:
    from shared import api, runtime

    return await api.response_cancel(req, runtime)


@responses_api.route(
    route="v1/responses/{response_id}/input_items", methods=["GET"], auth_level=_MODEL_AUTH
)
async def response_input_items(req: Request) -> Response:
    from shared import api, runtime

    return await api.response_input_items(req, runtime)


@responses_api.route(route="openai/v1/responses", methods=["POST"], auth_level=_MODEL_AUTH)
async def azure_v1_responses_create(req: Request) -> Response:
    from shared import api, runtime

    return await api.responses_create(req, runtime, azure=True)


@responses_api.route(
    route="openai/v1/responses/{response_id}", methods=["GET", "DELETE"], auth_level=_MODEL_AUTH
)
async def azure_v1_response_by_id(req: Request) -> Response:
    from shared import api, runtime

    return await api.response_by_id(req, runtime, azure=True)


@responses_api.route(
    route="openai/v1/responses/{response_id}/cancel", methods=["POST"], auth_level=_MODEL_AUTH
)
async def azure_v1_response_cancel(req: Request) -> Response:
    from shared import api, runtime

    return await api.response_cancel(req, runtime, azure=True)


@responses_api.route(
    route="openai/v1/responses/{response_id}/input_items",
    methods=["GET"],
    auth_level=_MODEL_AUTH,
)
async def azure_v1_response_input_items(req: Request) -> Response:
    from shared import api, runtime

    return await api.response_input_items(req, runtime, azure=True)


@responses_api.route(route="openai/responses", methods=["POST"], auth_level=_MODEL_AUTH)
async def azure_responses_create(req: Request) -> Response:
    from shared import api, runtime

    return await api.responses_create(req, runtime, dated=True)


@responses_api.route(
    route="openai/responses/{response_id}", methods=["GET", "DELETE"], auth_level=_MODEL_AUTH
)
async def azure_response_by_id(req: Request) -> Response:
    from shared import api, runtime

    return await api.response_by_id(req, runtime, dated=True)


@responses_api.route(
    route="openai/responses/{response_id}/cancel", methods=["POST"], auth_level=_MODEL_AUTH
)
async def azure_response_cancel(req: Request) -> Response:
    from shared import api, runtime

    return await api.response_cancel(req, runtime, dated=True)


@responses_api.route(
    route="openai/responses/{response_id}/input_items", methods=["GET"], auth_level=_MODEL_AUTH
)
async def azure_response_input_items(req: Request) -> Response:
    from shared import api, runtime

    return await api.response_input_items(req, runtime, dated=True)


app.register_blueprint(responses_api)
