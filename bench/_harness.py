"""What the benchmarks share: the peers they run against (the simulator and the dev server as
child processes on free loopback ports, started by ``testpeers.processes``, the package the test
suite uses too, re-exported here under the names bench modules import), wall-clock budgets,
quiet gateway logs, the statistics helpers and what the machine was.
"""

from __future__ import annotations

import contextlib
import logging
import os
import platform
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from testpeers.processes import (
    HOST,
    LOOPBACK_API_KEY,
    PY,
    ROOT,
    BrokerProcess,
    SimProcess,
    child_env,
    free_ports,
    gateway_regions,
    stop_process,
    wait_http,
)
from testpeers.processes import DevServerProcess as DevServer

from ._stats import added_latency, interleaved_rounds, percentile, summarize

__all__ = [
    "API_KEY",
    "HOST",
    "PY",
    "ROOT",
    "BrokerProcess",
    "Budget",
    "DevServer",
    "SimProcess",
    "added_latency",
    "child_env",
    "free_ports",
    "gateway_regions",
    "interleaved_rounds",
    "machine_info",
    "percentile",
    "quiet_gateway_logs",
    "stop_process",
    "summarize",
    "wait_http",
]

API_KEY = LOOPBACK_API_KEY
_stop = stop_process  # the name bench/scaleout.py imports


@contextlib.contextmanager
def quiet_gateway_logs() -> Iterator[None]:
    """Only errors from ``shared``: one WARNING per throttled or failed-over call would drown the output."""
    gateway_log = logging.getLogger("shared")
    previous_level = gateway_log.level
    gateway_log.setLevel(logging.ERROR)
    try:
        yield
    finally:
        gateway_log.setLevel(previous_level)


class Budget:
    """A wall-clock allowance for one benchmark (or one phase of it)."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self._end = time.monotonic() + seconds

    def remaining(self) -> float:
        return max(0.0, self._end - time.monotonic())

    def expired(self) -> bool:
        return time.monotonic() >= self._end


def _meminfo_gib() -> float | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / 1024 / 1024, 1)
    except OSError:
        pass
    return None


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def machine_info() -> dict[str, Any]:
    """What produced the figures: cores, memory, CPU, Python, load."""
    try:
        nproc = len(os.sched_getaffinity(0))
    except AttributeError:
        nproc = os.cpu_count() or 0
    return {
        "nproc": nproc,
        "mem_gib": _meminfo_gib(),
        "cpu_model": _cpu_model(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "loadavg": [round(x, 2) for x in os.getloadavg()],
    }
