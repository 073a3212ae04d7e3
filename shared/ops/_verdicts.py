"""Region and deployment state across instances, and clearing it.

The shared region-state table holds the latest verdict every instance published about each region
(circuit open/closed) and deployment (cooling, exhausted, missing). Clearing writes a newer
record (``closed`` for a region, ``ok`` for a deployment, writer ``ops``) over it; every
instance adopts it at its next read of the table (within ``GATEWAY_HEALTH_CACHE_S``), since it is
newer than what the instance knows. A region's clear also clears its deployments.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from shared.aoai import Verdict, VerdictStore

__all__ = ["UnknownTarget", "clear", "shared_state"]

WRITER = "ops"


class UnknownTarget(LookupError):
    """The region or deployment named is not in the region table."""


async def shared_state(
    store: VerdictStore | None, *, now: Callable[[], float] = time.time
) -> list[dict[str, Any]]:
    """Every record in the shared table, with whether it is still in force."""
    if store is None:
        return []
    at = now()
    out = []
    for record in sorted(await store.read_all(), key=lambda r: r.key):
        out.append(
            {
                "key": record.key,
                "state": record.state,
                "until": record.until or None,
                "in_force": record.state in ("open", "cooling", "exhausted", "missing")
                and record.until > at,
                "seconds_left": round(max(0.0, record.until - at), 1) if record.until else None,
                "updated": record.updated,
                "writer": record.writer,
            }
        )
    return out


async def clear(
    store: VerdictStore,
    regions: dict[str, list[str]],
    *,
    region: str | None = None,
    deployment: str | None = None,
    now: Callable[[], float] = time.time,
) -> list[str]:
    """Clear one region (and its deployments) or one deployment (``<region>/<deployment>``);
    returns the keys written. ``regions``: region name -> its deployment names."""
    at = now()
    keys: list[tuple[str, str]] = []
    if region is not None:
        if region not in regions:
            raise UnknownTarget(f"no region '{region}'; known: {', '.join(sorted(regions))}")
        keys.append((f"region/{region}", "closed"))
        keys.extend((f"deployment/{region}/{d}", "ok") for d in regions[region])
    if deployment is not None:
        name, _, dep = deployment.partition("/")
        if name not in regions or dep not in regions[name]:
            known = [f"{r}/{d}" for r, deps in sorted(regions.items()) for d in deps]
            raise UnknownTarget(f"no deployment '{deployment}'; known: {', '.join(known)}")
        keys.append((f"deployment/{name}/{dep}", "ok"))
    if not keys:
        raise UnknownTarget("name a region or a deployment to clear")
    await store.write([Verdict(key, state, 0.0, at, WRITER) for key, state in keys])
    return [key for key, _ in keys]
