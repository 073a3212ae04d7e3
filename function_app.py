"""Azure Functions entry point (Python v2 programming model). Wiring only: each handler parses
its input, calls ``shared/`` and maps the outcome. The logic lives in ``shared/``."""

import azure.functions as func

app = func.FunctionApp(http_auth_level=func.AuthLevel.FUNCTION)

# --- HTTP API ------------------------------------------------------------------------------
# (section owned by the HTTP API work)

# --- Backlog: Service Bus worker, timer, poison handlers -----------------------------------
# (section owned by the backlog work)
