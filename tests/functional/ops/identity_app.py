"""The app's operations routes in a process of its own, on identity-based storage: run by
``test_identity_storage.py`` with ``AzureWebJobsStorage__*ServiceUri`` (no connection string),
the simulator's managed-identity endpoint and ``SSL_CERT_FILE`` trusting Azurite's certificate
(read when the process starts, as the app's would be). Prints one JSON line: what each route
answered, and whether the routes and the gateway hold the same health store."""

from __future__ import annotations

import asyncio
import json
from typing import Any


async def main() -> None:
    import function_app
    from shared import runtime
    from tests.functional.api._asgi import body_of, make_request

    async def call(handler: Any, method: str, path: str, body: Any = None) -> dict[str, Any]:
        response = await handler(make_request(method, path, body))
        return {"status": response.status_code, "body": json.loads(await body_of(response))}

    out: dict[str, Any] = {}
    try:
        out["state_before"] = await call(function_app.ops_state, "GET", "/api/ops/state")
        out["clear"] = await call(
            function_app.ops_clear, "POST", "/api/ops/clear", {"region": "eastus2"}
        )
        out["state_after"] = await call(function_app.ops_state, "GET", "/api/ops/state")
        out["parked"] = await call(function_app.ops_parked, "GET", "/api/ops/parked")

        gateway: Any = runtime.gateway()
        store = runtime.verdict_store()
        out["same_store"] = store is not None and gateway._sync.shared.store is store
        out["store"] = None if store is None else store.describe()
        out["credential"] = None if store is None else type(store.target.credentials.get()).__name__
    finally:
        await runtime.aclose()
    print(json.dumps(out))


if __name__ == "__main__":
    asyncio.run(main())
