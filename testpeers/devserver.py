"""The dev server on a free loopback port, in a thread of the calling process.

* ``settings_env(settings)``: the ``GATEWAY_*`` app settings equivalent to a ``GatewaySettings``.
* ``start_devserver()``: ``devserver.http`` under uvicorn in a background thread (so the caller's
  environment applies to it): ``.base_url`` is ``http://127.0.0.1:<port>/api``; ``stop()`` closes
  the services the server built on the server's own event loop, then stops it.
"""

from __future__ import annotations

import asyncio
import json
import threading
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any

from .ports import STARTUP_TIMEOUT_S, free_port, wait_for_port

__all__ = ["DevServer", "settings_env", "start_devserver"]


def settings_env(settings: Any) -> dict[str, str]:
    """``GATEWAY_*`` app settings (strings, keys revealed) equivalent to a ``GatewaySettings``."""
    env: dict[str, str] = {}
    for name, field in type(settings).model_fields.items():
        value = getattr(settings, name)
        if name == "regions":
            regions = []
            for region in value:
                raw = region.model_dump(mode="python", exclude_none=True)
                if region.api_key is not None:
                    raw["api_key"] = region.api_key.get_secret_value()
                regions.append(raw)
            env["GATEWAY_REGIONS"] = json.dumps(regions)
        elif value is not None and value != field.default:
            env[f"GATEWAY_{name.upper()}"] = str(value)
    return env


@dataclass
class DevServer:
    port: int
    base_url: str  # http://127.0.0.1:<port>/api
    _server: Any
    _thread: threading.Thread
    _loop: asyncio.AbstractEventLoop | None = None

    def run(self, coro: Any, timeout: float = 60.0) -> Any:
        """Run a coroutine on the server's event loop (where the app's services live)."""
        assert self._loop is not None
        future: Future[Any] = asyncio.run_coroutine_threadsafe(coro, self._loop)
        return future.result(timeout)

    def stop(self) -> None:
        from shared import runtime

        if self._thread.is_alive() and self._loop is not None:
            try:
                self.run(runtime.aclose())
            finally:
                self._server.should_exit = True
                self._thread.join(timeout=10)


def start_devserver(function_app: Any = None, *, port: int | None = None) -> DevServer:
    """Serve ``function_app.app`` (default: the real one) on 127.0.0.1 in a background thread."""
    import uvicorn

    from devserver.http import serve_config

    if function_app is None:
        import function_app as module

        function_app = module.app
    port = port or free_port()
    server = uvicorn.Server(serve_config(function_app, port=port, log_level="warning"))
    handle = DevServer(port, f"http://127.0.0.1:{port}/api", server, threading.Thread())
    started = threading.Event()

    async def serve() -> None:
        handle._loop = asyncio.get_running_loop()
        started.set()
        await server.serve()

    handle._thread = threading.Thread(
        target=asyncio.run, args=(serve(),), name=f"devserver-{port}", daemon=True
    )
    handle._thread.start()
    started.wait(STARTUP_TIMEOUT_S)
    wait_for_port(port, timeout=STARTUP_TIMEOUT_S)
    return handle
