"""OpenTelemetry SDK with in-memory exporters, installed once as the process's global providers
(the job spans use the global API, as in production); each test starts from empty exporters."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest


@dataclass
class Otel:
    tracer_provider: Any
    meter_provider: Any
    spans_exporter: Any
    metric_reader: Any

    def spans(self) -> list[Any]:
        return list(self.spans_exporter.get_finished_spans())

    def named(self, name: str) -> list[Any]:
        return [s for s in self.spans() if s.name == name]

    def metrics(self) -> dict[str, list[Any]]:
        """Metric name -> its data points, from one collection."""
        data = self.metric_reader.get_metrics_data()
        out: dict[str, list[Any]] = {}
        for rm in data.resource_metrics if data else ():
            for sm in rm.scope_metrics:
                for metric in sm.metrics:
                    out.setdefault(metric.name, []).extend(metric.data.data_points)
        return out


_INSTALLED: dict[str, Otel] = {}


def _install() -> Otel:
    if "otel" not in _INSTALLED:
        from opentelemetry import metrics, trace
        from opentelemetry.sdk.metrics import MeterProvider
        from opentelemetry.sdk.metrics.export import InMemoryMetricReader
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import SimpleSpanProcessor
        from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

        exporter = InMemorySpanExporter()
        tracer_provider = TracerProvider()
        tracer_provider.add_span_processor(SimpleSpanProcessor(exporter))
        reader = InMemoryMetricReader()
        meter_provider = MeterProvider(metric_readers=[reader])
        trace.set_tracer_provider(tracer_provider)
        metrics.set_meter_provider(meter_provider)
        _INSTALLED["otel"] = Otel(tracer_provider, meter_provider, exporter, reader)
    return _INSTALLED["otel"]


@pytest.fixture
def otel() -> Iterator[Otel]:
    handle = _install()
    handle.spans_exporter.clear()
    yield handle
    handle.spans_exporter.clear()


def point_sum(points: list[Any], **attrs: Any) -> float:
    """Sum (counters) or sum of values (histograms) of the points whose attributes include ``attrs``."""
    total = 0.0
    for p in points:
        if all(p.attributes.get(k) == v for k, v in attrs.items()):
            total += p.sum if hasattr(p, "sum") else p.value
    return total


def point_count(points: list[Any], **attrs: Any) -> int:
    return sum(
        int(p.count) for p in points if all(p.attributes.get(k) == v for k, v in attrs.items())
    )
