"""HTTP calls to the ops routes (urllib: nothing to install)."""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

__all__ = ["Client", "OpsError"]


class OpsError(RuntimeError):
    pass


class Client:
    def __init__(self, base_url: str, key: str | None, *, timeout_s: float = 30.0) -> None:
        self.base_url = base_url.rstrip("/")
        self.key = key
        self.timeout_s = timeout_s

    def request(
        self,
        method: str,
        path: str,
        *,
        query: dict[str, Any] | None = None,
        body: Any = None,
        accept: str = "application/json",
    ) -> Any:
        url = f"{self.base_url}/{path.lstrip('/')}"
        if query:
            url += "?" + urllib.parse.urlencode({k: v for k, v in query.items() if v is not None})
        data = None if body is None else json.dumps(body).encode()
        headers = {"accept": accept}
        if data is not None:
            headers["content-type"] = "application/json"
        if self.key:
            headers["x-functions-key"] = self.key  # the master key, for the admin-level routes
        req = urllib.request.Request(url, data=data, method=method, headers=headers)
        try:
            with urllib.request.urlopen(req, timeout=self.timeout_s) as response:
                raw = response.read()
                kind = response.headers.get("content-type", "")
        except urllib.error.HTTPError as exc:
            raw = exc.read()
            try:
                error = json.loads(raw)["error"]
                message = f"{exc.code} {error.get('code')}: {error.get('message')}"
            except (ValueError, KeyError, TypeError):
                message = f"{exc.code} {raw[:300].decode('utf-8', 'replace')}"
            raise OpsError(message) from None
        except urllib.error.URLError as exc:
            raise OpsError(f"cannot reach {url}: {exc.reason}") from None
        return json.loads(raw) if "json" in kind else raw.decode("utf-8", "replace")
