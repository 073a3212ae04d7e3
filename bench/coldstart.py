"""Cold start: importing ``function_app`` (what the worker does when indexing) vs ``azure.functions`` alone.

Each sample is a fresh ``python`` process that times its own import with ``perf_counter``
(interpreter start-up excluded, the same for both), alternating the two arms. The figure is the
median. The child also reports which heavy SDKs the import pulled in, since they should load
lazily, and the time of ``app.get_functions()`` (the indexing call) after the import.

A third arm imports ``azure.functions`` with the HTTP streaming extension
(``azurefunctions.extensions.http.fastapi``): the worker enables streaming only if that module is
imported when it indexes the app, so it is the floor of any Python function app that streams. The
ratio against it shows what the gateway's own code adds.
"""

from __future__ import annotations

import json
import subprocess
import time
from typing import Any

from ._harness import PY, ROOT, child_env, interleaved_rounds, summarize
from ._stats import ratio

__all__ = ["run"]

TARGET_RATIO = 1.5
STREAMING_FLOOR = "azure.functions, azurefunctions.extensions.http.fastapi"
HEAVY = (
    "openai",
    "httpx",
    "httpx2",
    "pydantic",
    "azure.identity",
    "azure.servicebus",
    "azure.data.tables",
    "azure.storage.queue",
    "fastapi",
    "starlette",
    "shared.aoai",
    "shared.api",
    "shared.jobs",
    "shared.telemetry",
    "shared.usage",
    "opentelemetry.sdk",
    "opentelemetry.exporter",
    "azure.monitor",
)

_CHILD = """
import json, sys, time
t0 = time.perf_counter()
import {module}
t1 = time.perf_counter()
index_s = None
if {index}:
    funcs = {module}.app.get_functions()
    index_s = time.perf_counter() - t1
print(json.dumps({{"import_s": t1 - t0, "index_s": index_s,
                  "loaded": [m for m in {heavy!r} if m in sys.modules], "modules": len(sys.modules)}}))
"""


def _sample(module: str, index: bool) -> dict[str, Any]:
    code = _CHILD.format(module=module, index=index, heavy=HEAVY)
    env = child_env(
        {
            "FUNCTIONS_WORKER_RUNTIME": "python",
            "PYTHON_ENABLE_INIT_INDEXING": "1",
            "PYTHONDONTWRITEBYTECODE": "1",
        }
    )
    t0 = time.perf_counter()
    out = subprocess.run(
        [PY, "-c", code],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    wall = time.perf_counter() - t0
    if out.returncode != 0:
        raise RuntimeError(f"import {module} failed: {out.stderr.strip()[-800:]}")
    data = json.loads(out.stdout.strip().splitlines()[-1])
    data["wall_s"] = wall
    return data


def _top_imports(limit: int = 8) -> list[dict[str, Any]]:
    """``python -X importtime -c 'import function_app'``: the slowest top-level imports (cumulative ms)."""
    env = child_env({"FUNCTIONS_WORKER_RUNTIME": "python", "PYTHON_ENABLE_INIT_INDEXING": "1"})
    out = subprocess.run(
        [PY, "-X", "importtime", "-c", "import function_app"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    rows = []
    for line in out.stderr.splitlines():
        if not line.startswith("import time:") or "|" not in line:
            continue
        parts = line[len("import time:") :].split("|")
        name = parts[2].rstrip()
        depth = (len(name) - len(name.lstrip())) // 2
        if depth == 1 and parts[1].strip().isdigit():
            rows.append({"module": name.strip(), "cumulative_ms": round(int(parts[1]) / 1000, 1)})
    return sorted(rows, key=lambda r: r["cumulative_ms"], reverse=True)[:limit]


def run(quick: bool = False) -> dict[str, Any]:
    started = time.monotonic()
    repeats = 5 if quick else 21
    arms = {
        "azure.functions": ("azure.functions", False),
        STREAMING_FLOOR: (STREAMING_FLOOR, False),
        "function_app": ("function_app", True),
    }
    for module, index in arms.values():  # warm the OS file cache and .pyc files once, not measured
        _sample(module, index)
    samples: dict[str, list[dict[str, Any]]] = {name: [] for name in arms}
    for _, order in interleaved_rounds(tuple(arms), repeats):
        for name in order:
            samples[name].append(_sample(*arms[name]))
    imp = {name: [s["import_s"] * 1000 for s in values] for name, values in samples.items()}
    wall = {name: [s["wall_s"] * 1000 for s in values] for name, values in samples.items()}
    index_ms = [s["index_s"] * 1000 for s in samples["function_app"] if s["index_s"] is not None]
    base, app, floor = (
        summarize(imp["azure.functions"]),
        summarize(imp["function_app"]),
        summarize(imp[STREAMING_FLOOR]),
    )
    result: dict[str, Any] = {
        "name": "coldstart",
        "quick": quick,
        "repeats": repeats,
        "import_ms": {"azure.functions": base, STREAMING_FLOOR: floor, "function_app": app},
        "process_wall_ms": {name: summarize(v) for name, v in wall.items()},
        "get_functions_ms": summarize(index_ms),
        "ratio_median": ratio(app["p50"], base["p50"]),
        "ratio_vs_streaming_floor": ratio(app["p50"], floor["p50"]),
        "added_over_streaming_floor_ms": round(app["p50"] - floor["p50"], 1),
        "heavy_loaded_by_function_app": samples["function_app"][-1]["loaded"],
        "modules_loaded": {name: values[-1]["modules"] for name, values in samples.items()},
        "slowest_imports": _top_imports(),
    }
    met = result["ratio_median"] is not None and result["ratio_median"] <= TARGET_RATIO
    result["targets"] = [
        {
            "what": "import function_app / import azure.functions (median)",
            "target": f"<= {TARGET_RATIO}x",
            "measured": result["ratio_median"],
            "unit": "x",
            "met": met,
        }
    ]
    result["elapsed_s"] = round(time.monotonic() - started, 1)
    result["summary"] = (
        f"coldstart: import function_app {app['p50']:.1f} ms vs azure.functions {base['p50']:.1f} ms (median of {repeats}) "
        f"= {result['ratio_median']}x (target <= {TARGET_RATIO}x{'' if met else ', MISSED'}); "
        f"vs azure.functions + the HTTP streaming extension {floor['p50']:.1f} ms = {result['ratio_vs_streaming_floor']}x "
        f"({result['added_over_streaming_floor_ms']:+.1f} ms of our own); "
        f"heavy modules loaded at import: {', '.join(result['heavy_loaded_by_function_app']) or 'none'}"
    )
    return result
