"""``python -m devserver [--settings local.settings.json] [--port 7071] [--instance-id ID] [--http-only]``

Several dev servers on different ports, sharing one Azurite, broker and simulator, are several
instances of one app: each has its own process and state (``WEBSITE_INSTANCE_ID``, as Azure sets
it per instance, defaults to ``devserver-<port>``), all pump the same Service Bus queues, and the
timer runs on the one holding its blob lease (``devserver.lease``).

1. Loads the settings file's ``Values`` into the environment (variables already set win).
2. Imports ``function_app`` and serves its HTTP functions on 127.0.0.1:<port>/api (``devserver.http``).
3. Runs the extra runners next to it, in the same event loop, until Ctrl-C / SIGTERM; then stops
   the runners and closes the services in ``shared.runtime``.

Extra runners (the hook): each module named in ``RUNNER_MODULES`` that exists is imported and its
``async def run(function_app, stop: asyncio.Event) -> None`` is started as a task. It must return
soon after ``stop`` is set (the HTTP server has shut down by then). A runner that raises stops the
dev server. A module in the list that does not exist yet is skipped, so adding e.g.
``devserver/queues.py`` (Service Bus trigger, timer, poison runner) needs no edit here.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib
import logging
import os
import signal
import sys
from collections.abc import Iterator, Sequence
from types import ModuleType

import uvicorn

from ._settings import load_local_settings

RUNNER_MODULES: tuple[str, ...] = ("devserver.queues",)

_log = logging.getLogger("devserver")


def _runners(names: Sequence[str]) -> list[ModuleType]:
    found = []
    for name in names:
        try:
            found.append(importlib.import_module(name))
        except ModuleNotFoundError as exc:
            if exc.name != name:
                raise
    return found


class _Server(uvicorn.Server):
    """uvicorn's server, except that after a graceful stop on SIGINT/SIGTERM it returns instead of
    re-raising the signal (which would kill the process before the runners have stopped)."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, self._on_signal)
        try:
            yield
        finally:
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(sig)

    def _on_signal(self) -> None:
        if self.should_exit:  # a second Ctrl-C: do not wait for open connections
            self.force_exit = True
        self.should_exit = True


async def _serve(args: argparse.Namespace) -> int:
    import function_app

    from .http import serve_config

    server = _Server(
        serve_config(function_app.app, host=args.host, port=args.port, log_level=args.log_level)
    )
    stop = asyncio.Event()
    runners = [] if args.http_only else _runners(RUNNER_MODULES)
    tasks = [asyncio.create_task(m.run(function_app.app, stop), name=m.__name__) for m in runners]
    for m in runners:
        _log.info("devserver: runner %s started", m.__name__)

    async def watch() -> None:  # a runner that dies takes the server down with it
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
        if any(t.exception() for t in done if not t.cancelled()):
            server.should_exit = True

    watcher = asyncio.create_task(watch()) if tasks else None
    await server.serve()
    stop.set()
    results = await asyncio.gather(*tasks, return_exceptions=True)
    if watcher:
        watcher.cancel()
    from shared import runtime

    await runtime.aclose()  # the services the app built (connections, the region-state client)
    failed = [
        r
        for r in results
        if isinstance(r, BaseException) and not isinstance(r, asyncio.CancelledError)
    ]
    for exc in failed:
        _log.error("devserver: a runner failed", exc_info=exc)
    return 1 if failed else 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m devserver",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--settings", help="a local.settings.json whose Values go into the environment first"
    )
    parser.add_argument(
        "--host", default="127.0.0.1", help="loopback address to bind (default 127.0.0.1)"
    )
    parser.add_argument("--port", type=int, default=7071, help="default 7071, as Core Tools")
    parser.add_argument(
        "--instance-id",
        help="this instance's id (WEBSITE_INSTANCE_ID; default devserver-<port>)",
    )
    parser.add_argument("--http-only", action="store_true", help="do not start the extra runners")
    parser.add_argument("--log-level", default="info")
    parser.add_argument(
        "--sdk-log-level",
        default="warning",
        help="level of the Azure SDKs' own loggers (their INFO logs every HTTP request)",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    logging.getLogger("azure").setLevel(args.sdk_log_level.upper())
    if args.settings:
        applied = load_local_settings(args.settings)
        _log.info("devserver: loaded %d settings from %s", len(applied), args.settings)
    if args.instance_id or "WEBSITE_INSTANCE_ID" not in os.environ:
        os.environ["WEBSITE_INSTANCE_ID"] = args.instance_id or f"devserver-{args.port}"
    return asyncio.run(_serve(args))


if __name__ == "__main__":
    sys.exit(main())
