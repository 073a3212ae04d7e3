"""OpenTelemetry for the gateway: spans and GenAI metrics per call (an observer on the access
layer's seam), trace context through Service Bus for backlog jobs, the Functions invocation's
trace context made current while the app handles it, and the exporter setup.

Importing this package loads no OpenTelemetry SDK or exporter: ``configure`` does, and only
when a connection string or an OTLP endpoint is set (see ``shared.settings._telemetry``). The
observer and the job spans are imported on first use of their names: a process's first chat
answer with telemetry off does not build them.
"""

from typing import TYPE_CHECKING, Any

from shared.settings import TelemetrySettings, load_telemetry_settings

from ._invocation import invocation_context, trace_carrier
from ._names import ATTR
from ._setup import Providers, configure

if TYPE_CHECKING:  # loaded on first use by __getattr__ below
    from ._jobs import job_span, send_span, traced_job
    from ._observer import TelemetryObserver

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


# name -> the module that defines it, imported on first use (lazy: cold start)
_ON_FIRST_USE = {
    "TelemetryObserver": "_observer",
    "job_span": "_jobs",
    "send_span": "_jobs",
    "traced_job": "_jobs",
}


def __getattr__(name: str) -> Any:
    module = _ON_FIRST_USE.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from importlib import import_module

    value = getattr(import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value
