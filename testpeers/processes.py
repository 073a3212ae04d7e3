"""Peers as child processes for whole-process measurements (the benchmarks): the simulator
(``python -m aoai_sim --config FILE``) and the dev server (``python -m devserver --http-only``),
on free loopback ports, each stopped by the context manager that started it (terminate, then
kill after a grace period). Nothing binds anything but 127.0.0.1.

The test suite's fixtures start the same peers through ``testpeers.sim`` / ``testpeers.devserver``
(handles with fault and stats controls); ``bench/`` uses these and re-exports them from
``bench._harness``.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from .ports import STARTUP_TIMEOUT_S, wait_for_port

__all__ = [
    "HOST",
    "LOOPBACK_API_KEY",
    "PY",
    "ROOT",
    "BrokerProcess",
    "DevServerProcess",
    "SimProcess",
    "child_env",
    "free_ports",
    "gateway_regions",
    "stop_process",
    "wait_http",
]

ROOT = Path(__file__).resolve().parent.parent
PY = sys.executable
HOST = "127.0.0.1"
# The key the simulator accepts and the region table sends (loopback only, not a secret).
LOOPBACK_API_KEY = "bench-key"


def free_ports(count: int) -> list[int]:
    """``count`` distinct free TCP ports on 127.0.0.1 (held together while choosing, then released)."""
    socks = []
    try:
        for _ in range(count):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind((HOST, 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def wait_http(url: str, timeout_s: float, proc: subprocess.Popen[bytes] | None = None) -> None:
    """Poll ``url`` until it answers (any HTTP status), the process dies, or the timeout passes."""
    deadline = time.monotonic() + timeout_s
    last: Exception | None = None
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode} before {url} answered")
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:
                resp.read()
            return
        except urllib.error.HTTPError:
            return
        except OSError as exc:
            last = exc
            time.sleep(0.1)
    raise RuntimeError(f"{url} did not answer within {timeout_s}s: {last}")


def child_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment for child processes: ours minus simulator/gateway overrides, plus ``extra``.

    No proxies (everything is loopback) and LiteLLM kept offline."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AOAI_SIM_", "GATEWAY_"))}
    for key in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy", "ALL_PROXY", "all_proxy"):
        env.pop(key, None)
    env["NO_PROXY"] = env["no_proxy"] = "127.0.0.1,localhost"
    env["LITELLM_LOCAL_MODEL_COST_MAP"] = "True"
    env["PYTHONPATH"] = str(ROOT)
    env.update(extra or {})
    return env


def stop_process(proc: subprocess.Popen[bytes], grace_s: float = 5.0) -> None:
    if proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout=grace_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=grace_s)


class _ChildProcess:
    """A peer in a child process with a scratch directory (its log inside): stopped and cleaned
    up on exit."""

    proc: subprocess.Popen[bytes] | None = None
    _dir: tempfile.TemporaryDirectory[str] | None = None

    def __exit__(self, *exc: object) -> None:
        if self.proc is not None:
            stop_process(self.proc)
        if getattr(self, "_log", None) is not None:
            self._log.close()
        if self._dir is not None:
            self._dir.cleanup()
            self._dir = None


class SimProcess(_ChildProcess):
    """``python -m aoai_sim --config FILE`` with the given regions on free ports.

    ``regions``: [{"name", "deployments": [{"name", "model", "tpm", "rpm"?}], "latency"?: {...}}].
    """

    def __init__(
        self,
        regions: Sequence[Mapping[str, Any]],
        *,
        minute_seconds: float = 60.0,
        latency: Mapping[str, float] | None = None,
        log_name: str = "sim",
        extra: Mapping[str, Any] | None = None,
        api_key: str = LOOPBACK_API_KEY,
    ) -> None:
        ports = free_ports(len(regions))
        self.ports = {str(r["name"]): p for r, p in zip(regions, ports)}
        self.config = {
            "minute_seconds": minute_seconds,
            "api_key": api_key,
            "latency": dict(latency or {"ttft_ms": 0, "per_token_ms": 0}),
            "regions": [
                {**dict(r), "host": HOST, "port": self.ports[str(r["name"])]} for r in regions
            ],
            **dict(extra or {}),
        }
        self._log_name = log_name
        self._dir: tempfile.TemporaryDirectory[str] | None = None
        self.proc: subprocess.Popen[bytes] | None = None

    def endpoint(self, region: str) -> str:
        return f"http://{HOST}:{self.ports[region]}"

    def __enter__(self) -> SimProcess:
        self._dir = tempfile.TemporaryDirectory(prefix="peer-sim-")
        path = Path(self._dir.name) / "sim.json"
        path.write_text(json.dumps(self.config), encoding="utf-8")
        log = open(Path(self._dir.name) / f"{self._log_name}.log", "wb")
        self._log = log
        self.proc = subprocess.Popen(
            [PY, "-m", "aoai_sim", "--config", str(path), "--log-level", "WARNING"],
            cwd=ROOT,
            env=child_env(),
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            for region in self.ports:
                wait_http(f"{self.endpoint(region)}/_sim/health", STARTUP_TIMEOUT_S, self.proc)
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    # -- control API (aoai_sim.control) --
    def control(self, region: str) -> Any:
        from aoai_sim.control import RegionControl

        return RegionControl(self.endpoint(region))

    def reset(self) -> None:
        for region in self.ports:
            self.control(region).reset()

    def stats(self, region: str) -> dict[str, Any]:
        return self.control(region).stats()

    def fault(self, region: str, kind: str, **params: Any) -> str:
        return self.control(region).fault(kind, **params)


def gateway_regions(
    sim: SimProcess,
    regions: Sequence[tuple[str, int, str, int]],
    alias: str,
    *,
    rpm: Mapping[str, int] | None = None,
    api_style: str = "v1",
    api_key: str = LOOPBACK_API_KEY,
) -> list[dict[str, Any]]:
    """The gateway's region table for ``(region, priority, deployment, tpm)`` rows of ``sim``."""
    table = []
    for name, priority, deployment, tpm in regions:
        model: dict[str, Any] = {"deployment": deployment, "tpm": tpm}
        if rpm and name in rpm:
            model["rpm"] = rpm[name]
        table.append(
            {
                "name": name,
                "endpoint": sim.endpoint(name),
                "priority": priority,
                "auth": "api_key",
                "api_key": api_key,
                "api_style": api_style,
                "models": {alias: model},
            }
        )
    return table


class DevServerProcess(_ChildProcess):
    """``python -m devserver --http-only --port P`` with ``GATEWAY_*`` settings in its environment."""

    def __init__(self, settings_env: Mapping[str, str]) -> None:
        self.port = free_ports(1)[0]
        self._env = dict(settings_env)
        self.proc: subprocess.Popen[bytes] | None = None
        self._dir: tempfile.TemporaryDirectory[str] | None = None

    @property
    def base_url(self) -> str:
        return f"http://{HOST}:{self.port}/api/v1"

    def __enter__(self) -> DevServerProcess:
        self._dir = tempfile.TemporaryDirectory(prefix="peer-dev-")
        self._log = open(Path(self._dir.name) / "devserver.log", "wb")
        self.proc = subprocess.Popen(
            [
                PY,
                "-m",
                "devserver",
                "--http-only",
                "--host",
                HOST,
                "--port",
                str(self.port),
                "--log-level",
                "warning",
            ],
            cwd=ROOT,
            env=child_env(self._env),
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        try:
            wait_http(f"http://{HOST}:{self.port}/api/health", STARTUP_TIMEOUT_S, self.proc)
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def log_tail(self, chars: int = 2000) -> str:
        if self._dir is None:
            return ""
        try:
            return (Path(self._dir.name) / "devserver.log").read_text(errors="replace")[-chars:]
        except OSError:
            return ""


class BrokerProcess:
    """``python -m sbbroker`` on a free port, in its own process (for several app processes to
    share; tests use the in-process ``testpeers.broker``)."""

    def __init__(self) -> None:
        self.port = free_ports(1)[0]
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def connection_string(self) -> str:
        return (
            f"Endpoint=sb://{HOST}:{self.port};SharedAccessKeyName=k;SharedAccessKey=v;"
            "UseDevelopmentEmulator=true"
        )

    def __enter__(self) -> BrokerProcess:
        self.proc = subprocess.Popen(
            [PY, "-m", "sbbroker", "--port", str(self.port)],
            cwd=ROOT,
            env=child_env(),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            wait_for_port(self.port, timeout=STARTUP_TIMEOUT_S, proc=self.proc)
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        if self.proc is not None:
            stop_process(self.proc)
