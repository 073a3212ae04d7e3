"""What a process's first chat request imports: not the modules only other routes use.

``function_app``'s chat handler imports ``shared.api`` and ``shared.runtime`` on its first call
(the gateway's telemetry setup imports ``shared.telemetry``). The Responses API, the usage
report, the OpenAPI document, the telemetry observer and the job spans are imported on first use
of their names, so the first chat answer after a start does not compile and build them
(``bench/firstrequest.py`` measures that answer against a plain function app).
"""

from __future__ import annotations

import json
import subprocess
import sys

from testpeers.processes import ROOT, child_env

DEFERRED = (
    "shared.api._responses",
    "shared.api._openapi",
    "shared.api._usage",
    "shared.telemetry._observer",
    "shared.telemetry._jobs",
)

_PROBE = """
import json, sys
import shared.api, shared.runtime, shared.telemetry
before = sorted(m for m in {deferred!r} if m in sys.modules)
import shared.api._responses as responses, shared.api._openapi as openapi, shared.api._usage as usage
import shared.telemetry._observer as observer, shared.telemetry._jobs as jobs
from shared.api import usage_report
same = [
    shared.api.responses_create is responses.responses_create,
    shared.api.ResponsesServices is responses.ResponsesServices,
    shared.api.openapi_document is openapi.openapi_document,
    usage_report is usage.usage_report,
    shared.telemetry.TelemetryObserver is observer.TelemetryObserver,
    shared.telemetry.traced_job is jobs.traced_job,
]
try:
    shared.api.no_such_name
    missing = "no error"
except AttributeError as exc:
    missing = str(exc)
print(json.dumps({{"before": before, "same": same, "missing": missing}}))
"""


def _probe() -> dict[str, object]:
    out = subprocess.run(
        [sys.executable, "-c", _PROBE.format(deferred=DEFERRED)],
        cwd=ROOT,
        env=child_env(),
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    result: dict[str, object] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def test_the_chat_path_imports_leave_other_routes_modules_for_their_first_use() -> None:
    found = _probe()
    assert found["before"] == []  # a fresh process: none of them loaded by the chat path
    assert found["same"] == [True] * 6  # each name, once used, is the module's own object
    assert found["missing"] == "module 'shared.api' has no attribute 'no_such_name'"
