"""Build the OpenTelemetry SDK pipeline the settings ask for; nothing is imported when it is off.

* Azure Monitor: ``azure.monitor.opentelemetry.configure_azure_monitor`` (its library
  instrumentations are left off: the gateway reports its own spans, and nothing patches the
  openai SDK). If the Functions worker has already installed an SDK provider (it does so with
  ``PYTHON_ENABLE_OPENTELEMETRY=true`` when the app configured one before), that one is reused.
  Traces and metrics only: Python logs already reach Application Insights through the Functions
  host (the worker sends every record to the host, which writes it with the invocation's
  operation id). By default ``configure_azure_monitor`` also hangs an exporting handler on the
  root logger, which would send every record a second time; it takes no argument to turn logs
  off (``disable_logging`` is read from ``OTEL_LOGS_EXPORTER`` only, whatever is passed), so its
  handler goes on a logger of its own that nothing logs to (``logger_name``).
* OTLP: a ``TracerProvider`` with a batch processor and a ``MeterProvider`` with a periodic
  reader, both with the OTLP/HTTP exporters, which read ``OTEL_EXPORTER_OTLP_*`` themselves;
  the reader honours ``OTEL_METRIC_EXPORT_INTERVAL``; ``OTEL_SERVICE_NAME`` and
  ``OTEL_RESOURCE_ATTRIBUTES`` name the service (default ``aoai-gateway``).
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from typing import Any

from shared.settings import TelemetrySettings

__all__ = ["Providers", "configure"]

logger = logging.getLogger(__name__)

_SERVICE_NAME = "aoai-gateway"
# Where configure_azure_monitor hangs its log handler: a logger nothing writes to (not an
# ancestor of any logger the app or its libraries use), so no record is exported twice.
_AZMON_LOGGER = "aoai_gateway.telemetry.azure_monitor_unused"
# configure_azure_monitor's bundled library instrumentations: all off (see the docstring). Its
# 1.8 line added httpx and httpx2 (the openai SDK's transport): on, they would add a span per
# upstream request next to our attempt span.
_AZMON_INSTRUMENTATIONS = (
    "azure_sdk",
    "django",
    "fastapi",
    "flask",
    "httpx",
    "httpx2",
    "psycopg2",
    "requests",
    "urllib",
    "urllib3",
)


@dataclass(frozen=True, slots=True)
class Providers:
    tracer_provider: Any
    meter_provider: Any
    owned: bool  # built here (flush and shut down on close) or found installed

    def flush(self) -> None:
        for provider in (self.tracer_provider, self.meter_provider):
            flush = getattr(provider, "force_flush", None)
            if flush is not None:
                flush()

    def shutdown(self) -> None:
        self.flush()
        if self.owned:
            for provider in (self.tracer_provider, self.meter_provider):
                stop = getattr(provider, "shutdown", None)
                if stop is not None:
                    stop()


def _installed() -> Providers | None:
    """The SDK providers already installed in this process (by the worker or a test), if any."""
    from opentelemetry import metrics, trace

    tracer_provider = trace.get_tracer_provider()
    meter_provider = metrics.get_meter_provider()
    if type(tracer_provider).__module__.startswith("opentelemetry.sdk"):
        return Providers(tracer_provider, meter_provider, owned=False)
    return None


def configure(settings: TelemetrySettings, *, install: bool = True) -> Providers | None:
    """The providers to report to, built per ``settings``; None when telemetry is off.
    ``install``: also make them the process's global providers (what the job spans use)."""
    if not settings.enabled:
        return None
    if install:
        existing = _installed()
        if existing is not None:
            logger.info("telemetry: reusing the OpenTelemetry SDK already installed")
            return existing
    if settings.exporter == "azure_monitor":
        from azure.monitor.opentelemetry import configure_azure_monitor
        from opentelemetry import metrics, trace

        configure_azure_monitor(
            connection_string=settings.connection_string,
            logger_name=_AZMON_LOGGER,
            enable_live_metrics=False,
            instrumentation_options={name: {"enabled": False} for name in _AZMON_INSTRUMENTATIONS},
        )
        logger.info("telemetry: exporting to Azure Monitor")
        return Providers(trace.get_tracer_provider(), metrics.get_meter_provider(), owned=True)
    providers = _otlp()
    if install:
        from opentelemetry import metrics, trace

        trace.set_tracer_provider(providers.tracer_provider)
        metrics.set_meter_provider(providers.meter_provider)
    logger.info("telemetry: exporting over OTLP/HTTP")
    return providers


def _otlp() -> Providers:
    from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    named = os.environ.get("OTEL_SERVICE_NAME") or "service.name=" in os.environ.get(
        "OTEL_RESOURCE_ATTRIBUTES", ""
    )
    resource = Resource.create({} if named else {"service.name": _SERVICE_NAME})
    tracer_provider = TracerProvider(resource=resource)
    tracer_provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    meter_provider = MeterProvider(
        resource=resource, metric_readers=[PeriodicExportingMetricReader(OTLPMetricExporter())]
    )
    return Providers(tracer_provider, meter_provider, owned=True)
