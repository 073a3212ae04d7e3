"""Telemetry settings: where OpenTelemetry exports to, from the standard variables.

* ``APPLICATIONINSIGHTS_CONNECTION_STRING`` set: Azure Monitor (``azure-monitor-opentelemetry``).
* else ``OTEL_EXPORTER_OTLP_ENDPOINT`` (or the per-signal ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`` /
  ``..._METRICS_ENDPOINT``) set: OTLP over HTTP/protobuf; every other ``OTEL_*`` variable
  (headers, ``OTEL_METRIC_EXPORT_INTERVAL``, ``OTEL_SERVICE_NAME``, ...) is read by the SDK itself.
* else off: no SDK is loaded.

``GATEWAY_TELEMETRY_CAPTURE_CONTENT=true`` (or the GenAI conventions' own
``OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT``) records completion text on spans; off by
default. ``GATEWAY_TELEMETRY=off`` turns everything off whatever else is set.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

__all__ = ["TelemetrySettings", "load_telemetry_settings"]

_TRUE = {"1", "true", "yes", "on"}


@dataclass(frozen=True, slots=True)
class TelemetrySettings:
    exporter: Literal["azure_monitor", "otlp", "off"]
    capture_content: bool = False
    connection_string: str | None = None  # never logged

    @property
    def enabled(self) -> bool:
        return self.exporter != "off"

    def __repr__(self) -> str:  # keep the connection string out of logs
        return (
            f"TelemetrySettings(exporter={self.exporter!r}, capture_content={self.capture_content})"
        )


def load_telemetry_settings(environ: Mapping[str, str] | None = None) -> TelemetrySettings:
    env = os.environ if environ is None else environ
    capture = any(
        env.get(key, "").strip().lower() in _TRUE
        for key in (
            "GATEWAY_TELEMETRY_CAPTURE_CONTENT",
            "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT",
        )
    )
    if env.get("GATEWAY_TELEMETRY", "").strip().lower() in {"off", "false", "0", "none"}:
        return TelemetrySettings("off", capture)
    connection = env.get("APPLICATIONINSIGHTS_CONNECTION_STRING", "").strip()
    if connection:
        return TelemetrySettings("azure_monitor", capture, connection)
    if any(
        env.get(key, "").strip()
        for key in (
            "OTEL_EXPORTER_OTLP_ENDPOINT",
            "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
            "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT",
        )
    ):
        return TelemetrySettings("otlp", capture)
    return TelemetrySettings("off", capture)
