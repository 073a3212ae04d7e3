"""HMAC-signed JWT-shaped access tokens: issued by the token endpoint, checked by the regions."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from dataclasses import dataclass
from typing import Any

__all__ = ["OPENAI_USER_ROLE", "TokenClaims", "TokenError", "issue_token", "verify_token"]

OPENAI_USER_ROLE = "Cognitive Services OpenAI User"
_HEADER = {"alg": "HS256", "typ": "JWT", "kid": "aoai-sim"}


class TokenError(ValueError):
    """The token is malformed, forged, expired or for another audience."""


@dataclass(frozen=True)
class TokenClaims:
    """What a region needs from a verified token."""

    client_id: str
    principal_id: str
    roles: tuple[str, ...]
    expires_at: float


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _sign(secret: str, signing_input: str) -> str:
    return _b64(hmac.new(secret.encode(), signing_input.encode("ascii"), hashlib.sha256).digest())


def issue_token(
    secret: str,
    *,
    audience: str,
    client_id: str,
    principal_id: str,
    tenant_id: str,
    roles: tuple[str, ...],
    ttl_s: float,
    now: float | None = None,
) -> tuple[str, float]:
    """A signed token and its expiry (epoch seconds)."""
    issued = time.time() if now is None else now
    expires = issued + ttl_s
    payload: dict[str, Any] = {
        "aud": audience,
        "iss": f"https://sts.windows.net/{tenant_id}/",
        "iat": int(issued),
        "nbf": int(issued),
        "exp": expires,
        "appid": client_id,
        "oid": principal_id,
        "sub": principal_id,
        "tid": tenant_id,
        "idtyp": "app",
        "xms_sim_roles": list(roles),
    }
    signing_input = _b64(json.dumps(_HEADER).encode()) + "." + _b64(json.dumps(payload).encode())
    return f"{signing_input}.{_sign(secret, signing_input)}", expires


def verify_token(secret: str, token: str, audience: str, now: float | None = None) -> TokenClaims:
    """Check signature, expiry and audience; raise TokenError otherwise."""
    parts = token.split(".")
    if len(parts) != 3:
        raise TokenError("not a JWT")
    signing_input = f"{parts[0]}.{parts[1]}"
    if not hmac.compare_digest(_sign(secret, signing_input), parts[2]):
        raise TokenError("bad signature")
    try:
        payload = json.loads(_unb64(parts[1]))
    except ValueError as exc:
        raise TokenError("bad payload") from exc
    current = time.time() if now is None else now
    if float(payload.get("exp", 0)) <= current:
        raise TokenError("expired")
    if str(payload.get("aud", "")).rstrip("/") != audience.rstrip("/"):
        raise TokenError("wrong audience")
    return TokenClaims(
        client_id=str(payload.get("appid", "")),
        principal_id=str(payload.get("oid", "")),
        roles=tuple(payload.get("xms_sim_roles") or ()),
        expires_at=float(payload["exp"]),
    )
