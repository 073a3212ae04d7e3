"""The app's health verdict (``GET /api/health``) on a ``Gateway.health_report()``."""

from __future__ import annotations

from typing import Any

__all__ = ["health_status"]


def health_status(report: dict[str, Any], *, degraded_after_s: float) -> dict[str, Any]:
    """The verdict on a ``Gateway.health_report()``: ``status`` (``ok`` or ``degraded``),
    ``regions_down`` (circuit not closed) and ``deployments_degraded`` (``region/deployment``
    exhausted, missing, or cooling down for more than ``degraded_after_s`` from now).

    Traffic still flows while degraded (to the other regions and deployments); the status
    exists so that an operator sees a region or deployment that is out, e.g. after a lying
    ``retry-after``, instead of ``ok``."""
    now = float(report.get("now") or 0.0)
    down: list[str] = []
    degraded: list[str] = []
    for name, region in sorted(report.get("regions", {}).items()):
        if region["circuit"]["state"] != "closed":
            down.append(name)
        for deployment, dep in sorted(region.get("deployments", {}).items()):
            cooling = dep.get("cooling_until")
            if dep.get("state") in ("exhausted", "missing") or (
                cooling is not None and cooling - now > degraded_after_s
            ):
                degraded.append(f"{name}/{deployment}")
    return {
        "status": "degraded" if down or degraded else "ok",
        "regions_down": down,
        "deployments_degraded": degraded,
    }
