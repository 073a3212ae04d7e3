"""What a classified failure does to deployments, regions and the call.

The table of actions is in ``_classify``; this module applies them:

* ``CIRCUIT`` (connection, 5xx, timeout): the region is left for the rest of the call and the
  failure counts toward its circuit (a timeout opens it at once).
* ``COOLDOWN`` (429): the deployment rests for what the headers say; an absurd value marks it
  exhausted instead. Nobody sleeps: the call tries the next deployment at once.
* ``SKIP_CREDENTIALS`` (401/403, no token): every region with the same credentials is left for
  the rest of the call; the first such failure is kept for ``AuthFailed``.
* ``SKIP_DEPLOYMENT`` (404 DeploymentNotFound): the deployment is marked missing for
  ``missing_deployment_s``.
* ``RAISE`` (content filter, other 4xx): the call ends with the public error at once.

Any HTTP answer other than the CIRCUIT ones proves the region is up and closes its circuit.
Every verdict that changes shared state is published through ``HealthSync``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field

from shared.settings import GatewaySettings

from ._classify import ClassifiedFailure, FailureAction
from ._cooldown import cooldown_from_headers
from ._health_sync import HealthSync
from ._router import DeploymentState, RegionState, Route
from ._types import Attempt

__all__ = ["CallState", "FailurePolicy"]

logger = logging.getLogger(__name__)


@dataclass(slots=True)
class CallState:
    """Bookkeeping of one routed call: what was tried and what was learnt. ``attempts`` holds
    every attempt made so far, also when the call ends with an error or is cancelled."""

    tried: set[int] = field(default_factory=set)
    bad_regions: set[str] = field(default_factory=set)
    bad_credentials: set[tuple[str, str]] = field(default_factory=set)
    attempts: list[Attempt] = field(default_factory=list)
    auth: tuple[Route, ClassifiedFailure] | None = None
    missing: Route | None = None
    sent_at: float | None = None  # clock.now() when the latest attempt was sent


class FailurePolicy:
    """Applies one failed attempt's classification (see the module docstring)."""

    __slots__ = ("_health", "_now", "_settings")

    def __init__(
        self, settings: GatewaySettings, health: HealthSync, now: Callable[[], float]
    ) -> None:
        self._settings = settings
        self._health = health
        self._now = now

    def after_failure(
        self,
        route: Route,
        failure: ClassifiedFailure,
        call: CallState,
        *,
        sent_at: float | None = None,
    ) -> str | None:
        """Update the route's region and deployment and the call's state; raises the public
        error for a RAISE outcome. Returns where a 429's cooldown came from (else None).
        ``sent_at`` (clock.now when the attempt was sent) lets the circuit ignore late verdicts
        on requests sent before it opened."""
        now = self._now()
        region, dep = route.region, route.deployment
        action = failure.action
        if action is FailureAction.CIRCUIT:
            call.bad_regions.add(region.config.name)
            self.region_failed(region, immediate=failure.opens_circuit_at_once, sent_at=sent_at)
            return None
        # Any other HTTP answer proves the region is up; an identity-endpoint failure says nothing about it.
        if failure.status is not None:
            self.region_answered(region, now, sent_at=sent_at)
        else:
            region.circuit.release()
        if action is FailureAction.COOLDOWN:
            return self._throttle(route, failure, now)
        if action is FailureAction.SKIP_CREDENTIALS:
            call.bad_credentials.add(region.credentials)
            if call.auth is None:
                call.auth = (route, failure)
        elif action is FailureAction.SKIP_DEPLOYMENT:
            dep.missing_until = now + self._settings.missing_deployment_s
            dep.changed_at = now
            self._health.publish_deployment(dep, "missing", dep.missing_until)
            if call.missing is None:
                call.missing = route
        elif action is FailureAction.RAISE:
            raise failure.error(tuple(call.attempts)) from failure
        return None

    def deployment_verified(self, dep: DeploymentState) -> None:
        """A minimal real call succeeded on an exhausted deployment: it is back."""
        now = self._now()
        dep.exhausted_until = dep.cooling_until = 0.0
        dep.probe_at = 0.0
        dep.changed_at = now
        self._health.publish_deployment(dep, "available", now)

    def region_failed(
        self, region: RegionState, *, immediate: bool, sent_at: float | None = None
    ) -> None:
        """A transient failure of the region (also after a stream's first chunk, or a probe).
        ``sent_at`` is when the failed request was sent: a verdict on a request sent before the
        circuit (re)opened neither extends nor reopens it (``Circuit.record_failure``)."""
        if region.circuit.record_failure(self._now(), immediate=immediate, sent_at=sent_at):
            self._health.publish_region(region)

    def region_answered(
        self, region: RegionState, now: float | None = None, *, sent_at: float | None = None
    ) -> None:
        """The region answered (a success, or an HTTP answer that proves it is up)."""
        if region.circuit.record_success(self._now() if now is None else now, sent_at=sent_at):
            self._health.publish_region(region)

    def _throttle(self, route: Route, failure: ClassifiedFailure, now: float) -> str:
        """A 429: cool the deployment down per its headers; absurd values mark it exhausted."""
        dep = route.deployment
        settings = self._settings
        seconds, source = cooldown_from_headers(
            failure.headers, now=now, default_s=settings.default_throttle_cooldown_s
        )
        until = now + seconds
        if seconds > settings.absurd_retry_after_s:
            # Azure's retry-after can lie (86,400 s once): cap it, and let a minimal real call
            # verify the deployment every exhaustion_probe_interval_s (Gateway.probe_exhausted).
            until = now + settings.absurd_retry_after_s
            dep.exhausted_until = until
            dep.probe_at = now + settings.exhaustion_probe_interval_s
            state = "exhausted"
        else:
            dep.cooling_until = max(dep.cooling_until, until)
            state = "cooling"
        dep.changed_at = now
        # The 429's remaining-* headers (zero) are not applied: the cooldown above already says when it frees up.
        self._health.publish_deployment(dep, state, until)
        logger.debug("deployment %s %s for %.3fs (from %s)", dep.key, state, seconds, source)
        return source
