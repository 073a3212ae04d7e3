"""OpenTelemetry SDK with in-memory exporters, installed once as the process's global providers
(the job spans use the global API, as in production); each test starts from empty exporters."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
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


class OtlpReceiver:
    """An OTLP/HTTP (protobuf) receiver on a free loopback port, keeping every POST; it also
    stands in for Application Insights' ingestion endpoint (``/v2.1/track``)."""

    def __init__(self) -> None:
        self.posts: list[tuple[str, bytes]] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length") or 0))
                receiver.posts.append((self.path, body))
                self.send_response(200)
                if "/track" in self.path:  # Application Insights answers with a tally
                    reply = b'{"itemsReceived": 1, "itemsAccepted": 1, "errors": []}'
                    self.send_header("content-type", "application/json")
                else:
                    reply = b""
                    self.send_header("content-type", "application/x-protobuf")
                self.send_header("content-length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

            def log_message(self, *args: Any) -> None:
                return None

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def spans(self) -> list[Any]:
        from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
            ExportTraceServiceRequest,
        )

        out = []
        for path, body in list(self.posts):
            if path == "/v1/traces":
                request = ExportTraceServiceRequest.FromString(body)
                for rs in request.resource_spans:
                    resource = {a.key: a.value.string_value for a in rs.resource.attributes}
                    for ss in rs.scope_spans:
                        out.extend((resource, span) for span in ss.spans)
        return out

    def metrics(self) -> dict[str, Any]:
        from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
            ExportMetricsServiceRequest,
        )

        out: dict[str, Any] = {}
        for path, body in list(self.posts):
            if path == "/v1/metrics":
                request = ExportMetricsServiceRequest.FromString(body)
                for rm in request.resource_metrics:
                    for sm in rm.scope_metrics:
                        for metric in sm.metrics:
                            out[metric.name] = metric
        return out

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def attrs_of(items: Any) -> dict[str, Any]:
    out = {}
    for a in items:
        value = a.value
        kind = value.WhichOneof("value")
        out[a.key] = getattr(value, kind) if kind else None
    return out


@pytest.fixture
def otlp_receiver() -> Iterator[OtlpReceiver]:
    receiver = OtlpReceiver()
    yield receiver
    receiver.close()


def wait_for(condition, timeout: float = 30.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.1)
    return condition()
