"""A tiny read-mostly HTTP admin endpoint (JSON) for the standalone broker."""

from __future__ import annotations

import asyncio
import json
import logging
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote

if TYPE_CHECKING:
    from ._broker import Broker

__all__ = ["serve_admin"]

_LOGGER = logging.getLogger(__name__)


def _route(broker: Broker, method: str, path: str) -> tuple[int, Any]:
    parts = [unquote(p) for p in path.split("?", 1)[0].strip("/").split("/") if p]
    if method == "POST" and parts == ["reset"]:
        broker.reset()
        return 200, {"reset": True}
    if method != "GET":
        return 405, {"error": "method not allowed"}
    if parts in ([], ["queues"]):
        return 200, broker.stats()
    if len(parts) == 2 and parts[0] == "queues":
        return 200, [m.to_json() for m in broker.messages(parts[1], include_scheduled=True)]
    if len(parts) == 3 and parts[0] == "queues" and parts[2] in ("dlq", "$DeadLetterQueue"):
        return 200, [m.to_json() for m in broker.dlq_messages(parts[1])]
    return 404, {"error": "routes: GET /queues, GET /queues/<q>, GET /queues/<q>/dlq, POST /reset"}


async def serve_admin(broker: Broker, host: str, port: int) -> asyncio.base_events.Server:
    """Serve GET /queues, /queues/<q>, /queues/<q>/dlq and POST /reset as JSON."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            request_line = (await reader.readline()).decode("latin-1").split()
            while (await reader.readline()) not in (b"\r\n", b"\n", b""):
                pass
            method, path = (
                (request_line + ["GET", "/"])[:2] if len(request_line) >= 2 else ("GET", "/")
            )
            status, body = _route(broker, method, path)
            data = json.dumps(body, indent=2, default=str).encode()
            writer.write(
                f"HTTP/1.1 {status} {'OK' if status == 200 else 'Error'}\r\n"
                f"Content-Type: application/json\r\nContent-Length: {len(data)}\r\nConnection: close\r\n\r\n".encode()
                + data
            )
            await writer.drain()
        except Exception:
            _LOGGER.exception("admin request failed")
        finally:
            writer.close()

    return await asyncio.start_server(handle, host, port)
