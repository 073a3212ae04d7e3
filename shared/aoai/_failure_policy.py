"""What a classified failure does to deployments, regions and the call.

The table of actions is in ``_classify``; this module applies them:

* ``CIRCUIT`` (connection, 5xx, timeout): the region is left for the rest of the call and the
  failure counts toward its circuit (a timeout opens it at once). A 5xx *answer* at a region
  with a clean record is held as the request's suspect instead (``_circuit``: it counts only if
  the region fails another request before answering one); when the same request's 5xx was
  already held at another region and one of them is known to serve others, the failure follows
  the request: the call ends with ``UpstreamRequestFailed`` (502, the upstream's text) and no
  circuit counts it. When none of them has ever answered, they count as before.
* ``COOLDOWN`` (429): the deployment rests for what the headers say; an absurd value marks it
  exhausted instead. Nobody sleeps: the call tries the next deployment at once.
* ``SKIP_CREDENTIALS`` (401/403, no token): every region with the same credentials is left for
  the rest of the call; the first such failure is kept for ``AuthFailed``.
* ``SKIP_DEPLOYMENT`` (404 DeploymentNotFound): the deployment is marked missing for
  ``missing_deployment_s``.
* ``RAISE`` (content filter, other 4xx): the call ends with the public error at once.

Any HTTP answer other than the CIRCUIT ones proves the region is up and closes its circuit.
Every verdict that changes shared state is published through ``VerdictSync``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field

from shared.pacing import cooldown_from_headers
from shared.settings import GatewaySettings

from ._circuit import RegionState, Suspect
from ._classify import ClassifiedFailure, FailureAction
from ._exceptions import UpstreamRequestFailed
from ._router import DeploymentState, Route
from ._types import Attempt, FailureKind
from ._verdict_sync import VerdictSync

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
    # The request's 5xx answers held as its own fault (shared by the parts of one request).
    suspect: Suspect = field(default_factory=Suspect)


class FailurePolicy:
    """Applies one failed attempt's classification (see the module docstring)."""

    __slots__ = ("_now", "_settings", "_verdicts")

    def __init__(
        self, settings: GatewaySettings, verdicts: VerdictSync, now: Callable[[], float]
    ) -> None:
        self._settings = settings
        self._verdicts = verdicts
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
            if self._held(route, failure, call):
                return None
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
            self._verdicts.publish_deployment(dep, "missing", dep.missing_until)
            if call.missing is None:
                call.missing = route
        elif action is FailureAction.RAISE:
            raise failure.error(tuple(call.attempts)) from failure
        return None

    def _held(self, route: Route, failure: ClassifiedFailure, call: CallState) -> bool:
        """Hold a 5xx answer as the request's suspect (``Circuit.may_hold``); True when held.
        When the request's 5xx was already held at another region, the failure follows the
        request: if one of those regions is known to serve others, ``UpstreamRequestFailed``
        ends the call; if none is (nothing shows they serve anyone), the held failures and
        this one count as before."""
        region = route.region
        circuit = region.circuit
        status = failure.status
        if (
            failure.kind is not FailureKind.SERVER_ERROR
            or status is None
            or status < 500
            or not circuit.may_hold(call.suspect)
        ):
            return False
        suspect = call.suspect
        earlier = [r for r in suspect.holders if r is not region]
        if not earlier:  # the request's first 5xx here: held until the region says more
            circuit.hold(suspect)
            if region not in suspect.holders:
                suspect.holders.append(region)
            return True
        if not (circuit.served or any(r.circuit.served for r in earlier)):
            for held in earlier:  # no evidence any of them serves others: count as before
                held.circuit.unhold(suspect)
                self.region_failed(held, immediate=False)
            call.suspect = Suspect()
            return False
        circuit.hold(suspect)
        suspect.holders.append(region)
        suspect.followed = True
        logger.info(
            "HTTP %s from %s followed this request from %s: held as the request's own fault",
            status,
            region.config.name,
            ", ".join(r.config.name for r in earlier),
        )
        body = failure.body
        text = body.get("message")
        text = text if isinstance(text, str) and text else failure.detail
        code = body.get("code")
        raise UpstreamRequestFailed(
            "Every region tried answered this request with a server error while serving other "
            f"requests; something in the request is the likely cause. The upstream said (HTTP "
            f"{status}): {text[:500]}",
            upstream_status=status,
            upstream_code=code if isinstance(code, str) else None,
            attempts=tuple(call.attempts),
        ) from failure

    def deployment_verified(self, dep: DeploymentState) -> None:
        """A minimal real call succeeded on an exhausted deployment: it is back."""
        now = self._now()
        dep.exhausted_until = dep.cooling_until = 0.0
        dep.probe_at = 0.0
        dep.changed_at = now
        self._verdicts.publish_deployment(dep, "available", now)

    def region_failed(
        self, region: RegionState, *, immediate: bool, sent_at: float | None = None
    ) -> None:
        """A transient failure of the region (also after a stream's first chunk, or a probe).
        ``sent_at`` is when the failed request was sent: a verdict on a request sent before the
        circuit (re)opened neither extends nor reopens it (``Circuit.record_failure``)."""
        if region.circuit.record_failure(self._now(), immediate=immediate, sent_at=sent_at):
            self._verdicts.publish_region(region)

    def region_answered(
        self, region: RegionState, now: float | None = None, *, sent_at: float | None = None
    ) -> None:
        """The region answered (a success, or an HTTP answer that proves it is up)."""
        if region.circuit.record_success(self._now() if now is None else now, sent_at=sent_at):
            self._verdicts.publish_region(region)

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
        self._verdicts.publish_deployment(dep, state, until)
        logger.debug("deployment %s %s for %.3fs (from %s)", dep.key, state, seconds, source)
        return source
