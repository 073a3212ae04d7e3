"""``make run``: start the local stack and the app, stop everything on Ctrl-C.

The stack: Azurite (storage: queues, tables, blobs), the Azure OpenAI simulator (two regions and
a managed-identity token endpoint), the Service Bus test broker with the queues ``infra/`` creates
(``backlog`` and ``replies``, with Azure's settings: duplicate detection, max delivery count, lock
duration, dead-lettering on expiry; one declaration, ``testpeers/servicebus_queues.json``, checked
against the templates by ``tests/infra/test_local_queues.py``). Then the app itself, on the host
``--host`` names (``make run HOST=...``):

* ``devserver`` (the default): the project's dev server, HTTP on 127.0.0.1:7071 and the queue side;
* ``func``: ``func start`` (Azure Functions Core Tools, which must be on the PATH).

The choice is never made for you: Core Tools on the PATH do not change what ``make run`` starts.
A service whose port already answers is taken as running and not started again.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # testpeers.queues: the queue declaration (standard library only)

from testpeers.queues import broker_args  # noqa: E402

HOSTS = ("devserver", "func")
SETTINGS = ROOT / "local.settings.json"
EXAMPLE = ROOT / "local.settings.example.json"


def listening(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.3)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def wait_listening(name: str, port: int, proc: subprocess.Popen, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not listening(port):
        if proc.poll() is not None:
            sys.exit(f"run_local: {name} exited with {proc.returncode}; see the output above")
        if time.monotonic() > deadline:
            sys.exit(f"run_local: {name} did not listen on 127.0.0.1:{port} within {timeout:.0f}s")
        time.sleep(0.1)


def service_specs(python: str) -> list[tuple[str, list[int], list[str]]]:
    azurite = str(ROOT / "node_modules" / ".bin" / "azurite")
    sb_port = int(os.environ.get("SB_BROKER_PORT", "5672"))
    return [
        (
            "azurite",
            [10000, 10001, 10002],
            [
                azurite,
                "--silent",
                "--skipApiVersionCheck",
                "--disableTelemetry",
                "--location",
                str(ROOT / ".azurite"),
            ],
        ),
        (
            "simulator",
            [8081, 8082],
            [
                python,
                "-m",
                "aoai_sim",
                "--config",
                os.environ.get("AOAI_SIM_CONFIG", str(ROOT / "aoai_sim" / "local.json")),
            ],
        ),
        (
            "service bus broker",
            [sb_port],
            [python, "-m", "sbbroker", "--port", str(sb_port), *broker_args()],
        ),
    ]


def ensure_local_settings() -> None:
    if not SETTINGS.exists():
        shutil.copyfile(EXAMPLE, SETTINGS)
        print(f"run_local: created {SETTINGS.name} from {EXAMPLE.name}")
    json.loads(SETTINGS.read_text())  # fail early on a broken file


def app_command(host: str, python: str) -> list[str]:
    """The command that serves the app on ``host`` (one of ``HOSTS``)."""
    if host == "func":
        func = shutil.which("func")
        if not func:
            sys.exit(
                "run_local: HOST=func needs Azure Functions Core Tools (func) on the PATH; "
                "`make run` without HOST uses the dev server"
            )
        return [func, "start", "--python"]
    return [python, "-m", "devserver", "--settings", str(SETTINGS)]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="scripts/run_local.py", description="Run the local stack and the app (make run)."
    )
    parser.add_argument(
        "--host",
        choices=HOSTS,
        default="devserver",
        help="what serves the app: the dev server (default) or Core Tools' func start",
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    ensure_local_settings()
    python = sys.executable
    children: list[subprocess.Popen] = []

    def stop(*_: object) -> None:
        for child in reversed(children):
            if child.poll() is None:
                child.terminate()
        for child in reversed(children):
            try:
                child.wait(timeout=10)
            except subprocess.TimeoutExpired:
                child.kill()
        sys.exit(0)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    for name, ports, cmd in service_specs(python):
        if all(listening(p) for p in ports):
            print(f"run_local: {name} already listening on {ports}; using it")
            continue
        print(f"run_local: starting {name} on {ports}")
        proc = subprocess.Popen(cmd, cwd=ROOT)
        children.append(proc)
        for port in ports:
            wait_listening(name, port, proc)

    app = app_command(args.host, python)
    if args.host == "func":
        print("run_local: HOST=func: func start (Azure Functions Core Tools)")
    else:
        print("run_local: the dev server serves the app on http://127.0.0.1:7071/api")
    children.append(subprocess.Popen(app, cwd=ROOT))
    try:
        while all(child.poll() is None for child in children):
            time.sleep(0.5)
        failed = [c.args[0] for c in children if c.poll() is not None]
        print(f"run_local: {failed} stopped; stopping the rest")
    finally:
        stop()


if __name__ == "__main__":
    main()
