"""The language worker process the double starts, as the Functions host starts the Python worker:

    python -m funchost.worker --host 127.0.0.1 --port N --worker-id W --request-id R
                              --grpc-max-message-length BYTES

On Python 3.13 the host runs a thin gRPC front of its own that hands each message to the
``azure-functions-runtime`` library (indexing, bindings, invocation, the HTTP streaming server).
That front ships with the host, not on PyPI, so this module is ours: it opens the event stream,
says ``StartStream`` and passes every request to the runtime's handler for it, with the message
classes and the host address the runtime expects in ``properties``. Everything the app sees comes
from the runtime; this module only moves messages and forwards log records as ``RpcLog``."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from types import ModuleType
from typing import Any

import grpc

from funchost._messages import EVENT_STREAM, load_messages

__all__ = ["main"]

# request field -> (runtime handler name, response field)
_ROUTES = {
    "worker_init_request": ("worker_init_request", "worker_init_response"),
    "functions_metadata_request": ("functions_metadata_request", "function_metadata_response"),
    "function_load_request": ("function_load_request", "function_load_response"),
    "invocation_request": ("invocation_request", "invocation_response"),
    "function_environment_reload_request": (
        "function_environment_reload_request",
        "function_environment_reload_response",
    ),
}
_LEVELS = ((logging.CRITICAL, 5), (logging.ERROR, 4), (logging.WARNING, 3), (logging.INFO, 2))


class _Envelope:
    """What the runtime's handlers take: the message and the worker's properties."""

    def __init__(self, message: Any, properties: dict[str, Any]) -> None:
        self.request = message
        self.properties = properties


class _RpcLogHandler(logging.Handler):
    """Log records to the host as RpcLog messages (the host shows them as function logs)."""

    def __init__(self, protos: ModuleType, send: Any, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__(logging.INFO)
        self._protos, self._send, self._loop = protos, send, loop

    def emit(self, record: logging.LogRecord) -> None:
        if record.name.startswith("grpc"):
            return
        from azure_functions_runtime import invocation_id_cv

        level = next((lv for floor, lv in _LEVELS if record.levelno >= floor), 1)
        log = self._protos.RpcLog(
            invocation_id=invocation_id_cv.get() or "",
            category=record.name,
            level=level,
            message=self.format(record),
        )
        message = self._protos.StreamingMessage(rpc_log=log)
        try:
            self._loop.call_soon_threadsafe(self._send, message)
        except RuntimeError:  # the loop is closed: the worker is stopping
            pass


async def _run(args: argparse.Namespace) -> None:
    import azure_functions_runtime as runtime

    protos = load_messages()
    loop = asyncio.get_running_loop()
    outbox: asyncio.Queue[Any] = asyncio.Queue()
    root = logging.getLogger()
    root.setLevel(logging.INFO)
    root.addHandler(_RpcLogHandler(protos, outbox.put_nowait, loop))
    properties = {"host": args.host, "protos": protos}
    runtime.start_threadpool_executor()

    async def outgoing() -> Any:
        yield protos.StreamingMessage(
            request_id=args.request_id, start_stream=protos.StartStream(worker_id=args.worker_id)
        )
        while (message := await outbox.get()) is not None:
            yield message

    async def answer(message: Any, kind: str) -> None:
        handler_name, response_field = _ROUTES[kind]
        if (
            kind == "worker_init_request"
        ):  # the app is imported from its folder, as the host runs it
            folder = message.worker_init_request.function_app_directory
            if folder and folder not in sys.path:
                sys.path.insert(0, folder)
                os.chdir(folder)
        if kind == "invocation_request":  # this task's logs belong to the invocation
            runtime.invocation_id_cv.set(message.invocation_request.invocation_id)
        response = await getattr(runtime, handler_name)(_Envelope(message, properties))
        # As the host's Python worker does: most answers carry the worker's start-up request id
        # (the host pairs them by content), the metadata answer the request's.
        request_id = message.request_id if kind == "functions_metadata_request" else args.request_id
        outbox.put_nowait(
            protos.StreamingMessage(request_id=request_id, **{response_field: response})
        )

    size = args.grpc_max_message_length
    options = [("grpc.max_send_message_length", size), ("grpc.max_receive_message_length", size)]
    tasks: set[asyncio.Task[None]] = set()
    async with grpc.aio.insecure_channel(f"{args.host}:{args.port}", options=options) as channel:
        call = channel.stream_stream(
            EVENT_STREAM,
            request_serializer=protos.StreamingMessage.SerializeToString,
            response_deserializer=protos.StreamingMessage.FromString,
        )(outgoing())
        async for message in call:
            kind = message.WhichOneof("content")
            if kind == "worker_terminate":
                break
            if kind == "worker_status_request":
                outbox.put_nowait(
                    protos.StreamingMessage(
                        request_id=message.request_id,
                        worker_status_response=protos.WorkerStatusResponse(),
                    )
                )
            elif kind == "invocation_request":  # invocations run side by side, as in the worker
                task = asyncio.create_task(answer(message, kind))
                tasks.add(task)
                task.add_done_callback(tasks.discard)
            elif kind in _ROUTES:
                await answer(message, kind)
        outbox.put_nowait(None)
    runtime.stop_threadpool_executor()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="funchost.worker")
    parser.add_argument("--host", required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--worker-id", required=True)
    parser.add_argument("--request-id", required=True)
    parser.add_argument("--grpc-max-message-length", type=int, default=2**31 - 1)
    asyncio.run(_run(parser.parse_args(argv)))


if __name__ == "__main__":
    main()
