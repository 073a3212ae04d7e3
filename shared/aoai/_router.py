"""Routing state and choice: which deployment of an alias gets the next attempt.

Routes are grouped in priority tiers (lower first, e.g. PTU before pay-as-you-go, nearest
first). Within a tier the eligible route with the most headroom (share of its token and
request budget left) wins; ties go to table order. A route is eligible when its region's
circuit lets a request through, its credentials have not been refused in this call, it is
not cooling down, exhausted or missing, and its budget fits the request's estimate.

All of this is synchronous: choosing and claiming (the half-open probe slot, the budget
charge) happen with no await in between, so concurrent calls cannot both take the last slot.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from shared.pacing import INTERACTIVE, DeploymentBudget
from shared.settings import DeploymentConfig, GatewaySettings

from ._circuit import Circuit, RegionState
from ._clients import credential_key

if TYPE_CHECKING:
    from shared.pacing import DeploymentQuotaLedger

__all__ = ["DeploymentState", "Route", "Router", "Skip"]

THROTTLED, TRANSIENT, AUTH, MISSING = "throttled", "transient", "auth", "missing"


@dataclass(slots=True, eq=False)
class DeploymentState:
    alias: str
    config: DeploymentConfig
    budget: DeploymentBudget
    key: str
    cooling_until: float = 0.0
    exhausted_until: float = 0.0
    missing_until: float = 0.0
    changed_at: float = 0.0
    probe_at: float = 0.0  # exhausted: when the next minimal real call may verify it
    path: str = ""  # the API path it was last called on (the probe uses the same)

    def blocked_until(self, now: float) -> float:
        """When a cooldown or exhaustion ends; 0 if it is not blocked now."""
        until = max(self.cooling_until, self.exhausted_until)
        return until if until > now else 0.0

    def report(self, now: float) -> dict[str, object]:
        state = "ok"
        if self.missing_until > now:
            state = "missing"
        elif self.exhausted_until > now:
            state = "exhausted"
        elif self.cooling_until > now:
            state = "cooling"
        return {
            "alias": self.alias,
            "state": state,
            "cooling_until": self.cooling_until if self.cooling_until > now else None,
            "exhausted_until": self.exhausted_until if self.exhausted_until > now else None,
            "missing_until": self.missing_until if self.missing_until > now else None,
            **self.budget.snapshot(now),
        }


@dataclass(slots=True, eq=False)
class Route:
    region: RegionState
    deployment: DeploymentState
    priority: int

    @property
    def names(self) -> tuple[str, str]:
        return self.region.config.name, self.deployment.config.deployment


@dataclass(frozen=True, slots=True)
class Skip:
    """Why a route was not (or no longer) usable, and when it may be again."""

    route: Route
    reason: str  # throttled | transient | auth | missing
    available_at: float
    detail: str


@dataclass(slots=True)
class Router:
    regions: dict[str, RegionState] = field(default_factory=dict)
    deployments: dict[str, DeploymentState] = field(default_factory=dict)  # by key
    tiers: dict[str, tuple[tuple[Route, ...], ...]] = field(default_factory=dict)  # alias -> tiers

    @classmethod
    def from_settings(
        cls, settings: GatewaySettings, ledger: DeploymentQuotaLedger | None = None
    ) -> Router:
        router = cls()
        routes: dict[str, list[Route]] = {}
        for region in settings.regions:
            state = RegionState(
                region,
                Circuit(settings.circuit_failure_threshold, settings.circuit_cooloff_s),
                credential_key(region),
                f"region/{region.name}",
            )
            router.regions[region.name] = state
            for alias, dep in region.models.items():
                key = f"deployment/{region.name}/{dep.deployment}"
                dep_state = router.deployments.get(key)
                if dep_state is None:
                    shared = None
                    if ledger is not None:
                        shared = ledger.attach(
                            key,
                            tpm=dep.tpm,
                            rpm=dep.effective_rpm,
                            minute_s=settings.quota_minute_s,
                        )
                    dep_state = router.deployments[key] = DeploymentState(
                        alias, dep, DeploymentBudget(dep, settings.quota_minute_s, shared), key
                    )
                routes.setdefault(alias, []).append(Route(state, dep_state, region.priority))
        for alias, alias_routes in routes.items():
            priorities = sorted({r.priority for r in alias_routes})
            router.tiers[alias] = tuple(
                tuple(r for r in alias_routes if r.priority == p) for p in priorities
            )
        return router

    def pick(
        self,
        alias: str,
        cost: int,
        now: float,
        tried: set[int],
        bad_regions: set[str],
        bad_credentials: set[tuple[str, str]],
        lane: str = INTERACTIVE,
    ) -> Route | None:
        """The best eligible route not yet tried in this call, or None."""
        for tier in self.tiers[alias]:
            best: Route | None = None
            best_room = -1.0
            for route in tier:
                region = route.region
                dep = route.deployment
                if (
                    id(route) in tried
                    or region.config.name in bad_regions
                    or region.credentials in bad_credentials
                    or not region.circuit.available(now)
                    or dep.missing_until > now
                    or dep.cooling_until > now
                    or dep.exhausted_until > now
                    or dep.budget.available_at(now, cost, lane) > now
                ):
                    continue
                room = dep.budget.headroom(now)
                if room > best_room:
                    best, best_room = route, room
            if best is not None:
                return best
        return None

    def explain(
        self,
        alias: str,
        cost: int,
        now: float,
        bad_regions: set[str],
        bad_credentials: set[tuple[str, str]],
        lane: str = INTERACTIVE,
    ) -> list[Skip]:
        """Why no route of ``alias`` can take the request now (only called when pick failed)."""
        skips = []
        for tier in self.tiers[alias]:
            for route in tier:
                region, dep = route.region, route.deployment
                circuit = region.circuit
                if region.credentials in bad_credentials:
                    skips.append(Skip(route, AUTH, 0.0, "credentials refused in this call"))
                elif dep.missing_until > now:
                    skips.append(Skip(route, MISSING, dep.missing_until, "deployment not found"))
                elif not circuit.available(now):
                    at = circuit.open_until if circuit.open_until > now else now
                    skips.append(Skip(route, TRANSIENT, at, f"circuit {circuit.state(now)}"))
                elif region.config.name in bad_regions:
                    skips.append(Skip(route, TRANSIENT, now, "failed in this call"))
                elif dep.blocked_until(now):
                    what = "exhausted" if dep.exhausted_until > now else "cooling down"
                    skips.append(Skip(route, THROTTLED, dep.blocked_until(now), what))
                else:
                    at = dep.budget.available_at(now, cost, lane)
                    skips.append(
                        Skip(
                            route,
                            THROTTLED if at > now else TRANSIENT,
                            at,
                            "over client-side budget" if at > now else "tried",
                        )
                    )
        return skips
