"""OpenTelemetry for the gateway: spans and GenAI metrics per call (an observer on the access
layer's seam), trace context through Service Bus for backlog jobs, the Functions invocation's
trace context made current while the app handles it, and the exporter setup.

Importing this package loads no OpenTelemetry SDK or exporter: ``configure`` does, and only
when a connection string or an OTLP endpoint is set (see ``shared.settings._telemetry``).
"""

from shared.settings import TelemetrySettings, load_telemetry_settings

from ._invocation import invocation_context, trace_carrier
from ._jobs import job_span, send_span, traced_job
from ._names import ATTR
from ._observer import TelemetryObserver
from ._setup import Providers, configure

__all__ = [
    "ATTR",
    "Providers",
    "TelemetryObserver",
    "TelemetrySettings",
    "configure",
    "invocation_context",
    "job_span",
    "load_telemetry_settings",
    "send_span",
    "trace_carrier",
    "traced_job",
]
