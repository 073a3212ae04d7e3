"""What this instance's routing state and the shared region-state table tell each other.

Outgoing: a circuit that opened or closed, a deployment that started cooling down, became
exhausted or went missing is published as a ``Verdict``. Incoming: the other instances'
records are applied to the router when they are newer than what this instance knows.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from ._circuit import RegionState
from ._router import DeploymentState, Router
from ._verdicts import SharedVerdicts, Verdict, VerdictStore

__all__ = ["VerdictSync"]

_DEPLOYMENT_FIELDS = {
    "cooling": "cooling_until",
    "exhausted": "exhausted_until",
    "missing": "missing_until",
}


class VerdictSync:
    """Publishes this instance's verdicts and applies the others' (see ``SharedVerdicts``)."""

    __slots__ = ("_now", "_router", "instance", "shared")

    def __init__(
        self,
        router: Router,
        store: VerdictStore | None,
        *,
        instance: str,
        now: Callable[[], float],
        cache_s: float,
    ) -> None:
        self._router = router
        self._now = now
        self.instance = instance
        self.shared = SharedVerdicts(store, apply=self.apply, now=now, cache_s=cache_s)

    def publish_region(self, region: RegionState) -> None:
        circuit = region.circuit
        state = "open" if circuit.open_until else "closed"
        self.shared.publish(
            Verdict(
                region.key,
                state,
                circuit.open_until,
                circuit.changed_at or self._now(),
                self.instance,
            )
        )

    def publish_deployment(self, dep: DeploymentState, state: str, until: float) -> None:
        self.shared.publish(Verdict(dep.key, state, until, dep.changed_at, self.instance))

    def apply(self, records: Iterable[Verdict]) -> None:
        """Adopt the other instances' records that are newer than this instance's view."""
        now = self._now()
        router = self._router
        for record in records:
            if record.writer == self.instance:
                continue
            if record.key.startswith("region/"):
                region = router.regions.get(record.key[7:])
                if region is None or record.updated <= region.circuit.changed_at:
                    continue
                if record.state == "open" and record.until > now:
                    region.circuit.force(record.until, record.updated)
                elif record.state == "closed" and region.circuit.open_until:
                    region.circuit.force(0.0, record.updated)
                continue
            dep = router.deployments.get(record.key)
            if dep is None or record.updated <= dep.changed_at:
                continue
            if record.state == "ok":  # cleared by an operator (ops surface): drop every verdict
                dep.cooling_until = dep.exhausted_until = dep.missing_until = 0.0
                dep.changed_at = record.updated
                continue
            if record.state == "available":  # another instance verified it with a real call
                dep.exhausted_until = dep.cooling_until = 0.0
                dep.changed_at = record.updated
                continue
            if record.until <= now:
                continue
            field = _DEPLOYMENT_FIELDS.get(record.state)
            if field is not None:
                setattr(dep, field, max(getattr(dep, field), record.until))
