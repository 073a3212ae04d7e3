"""The host double: the Functions host's side of the worker contract, and its HTTP front door.

It listens for the worker's event stream (gRPC), starts the worker process as the host does,
initialises it, asks for its functions' metadata, loads each function, then serves:

* ``/api/<route>``: HTTP triggers. Like the host with a worker that runs its own HTTP server (the
  ``HttpUri`` capability), it sends an ``InvocationRequest`` with the request's metadata and
  forwards the request itself to the worker's server with an ``x-ms-invocation-id`` header,
  streaming the response back chunk by chunk as the worker writes it.
* ``GET /_host/functions``: every function as the host reads it, with ``%SETTING%`` references
  resolved from the app settings (the environment), as the host resolves them.
* ``POST /_host/invoke/<function>``: one invocation of a non-HTTP trigger with the input and
  trigger metadata the host would send (see ``_triggers``); answers the ``InvocationResponse``.
* ``GET /_host/invocations``, ``GET /_host/logs``: what came back (status, exception, return
  value; streamed chunk counts) and the ``RpcLog`` records the worker sent.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import signal
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import aiohttp
import grpc
from aiohttp import web
from google.protobuf.json_format import MessageToDict

from funchost import _triggers
from funchost._messages import load_messages

__all__ = ["Function", "HostDouble", "SettingNotFound", "resolve_settings"]

_SETTING = re.compile(r"%([^%]+)%")
_HOP_BY_HOP = {
    "connection",
    "keep-alive",
    "transfer-encoding",
    "te",
    "upgrade",
    "proxy-connection",
    "content-length",
}
_PAYLOADS = {
    "serviceBusTrigger": _triggers.service_bus_message,
    "queueTrigger": _triggers.queue_message,
    "timerTrigger": _triggers.timer_payload,
}
HOST_VERSION = "4.1000.0-double"
_SOURCE_ROOT = str(Path(__file__).resolve().parents[1])  # where the worker imports funchost from


class SettingNotFound(LookupError):
    pass


def resolve_settings(value: Any, settings: dict[str, str]) -> Any:
    """``%NAME%`` in every string of a binding, replaced by the app setting ``NAME``."""
    if isinstance(value, str):

        def one(match: re.Match[str]) -> str:
            name = match.group(1)
            if name not in settings:
                raise SettingNotFound(f"'%{name}%' does not resolve to a value")
            return settings[name]

        return _SETTING.sub(one, value)
    if isinstance(value, dict):
        return {k: resolve_settings(v, settings) for k, v in value.items()}
    if isinstance(value, list):
        return [resolve_settings(v, settings) for v in value]
    return value


@dataclass
class Function:
    function_id: str
    name: str
    raw_bindings: list[dict[str, Any]]
    bindings: list[dict[str, Any]]
    trigger: dict[str, Any]
    route: re.Pattern[str] | None = None
    literal_segments: int = 0
    methods: tuple[str, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        return {
            "function_id": self.function_id,
            "name": self.name,
            "bindings": self.bindings,
            "raw_bindings": self.raw_bindings,
        }


def _route_pattern(template: str) -> tuple[re.Pattern[str], int]:
    parts, literal = [], 0
    for segment in template.strip("/").split("/"):
        param = re.fullmatch(r"\{(\*?)([A-Za-z_][A-Za-z0-9_]*)(?::[^}?]*)?(\??)\}", segment)
        if param is None:
            parts.append(re.escape(segment))
            literal += 1
        elif param.group(1):
            parts.append(f"(?P<{param.group(2)}>.*)")
        else:
            parts.append(f"(?P<{param.group(2)}>[^/]+)" + ("?" if param.group(3) else ""))
    return re.compile("/".join(parts), re.IGNORECASE), literal


def _answer_key(kind: str, body: Any) -> tuple[str, str]:
    """What a response answers. Like the host, the double pairs responses with requests by their
    content (invocation id, function id, message kind), not by ``request_id``: the Python
    worker answers most requests with its own start-up request id."""
    if kind == "invocation_response":
        return kind, body.invocation_id
    if kind == "function_load_response":
        return kind, body.function_id
    return kind, ""


_ANSWERS = {
    "worker_init_request": "worker_init_response",
    "functions_metadata_request": "function_metadata_response",
    "function_load_request": "function_load_response",
    "invocation_request": "invocation_response",
    "function_environment_reload_request": "function_environment_reload_response",
}


@dataclass
class _Stream:
    """The host's end of the worker's event stream."""

    protos: ModuleType
    outbox: asyncio.Queue[Any] = field(default_factory=asyncio.Queue)
    pending: dict[tuple[str, str], asyncio.Future[Any]] = field(default_factory=dict)
    started: asyncio.Event = field(default_factory=asyncio.Event)
    logs: list[dict[str, Any]] = field(default_factory=list)
    worker_id: str = ""

    async def event_stream(self, requests: Any, context: Any) -> Any:
        reader = asyncio.create_task(self._read(requests))
        try:
            while (message := await self.outbox.get()) is not None:
                yield message
        finally:
            reader.cancel()

    async def _read(self, requests: Any) -> None:
        async for message in requests:
            kind = message.WhichOneof("content")
            if kind == "start_stream":
                self.worker_id = message.start_stream.worker_id
                self.started.set()
            elif kind == "rpc_log":
                self.logs.append(MessageToDict(message.rpc_log, preserving_proto_field_name=True))
            elif kind is not None:
                future = self.pending.pop(_answer_key(kind, getattr(message, kind)), None)
                if future is not None and not future.done():
                    future.set_result(getattr(message, kind))

    async def request(self, timeout: float, **content: Any) -> Any:
        """Send one request; answers the worker's response to it (the response message)."""
        ((kind, body),) = content.items()
        key = _answer_key(_ANSWERS[kind], body)
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self.pending[key] = future
        self.outbox.put_nowait(
            self.protos.StreamingMessage(request_id=str(uuid.uuid4()), **content)
        )
        return await asyncio.wait_for(future, timeout)


class HostDouble:
    def __init__(self, app_dir: Path, *, timeout: float = 120.0) -> None:
        self.app_dir = app_dir.resolve()
        self.timeout = timeout
        self.protos = load_messages()
        self.settings = dict(os.environ)
        self.stream = _Stream(self.protos)
        self.functions: dict[str, Function] = {}
        self.capabilities: dict[str, str] = {}
        self.worker_metadata: dict[str, Any] = {}
        self.invocations: list[dict[str, Any]] = []
        self.worker: asyncio.subprocess.Process | None = None
        self._server: Any = None
        self._session: aiohttp.ClientSession | None = None

    # --- start-up, as the host does it ------------------------------------------------------
    async def start(self) -> None:
        protos = self.protos
        self._server = grpc.aio.server(
            options=[
                ("grpc.max_send_message_length", 2**31 - 1),
                ("grpc.max_receive_message_length", 2**31 - 1),
            ]
        )
        handler = grpc.method_handlers_generic_handler(
            "AzureFunctionsRpcMessages.FunctionRpc",
            {
                "EventStream": grpc.stream_stream_rpc_method_handler(
                    self.stream.event_stream,
                    request_deserializer=protos.StreamingMessage.FromString,
                    response_serializer=protos.StreamingMessage.SerializeToString,
                )
            },
        )
        self._server.add_generic_rpc_handlers((handler,))
        port = self._server.add_insecure_port("127.0.0.1:0")
        await self._server.start()
        worker_id, request_id = str(uuid.uuid4()), str(uuid.uuid4())
        env = {
            **self.settings,
            "FUNCTIONS_WORKER_RUNTIME": "python",
            "AzureWebJobsScriptRoot": str(self.app_dir),
            "PYTHONPATH": os.pathsep.join(
                [_SOURCE_ROOT, self.settings.get("PYTHONPATH", "")]
            ).rstrip(os.pathsep),
        }
        self.worker = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "funchost.worker",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--worker-id",
            worker_id,
            "--request-id",
            request_id,
            "--grpc-max-message-length",
            str(2**31 - 1),
            env=env,
            cwd=str(self.app_dir),
        )
        await asyncio.wait_for(self.stream.started.wait(), self.timeout)
        if self.stream.worker_id != worker_id:
            raise RuntimeError(f"StartStream from {self.stream.worker_id!r}, not {worker_id!r}")
        init = await self.stream.request(
            self.timeout,
            worker_init_request=protos.WorkerInitRequest(
                host_version=HOST_VERSION,
                capabilities={},
                worker_directory=str(self.app_dir),
                function_app_directory=str(self.app_dir),
            ),
        )
        _check(init.result, "WorkerInitRequest")
        self.capabilities = dict(init.capabilities)
        self.worker_metadata = MessageToDict(init.worker_metadata)
        metadata = await self.stream.request(
            self.timeout,
            functions_metadata_request=protos.FunctionsMetadataRequest(
                function_app_directory=str(self.app_dir)
            ),
        )
        _check(metadata.result, "FunctionsMetadataRequest")
        if metadata.use_default_metadata_indexing:
            raise RuntimeError("the worker asked for host indexing (function.json): none here")
        for meta in metadata.function_metadata_results:
            loaded = await self.stream.request(
                self.timeout,
                function_load_request=protos.FunctionLoadRequest(
                    function_id=meta.function_id, metadata=meta
                ),
            )
            _check(loaded.result, f"FunctionLoadRequest({meta.name})")
            self.functions[meta.name] = self._function(meta)
        self._session = aiohttp.ClientSession(
            auto_decompress=False, timeout=aiohttp.ClientTimeout(total=None)
        )

    def _function(self, meta: Any) -> Function:
        raw = [json.loads(b) for b in meta.raw_bindings]
        bindings = resolve_settings(raw, self.settings)
        trigger = next(b for b in bindings if b["type"].endswith("Trigger"))
        function = Function(meta.function_id, meta.name, raw, bindings, trigger)
        if trigger["type"] == "httpTrigger":
            function.route, function.literal_segments = _route_pattern(trigger["route"])
            function.methods = tuple(m.upper() for m in trigger.get("methods") or ())
        return function

    async def stop(self) -> None:
        if self.worker is not None and self.worker.returncode is None:
            self.stream.outbox.put_nowait(
                self.protos.StreamingMessage(worker_terminate=self.protos.WorkerTerminate())
            )
            try:
                await asyncio.wait_for(self.worker.wait(), 10)
            except TimeoutError:
                self.worker.kill()
                await self.worker.wait()
        self.stream.outbox.put_nowait(None)
        if self._session is not None:
            await self._session.close()
        if self._server is not None:
            await self._server.stop(1)

    # --- invocations --------------------------------------------------------------------------
    def _record(self, function: Function, response: Any, **extra: Any) -> dict[str, Any]:
        result = response.result
        record = {
            "invocation_id": response.invocation_id,
            "function": function.name,
            "status": self.protos.StatusResult.Status.Name(result.status),
            "result": result.result,
            "exception": (
                MessageToDict(result.exception, preserving_proto_field_name=True)
                if result.HasField("exception")
                else None
            ),
            "return_value": (
                MessageToDict(response.return_value, preserving_proto_field_name=True)
                if response.HasField("return_value")
                else None
            ),
            "output_data": [
                MessageToDict(b, preserving_proto_field_name=True) for b in response.output_data
            ],
            **extra,
        }
        self.invocations.append(record)
        return record

    async def invoke(self, name: str, spec: dict[str, Any]) -> dict[str, Any]:
        function = self.functions[name]
        build = _PAYLOADS[function.trigger["type"]]
        data, metadata = build(self.protos, f"Functions.{name}", spec)
        invocation_id = str(uuid.uuid4())
        request = self.protos.InvocationRequest(
            invocation_id=invocation_id,
            function_id=function.function_id,
            input_data=[self.protos.ParameterBinding(name=function.trigger["name"], data=data)],
            trigger_metadata=metadata,
        )
        response = await self.stream.request(self.timeout * 2, invocation_request=request)
        return self._record(function, response)

    def match(self, method: str, path: str) -> tuple[Function | None, dict[str, str]]:
        found: list[tuple[int, Function, dict[str, str]]] = []
        for function in self.functions.values():
            if function.route is None or (function.methods and method not in function.methods):
                continue
            hit = function.route.fullmatch(path.strip("/"))
            if hit is not None:
                params = {k: v for k, v in hit.groupdict().items() if v is not None}
                found.append((function.literal_segments, function, params))
        if not found:
            return None, {}
        _, function, params = max(found, key=lambda item: item[0])
        return function, params

    async def http(self, request: web.Request) -> web.StreamResponse:
        function, params = self.match(request.method, request.match_info["tail"])
        if function is None:
            return web.Response(status=404)
        assert self._session is not None
        protos = self.protos
        invocation_id = str(uuid.uuid4())
        headers = {k: v for k, v in request.headers.items() if k.lower() not in _HOP_BY_HOP}
        # The host sends header names in lower case and leaves out empty query values; the body
        # goes only to the worker's HTTP server.
        rpc_http = protos.RpcHttp(
            method=request.method,
            url=str(request.url),
            headers={k.lower(): v for k, v in headers.items()},
            query={k: v for k, v in request.query.items() if v},
            params=params,
        )
        invocation = asyncio.create_task(
            self.stream.request(
                self.timeout * 2,
                invocation_request=protos.InvocationRequest(
                    invocation_id=invocation_id,
                    function_id=function.function_id,
                    input_data=[
                        protos.ParameterBinding(
                            name=function.trigger["name"], data=protos.TypedData(http=rpc_http)
                        )
                    ],
                ),
            )
        )
        body = await request.read()
        forwarded = {**headers, "x-ms-invocation-id": invocation_id}
        url = self.capabilities["HttpUri"].rstrip("/") + request.path_qs
        chunks = 0
        started = time.monotonic()
        gaps: list[float] = []
        async with self._session.request(
            request.method, url, headers=forwarded, data=body
        ) as upstream:
            response = web.StreamResponse(
                status=upstream.status,
                headers={k: v for k, v in upstream.headers.items() if k.lower() not in _HOP_BY_HOP},
            )
            await response.prepare(request)
            last = started
            async for chunk in upstream.content.iter_any():
                now = time.monotonic()
                gaps.append(now - last)
                last = now
                chunks += 1
                await response.write(chunk)
            await response.write_eof()
        answer = await invocation
        self._record(
            function,
            answer,
            http={"status": upstream.status, "chunks": chunks, "path": request.path},
        )
        return response

    # --- the double's own API -----------------------------------------------------------------
    def app(self) -> web.Application:
        app = web.Application(client_max_size=64 * 2**20)

        async def functions(_: web.Request) -> web.Response:
            return web.json_response(
                {
                    "capabilities": self.capabilities,
                    "worker_metadata": self.worker_metadata,
                    "functions": [f.as_dict() for f in self.functions.values()],
                }
            )

        async def invoke(request: web.Request) -> web.Response:
            name = request.match_info["name"]
            if name not in self.functions:
                return web.json_response({"error": f"no function {name}"}, status=404)
            spec = await request.json() if request.can_read_body else {}
            return web.json_response(await self.invoke(name, spec))

        async def invocations(_: web.Request) -> web.Response:
            return web.json_response(self.invocations)

        async def logs(_: web.Request) -> web.Response:
            return web.json_response(self.stream.logs)

        app.router.add_get("/_host/functions", functions)
        app.router.add_post("/_host/invoke/{name}", invoke)
        app.router.add_get("/_host/invocations", invocations)
        app.router.add_get("/_host/logs", logs)
        app.router.add_route("*", "/api/{tail:.*}", self.http)
        return app


def _check(result: Any, what: str) -> None:
    if result.status != 1:  # StatusResult.Success
        raise RuntimeError(
            f"{what} failed: {result.exception.message}\n{result.exception.stack_trace}"
        )


async def serve(app_dir: Path, port: int) -> None:
    host = HostDouble(app_dir)
    try:
        await host.start()
        runner = web.AppRunner(host.app(), handle_signals=False)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        print(
            json.dumps({"ready": True, "port": port, "functions": len(host.functions)}), flush=True
        )
        done = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, done.set)
        worker_exit = asyncio.create_task(host.worker.wait()) if host.worker else None
        waiter = asyncio.create_task(done.wait())
        await asyncio.wait(
            {t for t in (worker_exit, waiter) if t}, return_when=asyncio.FIRST_COMPLETED
        )
        with contextlib.suppress(Exception):
            await runner.cleanup()
    finally:
        await host.stop()
