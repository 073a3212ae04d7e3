"""The local App Service managed-identity endpoint (IDENTITY_ENDPOINT / IDENTITY_HEADER protocol)."""

from __future__ import annotations

import logging
import math
import time
import uuid
from dataclasses import dataclass, replace
from typing import Any

from ._auth import OPENAI_USER_ROLE, issue_token
from ._http import HttpConnection, Request
from .config import IdentityConfig

__all__ = ["IdentityApp", "IdentityMode"]

_log = logging.getLogger(__name__)
_STAT_KEYS = ("requests", "tokens_issued", "tokens_without_role", "refused", "bad_requests")


@dataclass(frozen=True)
class IdentityMode:
    """How the endpoint currently answers."""

    refuse: bool = False
    refuse_status: int = 400
    without_role: bool = False
    ttl_s: float | None = None

    def describe(self) -> dict[str, Any]:
        """JSON view."""
        return {
            "refuse": self.refuse,
            "refuse_status": self.refuse_status,
            "without_role": self.without_role,
            "ttl_s": self.ttl_s,
        }


def _error(status: int, message: str) -> dict[str, Any]:
    return {"statusCode": status, "message": message, "correlationId": str(uuid.uuid4())}


class IdentityApp:
    """Issues signed tokens to azure-identity's ManagedIdentityCredential; /_identity/ is its control API."""

    def __init__(self, config: IdentityConfig, secret: str) -> None:
        self._cfg = config
        self._secret = secret
        self.mode = IdentityMode()
        self.stats = dict.fromkeys(_STAT_KEYS, 0)

    async def __call__(self, req: Request, conn: HttpConnection) -> None:
        if req.path.startswith("/_identity/"):
            await self._control(req, conn)
        elif req.path.rstrip("/") == self._cfg.path.rstrip("/") and req.method == "GET":
            await self._token(req, conn)
        else:
            await conn.send_json(404, _error(404, "Not found"))

    async def _token(self, req: Request, conn: HttpConnection) -> None:
        self.stats["requests"] += 1
        if req.headers.get("x-identity-header") != self._cfg.header:
            self.stats["bad_requests"] += 1
            await conn.send_json(
                401, _error(401, "The X-IDENTITY-HEADER header is missing or invalid.")
            )
            return
        resource = req.query.get("resource")
        if req.query.get("api-version") != "2019-08-01" or not resource:
            self.stats["bad_requests"] += 1
            await conn.send_json(
                400,
                _error(400, "Invalid request: api-version=2019-08-01 and resource are required."),
            )
            return
        mode = self.mode
        if mode.refuse:
            self.stats["refused"] += 1
            await conn.send_json(
                mode.refuse_status,
                _error(mode.refuse_status, "Unable to load the proper Managed Identity."),
            )
            return
        client_id = req.query.get("client_id") or self._cfg.client_id
        principal = (
            self._cfg.principal_id
            if client_id == self._cfg.client_id
            else str(uuid.uuid5(uuid.NAMESPACE_URL, client_id))
        )
        roles = () if mode.without_role else (OPENAI_USER_ROLE,)
        ttl = mode.ttl_s if mode.ttl_s is not None else self._cfg.ttl_s
        token, expires = issue_token(
            self._secret,
            audience=resource.rstrip("/"),
            client_id=client_id,
            principal_id=principal,
            tenant_id=self._cfg.tenant_id,
            roles=roles,
            ttl_s=ttl,
            now=time.time(),
        )
        self.stats["tokens_issued"] += 1
        if mode.without_role:
            self.stats["tokens_without_role"] += 1
        await conn.send_json(
            200,
            {
                "access_token": token,
                "expires_on": str(math.floor(expires)),
                "resource": resource,
                "token_type": "Bearer",
                "client_id": client_id,
            },
        )

    async def _control(self, req: Request, conn: HttpConnection) -> None:
        path = req.path.rstrip("/")
        if path == "/_identity/mode" and req.method == "POST":
            try:
                spec = req.json() or {}
                mode = IdentityMode(
                    refuse=bool(spec.get("refuse", False)),
                    refuse_status=int(spec.get("refuse_status", 400)),
                    without_role=bool(spec.get("without_role", False)),
                    ttl_s=float(spec["ttl_s"]) if spec.get("ttl_s") is not None else None,
                )
                if (
                    mode.ttl_s is not None and mode.ttl_s <= 0
                ) or not 400 <= mode.refuse_status <= 599:
                    raise ValueError("ttl_s must be positive and refuse_status 4xx/5xx")
            except (ValueError, TypeError, AttributeError) as exc:
                await conn.send_json(400, {"error": {"code": "BadRequest", "message": str(exc)}})
                return
            self.mode = mode
            _log.info("identity mode: %s", mode.describe())
            await conn.send_json(200, mode.describe())
        elif path == "/_identity/mode" and req.method == "GET":
            await conn.send_json(200, self.mode.describe())
        elif path == "/_identity/stats" and req.method == "GET":
            await conn.send_json(200, {**self.stats, "mode": self.mode.describe()})
        elif path == "/_identity/reset" and req.method == "POST":
            self.mode = replace(IdentityMode())
            self.stats = dict.fromkeys(_STAT_KEYS, 0)
            await conn.send_json(200, {"reset": True})
        else:
            await conn.send_json(
                404, {"error": {"code": "404", "message": "Unknown control endpoint"}}
            )
