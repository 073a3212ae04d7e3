"""A small asyncio HTTP/1.1 server with keep-alive, chunked streaming, resets and hangs."""

from __future__ import annotations

import asyncio
import json
import logging
import socket
import struct
from collections.abc import Awaitable, Callable, Iterable
from http import HTTPStatus
from typing import Any
from urllib.parse import parse_qsl, unquote

__all__ = ["App", "HttpConnection", "HttpServer", "Request"]

_log = logging.getLogger(__name__)

_MAX_BODY = 64 * 1024 * 1024
_HeaderList = Iterable[tuple[str, str]]


class Request:
    """One parsed HTTP request."""

    __slots__ = ("body", "headers", "keep_alive", "method", "path", "query")

    def __init__(
        self,
        method: str,
        path: str,
        query: dict[str, str],
        headers: dict[str, str],
        body: bytes,
        keep_alive: bool,
    ) -> None:
        self.method = method
        self.path = path
        self.query = query
        self.headers = headers
        self.body = body
        self.keep_alive = keep_alive

    def json(self) -> Any:
        """The body decoded as JSON (raises ValueError)."""
        return json.loads(self.body or b"null")


App = Callable[[Request, "HttpConnection"], Awaitable[None]]


def _reason(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Unknown"


class HttpConnection:
    """The server side of one TCP connection; the app answers through it."""

    def __init__(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, stopping: asyncio.Event
    ) -> None:
        self._reader = reader
        self._writer = writer
        self._stopping = stopping
        self.closed = False
        self.responded = False

    def _head(self, status: int, headers: _HeaderList, extra: str) -> bytes:
        lines = [f"HTTP/1.1 {status} {_reason(status)}"]
        lines.extend(f"{k}: {v}" for k, v in headers)
        lines.append(extra)
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")

    async def send(
        self, status: int, headers: _HeaderList, body: bytes, *, close: bool = False
    ) -> None:
        """Send a complete response with Content-Length."""
        if self.closed:
            return
        self.responded = True
        extra = f"content-length: {len(body)}"
        if close:
            extra += "\r\nconnection: close"
        self._writer.write(self._head(status, headers, extra) + body)
        try:
            await self._writer.drain()
        except ConnectionError:
            self.close()
        if close:
            self.close()

    async def send_json(
        self, status: int, obj: Any, headers: _HeaderList = (), *, close: bool = False
    ) -> None:
        """Send ``obj`` as an application/json response."""
        body = json.dumps(obj, separators=(",", ":")).encode()
        await self.send(status, [("content-type", "application/json"), *headers], body, close=close)

    async def start_chunked(self, status: int, headers: _HeaderList) -> None:
        """Send the head of a chunked (streaming) response."""
        self.responded = True
        self._writer.write(self._head(status, headers, "transfer-encoding: chunked"))

    def write_chunk(self, data: bytes) -> None:
        """Queue one HTTP chunk (call flush() to push it out)."""
        if data and not self.closed:
            self._writer.write(b"%x\r\n%b\r\n" % (len(data), data))

    async def flush(self) -> None:
        """Wait until queued bytes are handed to the kernel."""
        if self.closed:
            return
        try:
            await self._writer.drain()
        except ConnectionError:
            self.close()

    async def flush_all(self, timeout: float = 5.0) -> None:
        """Wait until every queued byte is handed to the kernel (drain() alone stops at the high-water mark)."""
        await self.flush()
        loop = asyncio.get_running_loop()
        give_up = loop.time() + timeout
        transport = self._writer.transport
        while (
            not self.closed
            and not transport.is_closing()
            and transport.get_write_buffer_size()
            and loop.time() < give_up
        ):
            await asyncio.sleep(0.005)

    async def end_chunked(self) -> None:
        """Send the terminating zero-length chunk."""
        if not self.closed:
            self._writer.write(b"0\r\n\r\n")
            await self.flush()

    def reset(self) -> None:
        """Abort with a TCP RST (SO_LINGER 0, then close) and no HTTP response."""
        if self.closed:
            return
        sock = self._writer.get_extra_info("socket")
        if sock is not None:
            try:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            except OSError:
                pass
        self._writer.transport.abort()
        self.closed = True

    async def hang(self, release: asyncio.Event) -> None:
        """Never answer: wait for ``release``, server stop, or the client leaving; then close."""
        waiters = [
            asyncio.ensure_future(release.wait()),
            asyncio.ensure_future(self._stopping.wait()),
            asyncio.ensure_future(self._reader.read(1)),
        ]
        try:
            await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for w in waiters:
                w.cancel()
            self.close()

    def close(self) -> None:
        """Close the connection (FIN)."""
        if not self.closed:
            self.closed = True
            self._writer.close()


class HttpServer:
    """Serves ``app`` on host:port; tracks connections so stop() ends them all."""

    def __init__(self, app: App, host: str, port: int, name: str) -> None:
        self._app = app
        self._host = host
        self._port = port
        self._name = name
        self._server: asyncio.AbstractServer | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._stopping = asyncio.Event()

    @property
    def stopping(self) -> asyncio.Event:
        """Set when the server shuts down."""
        return self._stopping

    async def start(self) -> None:
        """Bind and listen."""
        self._server = await asyncio.start_server(
            self._serve, self._host, self._port, reuse_address=True, backlog=1024
        )
        _log.info("%s listening on http://%s:%d", self._name, self._host, self._port)

    async def stop(self) -> None:
        """Stop listening, release hung requests and close every connection."""
        self._stopping.set()
        if self._server is not None:
            self._server.close()
        for writer in list(self._writers):
            writer.transport.abort()
        if self._server is not None:
            try:
                await asyncio.wait_for(self._server.wait_closed(), 2)
            except TimeoutError:
                pass

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        sock = writer.get_extra_info("socket")
        if sock is not None:
            try:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            except OSError:
                pass
        conn = HttpConnection(reader, writer, self._stopping)
        try:
            while not conn.closed and not self._stopping.is_set():
                request = await self._read_request(reader, conn)
                if request is None:
                    break
                conn.responded = False
                try:
                    await self._app(request, conn)
                except (ConnectionError, asyncio.CancelledError):
                    conn.close()
                    raise
                except Exception:  # noqa: BLE001 - any app bug becomes a 500
                    _log.exception(
                        "%s: unhandled error for %s %s", self._name, request.method, request.path
                    )
                    if not conn.responded:
                        await conn.send_json(
                            500,
                            {
                                "error": {
                                    "code": "InternalServerError",
                                    "message": "simulator error",
                                }
                            },
                            close=True,
                        )
                    conn.close()
                if not request.keep_alive:
                    conn.close()
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            self._writers.discard(writer)
            conn.close()

    async def _read_request(
        self, reader: asyncio.StreamReader, conn: HttpConnection
    ) -> Request | None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except (asyncio.IncompleteReadError, ConnectionError):
            return None
        except asyncio.LimitOverrunError:
            await conn.send(431, [], b"", close=True)
            return None
        lines = head[:-4].decode("latin-1").split("\r\n")
        try:
            method, target, version = lines[0].split(" ", 2)
        except ValueError:
            await conn.send(400, [], b"", close=True)
            return None
        headers: dict[str, str] = {}
        for line in lines[1:]:
            key, _, value = line.partition(":")
            key = key.strip().lower()
            value = value.strip()
            headers[key] = f"{headers[key]}, {value}" if key in headers else value
        try:
            body = await self._read_body(reader, headers, conn)
        except (asyncio.IncompleteReadError, ConnectionError, ValueError):
            return None
        connection = headers.get("connection", "").lower()
        keep_alive = (
            "close" not in connection if version == "HTTP/1.1" else "keep-alive" in connection
        )
        path, _, qs = target.partition("?")
        query = dict(parse_qsl(qs, keep_blank_values=True)) if qs else {}
        return Request(method.upper(), unquote(path), query, headers, body, keep_alive)

    async def _read_body(
        self, reader: asyncio.StreamReader, headers: dict[str, str], conn: HttpConnection
    ) -> bytes:
        if headers.get("expect", "").lower() == "100-continue":
            conn._writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        if "chunked" in headers.get("transfer-encoding", "").lower():
            parts = []
            total = 0
            while True:
                size_line = await reader.readuntil(b"\r\n")
                size = int(size_line.split(b";", 1)[0].strip() or b"0", 16)
                if size == 0:
                    while (await reader.readuntil(b"\r\n")) != b"\r\n":
                        pass
                    return b"".join(parts)
                total += size
                if total > _MAX_BODY:
                    raise ValueError("body too large")
                parts.append(await reader.readexactly(size))
                await reader.readexactly(2)
        length = int(headers.get("content-length") or 0)
        if length > _MAX_BODY:
            raise ValueError("body too large")
        return await reader.readexactly(length) if length else b""
