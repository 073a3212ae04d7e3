"""Azure Functions entry point (Python v2 programming model). Wiring only: each handler parses
its input, calls ``shared/`` and maps the outcome. The logic lives in ``shared/``."""

import azure.functions as func

app = func.FunctionApp(http_auth_level=func.AuthLevel.FUNCTION)

# --- HTTP API ------------------------------------------------------------------------------
# (section owned by the HTTP API work)
# Importing the FastAPI extension at indexing time is what turns on HTTP streaming in the worker
# (with PYTHON_ENABLE_INIT_INDEXING=1); from then on every HTTP function takes and returns FastAPI
# types. shared.api (pydantic, the access layer) is imported inside the handlers, on first call.
from azurefunctions.extensions.http.fastapi import Request, Response  # noqa: E402

http_api = func.Blueprint()


@http_api.route(route="v1/chat/completions", methods=["POST"], auth_level=func.AuthLevel.FUNCTION)
async def chat_completions(req: Request) -> Response:
    """OpenAI chat completions; SSE when the body says ``"stream": true``."""
    from shared import api, runtime

    return await api.chat_completions(req, runtime)


@http_api.route(route="v1/embeddings", methods=["POST"], auth_level=func.AuthLevel.FUNCTION)
async def embeddings(req: Request) -> Response:
    from shared import api, runtime

    return await api.embeddings(req, runtime)


@http_api.route(route="v1/models", methods=["GET"], auth_level=func.AuthLevel.FUNCTION)
async def list_models(req: Request) -> Response:
    from shared import api, runtime

    return await api.list_models(req, runtime)


@http_api.route(route="health", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
async def health(req: Request) -> Response:
    """Liveness and region health; answers (503, naming the bad setting) even when misconfigured."""
    from shared import api, runtime

    return await api.health(req, runtime)


@http_api.route(route="v1/openapi.json", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
async def openapi(req: Request) -> Response:
    """The API description: anonymous so tools can fetch it; it holds no configuration."""
    from shared import api, runtime

    return await api.openapi(req, runtime)


app.register_blueprint(http_api)

# --- Backlog: Service Bus worker, timer, poison handlers -----------------------------------
# (section owned by the backlog work)
