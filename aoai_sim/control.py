"""Clients for the control APIs (/_sim/ on each region, /_identity/ on the token endpoint); stdlib only."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any

__all__ = ["ControlError", "IdentityControl", "RegionControl"]


class ControlError(RuntimeError):
    """The control API refused a call."""


def _call(method: str, url: str, body: Any = None, timeout: float = 10.0) -> Any:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(
        url, data=data, method=method, headers={"content-type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return json.loads(response.read() or b"null")
    except urllib.error.HTTPError as exc:
        raise ControlError(
            f"{method} {url} -> {exc.code}: {exc.read().decode(errors='replace')}"
        ) from exc


class RegionControl:
    """Faults, reset and stats of one simulated region at ``endpoint`` (http://127.0.0.1:PORT)."""

    def __init__(self, endpoint: str, timeout: float = 10.0) -> None:
        self.endpoint = endpoint.rstrip("/")
        self._timeout = timeout

    def fault(self, kind: str, **params: Any) -> str:
        """Inject a fault (see docs/simulator.md); returns its id."""
        return str(
            _call("POST", f"{self.endpoint}/_sim/faults", {"kind": kind, **params}, self._timeout)[
                "id"
            ]
        )

    def faults(self) -> list[dict[str, Any]]:
        """The active faults."""
        return list(_call("GET", f"{self.endpoint}/_sim/faults", None, self._timeout)["faults"])

    def clear_fault(self, fault_id: str) -> bool:
        """End one fault early."""
        try:
            return bool(
                _call("DELETE", f"{self.endpoint}/_sim/faults/{fault_id}", None, self._timeout)[
                    "removed"
                ]
            )
        except ControlError:
            return False

    def batch_fault(self, kind: str, **params: Any) -> str:
        """Make the next batch(es) fail, expire or partly fail (see docs/simulator.md); returns its id."""
        body = {"kind": kind, **params}
        return str(_call("POST", f"{self.endpoint}/_sim/batch_faults", body, self._timeout)["id"])

    def batches(self) -> dict[str, Any]:
        """Every batch as of now, the enqueued tokens per Global Batch deployment, pending batch faults."""
        return dict(_call("GET", f"{self.endpoint}/_sim/batches", None, self._timeout))

    def reset(self) -> None:
        """Clear faults, rate-limit windows, stats, batches and files."""
        _call("POST", f"{self.endpoint}/_sim/reset", {}, self._timeout)

    def stats(self) -> dict[str, Any]:
        """Counters (see docs/simulator.md)."""
        return dict(_call("GET", f"{self.endpoint}/_sim/stats", None, self._timeout))


class IdentityControl:
    """Mode and stats of the token endpoint; ``base`` is http://127.0.0.1:PORT."""

    def __init__(self, base: str, timeout: float = 10.0) -> None:
        self.base = base.rstrip("/")
        self._timeout = timeout

    def set_mode(
        self,
        *,
        refuse: bool = False,
        without_role: bool = False,
        ttl_s: float | None = None,
        refuse_status: int = 400,
    ) -> None:
        """Replace the whole mode (fields not given go back to their defaults)."""
        body = {
            "refuse": refuse,
            "without_role": without_role,
            "ttl_s": ttl_s,
            "refuse_status": refuse_status,
        }
        _call("POST", f"{self.base}/_identity/mode", body, self._timeout)

    def reset(self) -> None:
        """Default mode, zero stats."""
        _call("POST", f"{self.base}/_identity/reset", {}, self._timeout)

    def stats(self) -> dict[str, Any]:
        """requests, tokens_issued, tokens_without_role, refused, bad_requests and the mode."""
        return dict(_call("GET", f"{self.base}/_identity/stats", None, self._timeout))
