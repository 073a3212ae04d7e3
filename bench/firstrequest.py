"""First request after a process start: ours against the floor any Python function app pays.

Each sample is a fresh ``python`` process that imports an app, builds the Starlette ``Request``
the host's HTTP streaming proxy hands a function (``POST /api/v1/chat/completions``, a small
non-streaming chat), awaits the app's chat function on it and reads the whole answer from the
simulator. The figure is the wall time from starting the process to having the answer (the
parent starts the clock before spawning it and stops it when the child prints the answer, so
interpreter start-up is included, the same for every arm), plus the child's own CPU time up to
the answer.

Arms, each run from a copy of its code in a temporary directory laid out as the deployment
package is (``.funcignore`` keeps ``__pycache__`` out of it, and the children run with
``PYTHONDONTWRITEBYTECODE=1``, so the app's own modules are compiled from source in every
sample; installed packages have their bytecode, as a remote build's do):

* ``floor``: a plain function app: ``azure.functions``, the HTTP streaming extension (which the
  gateway needs for streaming, so the floor pays it too), one HTTP function, and an
  ``AsyncOpenAI`` client built at import that makes one chat call (v1 API, API key) and returns
  the completion as JSON. This is the least any app that answers a chat from Azure OpenAI pays.
* ``ours``: ``function_app.py`` and ``shared/`` with the deployed defaults: the app's storage
  (Azurite, so the shared health table, the quota ledger and usage accounting are on), one
  region on the simulator, API key, v1 API; telemetry off (no Application Insights here). The
  target line is this arm.
* ``ours_precompiled``: the same, with the package's bytecode compiled beforehand
  (``compileall``, checked-hash ``.pyc``): what shipping bytecode in the package would save.
* ``ours_no_storage``: the same without storage (each instance paces alone, no shared health):
  informational.

Why the direct call rather than the host double (``funchost``): the double needs Python 3.13
and the worker runtime package, and its worker start-up and gRPC/HTTP proxy are the same for
every app, so they would add one constant to both arms (diluting the ratio) without being the
real host's figures either. Calling the decorated function directly, as the Functions docs show
for HTTP streaming, keeps what differs: the app's imports, settings, composition root, stores
and the call itself. The ratio is therefore stricter than one measured through a host.

Rounds are interleaved (every arm once per round, order rotated). The headline is the median of
the per-round ratios (ours / floor in the same round, which cancels the machine's drift), with
their range; the ratio of the medians and the CPU-time ratio are printed beside it. On a shared
machine the wall figure moves with the load (on 2 cores under load 4 to 15 the same code measured
1.1x to 1.3x, with per-round ranges wider than that): read the CPU ratio beside it, and compare
code changes in one run, not across runs. Azure is not measured: there, storage and the identity token add network round trips that neither arm
pays here, and the package's start-up from its mount is not reproduced.
"""

from __future__ import annotations

import compileall
import json
import shutil
import subprocess
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from ._harness import (
    API_KEY,
    PY,
    ROOT,
    SimProcess,
    child_env,
    interleaved_rounds,
    percentile,
    summarize,
)
from ._stats import ratio

__all__ = ["run"]

TARGET_RATIO = 1.2
SAMPLE_TIMEOUT_S = 120.0
DEPLOYMENT = "gpt-4o"

_FLOOR_APP = '''"""A plain function app: one HTTP function that asks Azure OpenAI (v1 API) and answers."""

import os

import azure.functions as func
from azurefunctions.extensions.http.fastapi import JSONResponse, Request
from openai import AsyncOpenAI

app = func.FunctionApp(http_auth_level=func.AuthLevel.FUNCTION)
client = AsyncOpenAI(base_url=os.environ["FLOOR_BASE_URL"], api_key=os.environ["FLOOR_API_KEY"])


@app.route(route="v1/chat/completions", methods=["POST"])
async def chat_completions(req: Request) -> JSONResponse:
    body = await req.json()
    completion = await client.chat.completions.create(**body)
    return JSONResponse(completion.to_dict())
'''

_CHILD = """
import time
t0 = time.perf_counter()
import asyncio, json, os, resource, sys
import function_app
t1 = time.perf_counter()
from starlette.requests import Request

raw = json.dumps({"model": "gpt-4o", "messages": [{"role": "user", "content": "Say something"}],
                  "max_tokens": 8}).encode()
scope = {"type": "http", "http_version": "1.1", "method": "POST", "scheme": "http",
         "path": "/api/v1/chat/completions", "raw_path": b"/api/v1/chat/completions",
         "root_path": "", "query_string": b"",
         "headers": [(b"content-type", b"application/json"),
                     (b"content-length", str(len(raw)).encode())],
         "server": ("127.0.0.1", 7071), "client": ("127.0.0.1", 50000)}
sent = []

async def receive():
    if sent:
        return {"type": "http.disconnect"}
    sent.append(1)
    return {"type": "http.request", "body": raw, "more_body": False}

async def first_request():
    response = await function_app.chat_completions(Request(scope, receive))
    if hasattr(response, "body_iterator"):
        body = b"".join([c if isinstance(c, bytes) else c.encode()
                         async for c in response.body_iterator])
    else:
        body = bytes(response.body)
    return response.status_code, body

status, body = asyncio.run(first_request())
t2 = time.perf_counter()
usage = resource.getrusage(resource.RUSAGE_SELF)
answer = json.loads(body)
content = answer["choices"][0]["message"]["content"] if status == 200 else None
print(json.dumps({"status": status, "answered": bool(content), "error": None if content else answer,
                  "import_s": t1 - t0, "request_s": t2 - t1,
                  "cpu_s": usage.ru_utime + usage.ru_stime, "modules": len(sys.modules)}),
      flush=True)
os._exit(0)
"""


def _package(into: Path, *, floor: bool, precompile: bool = False) -> Path:
    """The app as the deployment packages it: its code only, no bytecode unless ``precompile``."""
    into.mkdir(parents=True)
    if floor:
        (into / "function_app.py").write_text(_FLOOR_APP, encoding="utf-8")
    else:
        shutil.copy2(ROOT / "function_app.py", into / "function_app.py")
        shutil.copytree(
            ROOT / "shared", into / "shared", ignore=shutil.ignore_patterns("__pycache__")
        )
    if precompile:
        compileall.compile_dir(
            into,
            quiet=1,
            invalidation_mode=compileall.py_compile.PycInvalidationMode.CHECKED_HASH,
        )
    return into


def _sample(app_dir: Path, env: dict[str, str]) -> dict[str, Any]:
    """One fresh process: its wall time from spawn to answer, and what it reported."""
    started = time.perf_counter()
    proc = subprocess.Popen(
        [PY, "-c", _CHILD],
        cwd=app_dir,
        env={**env, "PYTHONPATH": str(app_dir)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    watchdog = threading.Timer(SAMPLE_TIMEOUT_S, proc.kill)  # a hung child ends the sample
    watchdog.start()
    try:
        line = proc.stdout.readline()
    finally:
        watchdog.cancel()
    wall = time.perf_counter() - started
    try:
        _, err = proc.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()
        _, err = proc.communicate()
    if not line.strip():
        raise RuntimeError(f"the first request failed in {app_dir.name}: {err.strip()[-800:]}")
    data: dict[str, Any] = json.loads(line)
    if data["status"] != 200 or not data["answered"]:
        raise RuntimeError(f"{app_dir.name} answered {data['status']}: {data['error']}")
    data["wall_s"] = wall
    return data


def _regions(endpoint: str) -> str:
    return json.dumps(
        [
            {
                "name": "eastus2",
                "endpoint": endpoint,
                "priority": 1,
                "auth": "api_key",
                "api_key": API_KEY,
                "api_style": "v1",
                "models": {DEPLOYMENT: {"deployment": DEPLOYMENT, "tpm": 10_000_000}},
            }
        ]
    )


def _storage() -> tuple[Any, str | None]:
    """Azurite through the test suite's starter, or (None, why not)."""
    from ._backlog import Azurite, _azurite_binary

    if _azurite_binary() is None:
        return None, "azurite is not installed (npm install)"
    return Azurite(), None


def run(quick: bool = False) -> dict[str, Any]:
    started = time.monotonic()
    rounds = 5 if quick else 21
    sim_regions = [
        {
            "name": "eastus2",
            "deployments": [{"name": DEPLOYMENT, "model": DEPLOYMENT, "tpm": 10_000_000}],
        }
    ]
    azurite, no_storage_why = _storage()
    with (
        tempfile.TemporaryDirectory(prefix="bench-firstreq-") as tmp,
        SimProcess(sim_regions) as sim,
    ):
        base = Path(tmp)
        endpoint = sim.endpoint("eastus2")
        common = child_env(
            {
                "FUNCTIONS_WORKER_RUNTIME": "python",
                "PYTHON_ENABLE_INIT_INDEXING": "1",
                "PYTHONDONTWRITEBYTECODE": "1",
                "GATEWAY_TELEMETRY": "off",
            }
        )
        floor_env = {**common, "FLOOR_BASE_URL": f"{endpoint}/openai/v1/", "FLOOR_API_KEY": API_KEY}
        ours_env = {**common, "GATEWAY_REGIONS": _regions(endpoint)}
        arms: dict[str, tuple[Path, dict[str, str]]] = {
            "floor": (_package(base / "floor", floor=True), floor_env),
            "ours_no_storage": (_package(base / "ours_no_storage", floor=False), ours_env),
        }
        if azurite is not None:
            azurite.__enter__()
        try:
            if azurite is not None:
                stored = {**ours_env, "AzureWebJobsStorage": azurite.connection_string}
                arms["ours"] = (_package(base / "ours", floor=False), stored)
                arms["ours_precompiled"] = (
                    _package(base / "ours_precompiled", floor=False, precompile=True),
                    stored,
                )
            for app_dir, env in arms.values():  # warm the file cache; creates the tables once
                _sample(app_dir, env)
            samples: dict[str, list[dict[str, Any]]] = {name: [] for name in arms}
            for _, order in interleaved_rounds(tuple(arms), rounds):
                for name in order:
                    samples[name].append(_sample(*arms[name]))
        finally:
            if azurite is not None:
                azurite.__exit__(None, None, None)
    headline = "ours" if "ours" in arms else "ours_no_storage"
    wall = {n: [s["wall_s"] * 1000 for s in v] for n, v in samples.items()}
    cpu = {n: [s["cpu_s"] * 1000 for s in v] for n, v in samples.items()}
    stages = {
        n: {
            "import_ms": summarize([s["import_s"] * 1000 for s in v]),
            "first_request_ms": summarize([s["request_s"] * 1000 for s in v]),
        }
        for n, v in samples.items()
    }

    def paired(name: str) -> dict[str, Any]:
        per_round = [o / f for o, f in zip(wall[name], wall["floor"], strict=True)]
        cpu_round = [o / f for o, f in zip(cpu[name], cpu["floor"], strict=True)]
        return {
            "median": round(percentile(per_round, 50), 3),
            "range": [round(min(per_round), 3), round(max(per_round), 3)],
            "ratio_of_medians": ratio(percentile(wall[name], 50), percentile(wall["floor"], 50)),
            "cpu_median": round(percentile(cpu_round, 50), 3),
            "cpu_range": [round(min(cpu_round), 3), round(max(cpu_round), 3)],
        }

    ratios = {name: paired(name) for name in arms if name != "floor"}
    head = ratios[headline]
    met = head["median"] <= TARGET_RATIO
    result: dict[str, Any] = {
        "name": "firstrequest",
        "quick": quick,
        "rounds": rounds,
        "headline_arm": headline,
        "storage": "azurite" if azurite is not None else f"none ({no_storage_why})",
        "wall_ms": {n: summarize(v) for n, v in wall.items()},
        "cpu_ms": {n: summarize(v) for n, v in cpu.items()},
        "stages": stages,
        "modules_loaded": {n: v[-1]["modules"] for n, v in samples.items()},
        "ratios_vs_floor": ratios,
        "targets": [
            {
                "what": f"first request / floor (median), {headline}",
                "target": f"<= {TARGET_RATIO}x",
                "measured": head["median"],
                "unit": "x",
                "met": met,
                "runs": rounds,
                "range": head["range"],
            }
        ],
    }
    others = "; ".join(
        f"{n} {r['median']}x (range {r['range'][0]}–{r['range'][1]}, CPU {r['cpu_median']}x)"
        for n, r in ratios.items()
        if n != headline
    )
    result["elapsed_s"] = round(time.monotonic() - started, 1)
    result["summary"] = (
        f"firstrequest: process start to first chat answer, {headline} "
        f"{percentile(wall[headline], 50):.0f} ms vs floor "
        f"{percentile(wall['floor'], 50):.0f} ms (medians of {rounds} interleaved rounds) = "
        f"{head['median']}x per-round median (range {head['range'][0]}–{head['range'][1]}; "
        f"ratio of medians {head['ratio_of_medians']}x; CPU {head['cpu_median']}x) "
        f"(target <= {TARGET_RATIO}x{'' if met else ', MISSED'}); {others}"
    )
    return result
