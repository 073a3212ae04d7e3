"""Export over OTLP/HTTP, configured only from the standard ``OTEL_*`` variables, to a real
receiver started by the test; and ``import function_app`` loads no OpenTelemetry SDK or exporter
even with every exporter configured."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from tests.fixtures.devserver import settings_env
from tests.fixtures.gateway import settings_for_sim

from .conftest import attrs_of as _attrs
from .conftest import wait_for as _wait

ROOT = Path(__file__).resolve().parents[3]

_SCRIPT = """
import asyncio, sys, time
from shared import runtime
from shared.aoai import CallContext, ChatRequest

async def main():
    gateway = runtime.gateway()
    for i in range(2):
        await gateway.chat(
            ChatRequest(model="gpt-4o", messages=[{"role": "user", "content": "hi"}], max_tokens=8),
            CallContext(correlation_id=f"otlp-{i}", caller="key:otlp0000test"),
        )
    print("called", flush=True)
    await asyncio.sleep(60)  # the test reads what the periodic exports deliver, then ends us

asyncio.run(main())
"""


def test_otlp_export_from_standard_variables_to_a_real_receiver(sim, otlp_receiver):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GATEWAY_", "OTEL_"))}
    env.pop("APPLICATIONINSIGHTS_CONNECTION_STRING", None)
    env.update(settings_env(settings_for_sim(sim)))
    env.update(
        {
            "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{otlp_receiver.port}",
            "OTEL_METRIC_EXPORT_INTERVAL": "300",  # default 60 s: arriving at all shows it is honoured
            "OTEL_BSP_SCHEDULE_DELAY": "200",
            "OTEL_SERVICE_NAME": "gateway-under-test",
            "GATEWAY_USAGE": "off",
            "PYTHONPATH": str(ROOT),
        }
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", _SCRIPT],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        line = proc.stdout.readline()
        assert line.strip() == "called", proc.stderr.read() if proc.poll() is not None else line

        def calls():
            found = [(r, s) for r, s in otlp_receiver.spans() if s.name == "chat gpt-4o"]
            return found if len(found) >= 2 else None

        def usage_metric():
            metrics = otlp_receiver.metrics()
            return metrics if "gen_ai.client.token.usage" in metrics else None

        spans = _wait(calls)
        metrics = _wait(usage_metric)
    finally:
        proc.kill()
        proc.wait(timeout=10)
    assert spans, "no call spans reached the receiver"
    resource, span = spans[0]
    assert resource["service.name"] == "gateway-under-test"
    attrs = _attrs(span.attributes)
    assert attrs["gen_ai.operation.name"] == "chat" and attrs["gen_ai.request.model"] == "gpt-4o"
    assert attrs["gateway.caller"] == "key:otlp0000test"
    assert attrs["gen_ai.usage.input_tokens"] > 0 and attrs["gen_ai.usage.output_tokens"] > 0
    assert attrs["server.address"] == "127.0.0.1"
    children = [s for _, s in otlp_receiver.spans() if s.parent_span_id == span.span_id]
    assert children and _attrs(children[0].attributes)["gateway.attempt"] == 1
    assert metrics, "no metrics export within the configured interval"
    usage = metrics["gen_ai.client.token.usage"]
    assert usage.unit == "{token}"
    points = usage.histogram.data_points
    types = {_attrs(p.attributes)["gen_ai.token.type"] for p in points}
    assert types == {"input", "output"}
    assert all(_attrs(p.attributes)["gateway.caller"] == "key:otlp0000test" for p in points)
    assert "gen_ai.client.operation.duration" in metrics
    assert metrics["gen_ai.client.operation.duration"].unit == "s"


def test_importing_function_app_loads_no_opentelemetry_sdk_or_exporter():
    env = dict(os.environ)
    env.update(
        {
            "APPLICATIONINSIGHTS_CONNECTION_STRING": "InstrumentationKey=00000000-0000-0000-0000-000000000000",
            "OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:9",
            "PYTHONPATH": str(ROOT),
        }
    )
    code = (
        "import json, sys, function_app; function_app.app.get_functions(); "
        "print(json.dumps(sorted(m for m in sys.modules if m.startswith("
        "('opentelemetry.sdk', 'opentelemetry.exporter', 'azure.monitor', 'shared.telemetry', 'shared.usage')))))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout) == []


_TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
_INVOCATION_SPAN = "00f067aa0ba902b7"

_AZMON_SCRIPT = """
import asyncio, json, logging
from shared import runtime
from shared.aoai import CallContext, ChatRequest
from shared.telemetry import invocation_context

logging.getLogger("azure").setLevel(logging.WARNING)  # as function_app does

async def main():
    gateway = runtime.gateway()
    # The host's invocation context, as a Functions Context or the proxied request carries it.
    with invocation_context({"traceparent": "00-%s-%s-01"}):
        await gateway.chat(
            ChatRequest(model="gpt-4o", messages=[{"role": "user", "content": "hi"}], max_tokens=8),
            CallContext(correlation_id="azmon-1", caller="key:azmon0000test"),
        )
    # A record the app logs: the Functions host already sends it to Application Insights.
    logging.getLogger("shared.telemetry_probe").warning("azmon-log-probe")
    from opentelemetry._logs import get_logger_provider
    flush = getattr(get_logger_provider(), "force_flush", None)
    if flush is not None:
        flush(5000)  # whatever the log pipeline holds is posted now, not at some later tick
    await runtime.aclose()  # flushes the providers
    print(json.dumps(sorted(type(h).__name__ for h in logging.getLogger().handlers)))
    print("done", flush=True)

asyncio.run(main())
""" % (_TRACE_ID, _INVOCATION_SPAN)


def test_azure_monitor_export_when_a_connection_string_is_set(sim, otlp_receiver):
    """The Application Insights path: configure_azure_monitor from the connection string, spans
    posted to its ingestion endpoint (here the test's receiver) as App Insights telemetry, in
    the invocation's operation (``ai.operation.id`` = its trace id, parent = its span); and no
    log record of the app's goes that way (the Functions host sends them: one path, not two)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GATEWAY_", "OTEL_"))}
    env.update(settings_env(settings_for_sim(sim)))
    env.update(
        {
            "APPLICATIONINSIGHTS_CONNECTION_STRING": (
                "InstrumentationKey=00000000-0000-0000-0000-000000000001;"
                f"IngestionEndpoint=http://127.0.0.1:{otlp_receiver.port}/"
            ),
            "APPLICATIONINSIGHTS_STATSBEAT_DISABLED_ALL": "true",
            "GATEWAY_USAGE": "off",
            "PYTHONPATH": str(ROOT),
        }
    )
    out = subprocess.run(
        [sys.executable, "-c", _AZMON_SCRIPT],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0 and "done" in out.stdout, out.stderr[-2000:]

    def tracked() -> list[dict[str, Any]]:
        import gzip

        items = []
        for path, body in list(otlp_receiver.posts):
            if "track" not in path:
                continue
            try:
                raw = gzip.decompress(body)
            except OSError:
                raw = body
            text = raw.decode("utf-8", "replace").strip()
            for line in text.splitlines() if not text.startswith("[") else [text]:
                loaded = json.loads(line)
                items.extend(loaded if isinstance(loaded, list) else [loaded])
        return items

    items = _wait(lambda: [i for i in tracked() if "chat gpt-4o" in json.dumps(i)], timeout=10)
    assert items, (
        f"nothing about the call reached the ingestion endpoint: {[p for p, _ in otlp_receiver.posts]}"
    )
    props = items[0]["data"]["baseData"].get("properties", {})
    assert props.get("gateway.caller") == "key:azmon0000test"
    assert props.get("gen_ai.request.model") == "gpt-4o"
    # Only the gateway's own spans: the library instrumentations (httpx's included) stay off.
    dependencies = {
        i["data"]["baseData"].get("name")
        for i in tracked()
        if i["data"].get("baseType") == "RemoteDependencyData"
    }
    assert {n for n in dependencies if not n.startswith("attempt ")} == {"chat gpt-4o"}, (
        dependencies
    )
    tags = items[0].get("tags", {})
    assert tags.get("ai.operation.id") == _TRACE_ID
    assert tags.get("ai.operation.parentId") == _INVOCATION_SPAN
    # One log path: no exporting handler on the root logger, and the record never reached the
    # ingestion endpoint (before, configure_azure_monitor hung one there: every record twice).
    assert "LoggingHandler" not in json.loads(out.stdout.splitlines()[-2])
    logged = [i for i in tracked() if "azmon-log-probe" in json.dumps(i)]
    assert logged == [], logged
