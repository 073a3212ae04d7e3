"""HTTP routes of the Files and Batches APIs, on /openai/v1/... and the dated /openai/...?api-version=."""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from typing import Any

from . import _errors
from ._batches import BatchEngine, BatchError
from ._files import FileStore, MultipartError, parse_multipart
from ._http import HttpConnection, Request

__all__ = ["BatchApi", "is_batch_path"]

_PATH = re.compile(r"^/openai/(v1/)?(files|batches)(?:/([^/]+))?(?:/(content|cancel))?/?$")
_V1_VERSIONS = frozenset({"v1", "preview", "latest"})

# (req, v1) -> an error reply when the caller may not call the API, else None
Authorizer = Callable[[Request, bool], "_errors.ErrorReply | None"]


def is_batch_path(path: str) -> bool:
    """True for a Files or Batches API path."""
    return _PATH.match(path) is not None


def _page(items: list[dict[str, Any]], query: dict[str, str]) -> dict[str, Any]:
    after = query.get("after")
    if after:
        ids = [item["id"] for item in items]
        items = items[ids.index(after) + 1 :] if after in ids else []
    try:
        limit = max(1, min(100, int(query.get("limit") or 20)))
    except ValueError:
        limit = 20
    page = items[:limit]
    return {
        "object": "list",
        "data": page,
        "first_id": page[0]["id"] if page else None,
        "last_id": page[-1]["id"] if page else None,
        "has_more": len(items) > limit,
    }


class BatchApi:
    """Serves the Files and Batches routes of one region."""

    def __init__(
        self, engine: BatchEngine, files: FileStore, api_versions: frozenset[str], region: str
    ) -> None:
        self.engine = engine
        self.files = files
        self._api_versions = api_versions
        self._region = region

    def _headers(self) -> list[tuple[str, str]]:
        rid = str(uuid.uuid4())
        return [("apim-request-id", rid), ("x-request-id", rid), ("x-ms-region", self._region)]

    async def handle(self, req: Request, conn: HttpConnection, authorize: Authorizer) -> None:
        """Answer one Files or Batches request."""
        match = _PATH.match(req.path)
        assert match is not None
        v1 = bool(match.group(1))
        version = req.query.get("api-version")
        if v1 and version is not None and version not in _V1_VERSIONS:
            reply = _errors.v1_api_version_not_allowed()
        elif not v1 and version not in self._api_versions:
            reply = _errors.resource_not_found()
        else:
            reply = authorize(req, v1)
        if reply is None:
            try:
                status, body = self._dispatch(req, match.group(2), match.group(3), match.group(4))
            except BatchError as exc:
                reply = exc.reply()
            else:
                if isinstance(body, bytes):
                    headers = [("content-type", "application/octet-stream"), *self._headers()]
                    await conn.send(status, headers, body)
                else:
                    await conn.send_json(status, body, self._headers())
                return
        await conn.send_json(reply[0], reply[1], self._headers())

    def _dispatch(
        self, req: Request, kind: str, item: str | None, action: str | None
    ) -> tuple[int, Any]:
        method = req.method
        if kind == "files":
            if item is None and method == "POST" and action is None:
                return 200, self._upload(req)
            if item is None and method == "GET":
                data = [f.describe() for f in self.files.all()]
                purpose = req.query.get("purpose")
                data = [d for d in data if purpose in (None, d["purpose"])]
                return 200, {"object": "list", "data": data, "has_more": False}
            if item is not None:
                stored = self.files.get(item)
                if stored is None:
                    raise BatchError(404, "file_not_found", f"No file with id {item!r}.")
                if method == "GET" and action == "content":
                    return 200, stored.content
                if method == "GET" and action is None:
                    return 200, stored.describe()
                if method == "DELETE" and action is None:
                    self.files.delete(item)
                    return 200, {"id": item, "object": "file", "deleted": True}
        else:
            engine = self.engine
            if item is None and method == "POST" and action is None:
                body = self._json(req)
                batch = engine.create(
                    body.get("input_file_id"),
                    body.get("endpoint"),
                    body.get("completion_window"),
                    body.get("metadata"),
                )
                return 200, engine.describe(batch)
            if item is None and method == "GET":
                return 200, _page([engine.describe(b) for b in engine.all()], req.query)
            if item is not None and method == "POST" and action == "cancel":
                return 200, engine.describe(engine.cancel(item))
            if item is not None and method == "GET" and action is None:
                batch = engine.get(item)
                if batch is None:
                    raise BatchError(404, "batch_not_found", f"No batch with id {item!r}.")
                return 200, engine.describe(batch)
        raise BatchError(404, "404", "Resource not found")

    @staticmethod
    def _json(req: Request) -> dict[str, Any]:
        try:
            body = req.json()
        except ValueError as exc:
            raise BatchError(400, "invalid_request", "The body is not valid JSON.") from exc
        if not isinstance(body, dict):
            raise BatchError(400, "invalid_request", "The body must be a JSON object.")
        return body

    def _upload(self, req: Request) -> dict[str, Any]:
        try:
            form = parse_multipart(req.headers.get("content-type", ""), req.body)
        except MultipartError as exc:
            raise BatchError(400, "invalid_request", str(exc)) from exc
        purpose = form.get("purpose", (None, b""))[1].decode("utf-8", errors="replace")
        if purpose != "batch":
            raise BatchError(400, "invalid_request", "purpose must be 'batch'.", "purpose")
        if "file" not in form:
            raise BatchError(400, "invalid_request", "A 'file' part is required.", "file")
        filename, content = form["file"]
        return self.files.add(filename or "input.jsonl", "batch", content).describe()
