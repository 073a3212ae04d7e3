"""HTTP calls to the ops routes (urllib: nothing to install).

The master key goes in ``x-functions-key`` to the URL given and to redirects on the same origin
(scheme, host, port) only: a redirect to another host or scheme is followed without it."""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from typing import IO, Any

__all__ = ["KEY_HEADER", "Client", "OpsError", "same_origin"]

KEY_HEADER = "x-functions-key"


class OpsError(RuntimeError):
    pass


def _origin(url: str) -> tuple[str, str, int | None]:
    parts = urllib.parse.urlsplit(url)
    scheme = parts.scheme.lower()
    port = parts.port or {"http": 80, "https": 443}.get(scheme)
    return scheme, (parts.hostname or "").lower(), port


def same_origin(a: str, b: str) -> bool:
    """True when ``a`` and ``b`` share scheme, host and port."""
    return _origin(a) == _origin(b)


class _KeepKeyOnSameOrigin(urllib.request.HTTPRedirectHandler):
    """urllib's redirect handling, minus the key when the redirect leaves the origin (urllib
    copies every header but the content ones to the new request, the key included)."""

    def redirect_request(
        self,
        req: urllib.request.Request,
        fp: IO[bytes],
        code: int,
        msg: str,
        headers: Any,
        newurl: str,
    ) -> urllib.request.Request | None:
        new = super().redirect_request(req, fp, code, msg, headers, newurl)
        if new is not None and not same_origin(req.full_url, new.full_url):
            for name in list(new.headers):
                if name.lower() == KEY_HEADER:
                    del new.headers[name]
        return new


class Client:
    def __init__(self, base_url: str, key: str | None, *, timeout_s: float = 30.0) -> None:
        self.base_url = base_url.rstrip("/")
        self.key = key
        self.timeout_s = timeout_s
        self._opener = urllib.request.build_opener(_KeepKeyOnSameOrigin())

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
            headers[KEY_HEADER] = self.key  # the master key, for the admin-level routes
        req = urllib.request.Request(url, data=data, method=method, headers=headers)
        try:
            with self._opener.open(req, timeout=self.timeout_s) as response:
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
