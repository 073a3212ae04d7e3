"""The gateway's metric instruments, created once per meter provider.

GenAI conventions: ``gen_ai.client.token.usage`` (histogram, ``{token}``, by ``gen_ai.token.type``)
and ``gen_ai.client.operation.duration`` (histogram, seconds, ``error.type`` on failure), with the
conventions' advisory bucket boundaries. Ours are prefixed ``gateway.``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

from ._names import ATTR, DURATION_BUCKETS, METER_NAME, TOKEN_BUCKETS

__all__ = ["Instruments"]

_DEPLOYMENT_STATES = ("cooling", "exhausted", "missing")


class Instruments:
    def __init__(
        self, meter_provider: Any, *, health: Callable[[], Mapping[str, Any]] | None = None
    ) -> None:
        meter = meter_provider.get_meter(METER_NAME)
        self._health = health
        self._circuits: dict[str, str] = {}
        self._circuit_changes: dict[tuple[str, str], int] = {}
        self.tokens = meter.create_histogram(
            "gen_ai.client.token.usage",
            unit="{token}",
            description="Number of input and output tokens used.",
            explicit_bucket_boundaries_advisory=list(TOKEN_BUCKETS),
        )
        self.duration = meter.create_histogram(
            "gen_ai.client.operation.duration",
            unit="s",
            description="GenAI operation duration.",
            explicit_bucket_boundaries_advisory=list(DURATION_BUCKETS),
        )
        self.ttft = meter.create_histogram(
            "gateway.stream.time_to_first_token",
            unit="s",
            description="Time from the call's start to the first streamed chunk.",
            explicit_bucket_boundaries_advisory=list(DURATION_BUCKETS),
        )
        self.streams = meter.create_counter(
            "gateway.streams", unit="{stream}", description="Streams by how they ended."
        )
        self.throttled = meter.create_counter(
            "gateway.upstream.throttled",
            unit="{response}",
            description="429s from upstream, by deployment and the header the cooldown came from.",
        )
        self.failovers = meter.create_counter(
            "gateway.failovers",
            unit="{attempt}",
            description="Attempts after the first within one call (moved to another deployment).",
        )
        self.hedges = meter.create_counter(
            "gateway.hedges",
            unit="{attempt}",
            description="Hedge attempts (sent to another region while the first had no first byte), "
            "by the region that got the hedge and how it ended (ok: it answered first).",
        )
        if health is not None:
            meter.create_observable_gauge(
                "gateway.deployments",
                callbacks=[self._observe_deployments],
                unit="{deployment}",
                description="Deployments cooling down, exhausted or missing, as this instance sees them.",
            )
            meter.create_observable_gauge(
                "gateway.circuit.open",
                callbacks=[self._observe_circuits],
                unit="1",
                description="1 while a region's circuit is not closed.",
            )
            meter.create_observable_counter(
                "gateway.circuit.state_changes",
                callbacks=[self._observe_changes],
                unit="{change}",
                description="Circuit state changes seen between collections.",
            )

    # observable callbacks (called by the SDK at each collection) ------------------------------

    def _report(self) -> Mapping[str, Any]:
        try:
            return self._health() if self._health is not None else {}
        except Exception:  # noqa: BLE001 - a misconfigured gateway reports nothing
            return {}

    def _observe_deployments(self, options: Any) -> Iterable[Any]:
        from opentelemetry.metrics import Observation

        counts = dict.fromkeys(_DEPLOYMENT_STATES, 0)
        for region in self._report().get("regions", {}).values():
            for dep in region.get("deployments", {}).values():
                state = str(dep.get("state", "ok")) if isinstance(dep, Mapping) else "ok"
                if state in counts:
                    counts[state] += 1
        return [Observation(n, {ATTR.STATE: state}) for state, n in counts.items()]

    def _observe_circuits(self, options: Any) -> Iterable[Any]:
        from opentelemetry.metrics import Observation

        out = []
        for name, region in self._report().get("regions", {}).items():
            state = str(region.get("circuit", {}).get("state", "closed"))
            previous = self._circuits.get(name)
            if previous is not None and previous != state:
                key = (name, state)
                self._circuit_changes[key] = self._circuit_changes.get(key, 0) + 1
            self._circuits[name] = state
            out.append(Observation(0 if state == "closed" else 1, {ATTR.REGION: name}))
        return out

    def _observe_changes(self, options: Any) -> Iterable[Any]:
        from opentelemetry.metrics import Observation

        return [
            Observation(n, {ATTR.REGION: region, ATTR.STATE: state})
            for (region, state), n in self._circuit_changes.items()
        ]
