"""Watching a simulated quota from outside: the simulator's charged-token counters, sampled by a
separate process, and the tokens charged in each fixed quota minute.

The simulator's windows are fixed and anchored at ``POST /_sim/reset``; the run's clock starts
right after that call. Besides regular samples (for the plots), the sampler takes one sample
``EDGE_S`` before every window boundary, so the tokens charged in window k are the difference
of two such samples, with no interpolation: requests that wait for a window to open (retry-after)
land at the start of the new window and are counted there. The sampler is its own process
(``python -m bench._quota``, sharing ``time.monotonic`` with its parent) so that a busy event
loop in the benchmark process cannot delay a sample past the edge it is meant to precede.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from typing import Any

__all__ = ["EDGE_S", "QuotaSampler", "rate_series", "window_totals"]

EDGE_S = 0.08
Sample = tuple[
    float, int, int, int
]  # (t, tokens_charged, requests, throttled), summed over regions


class QuotaSampler:
    """Samples the ``/_sim/stats`` of ``regions`` every ``every_s`` and just before each window edge."""

    def __init__(
        self, sim: Any, regions: Sequence[str], minute_s: float, budget: Any, every_s: float = 0.2
    ) -> None:
        self._sim = sim
        self._endpoints = [sim.endpoint(r) for r in regions]
        self._regions = tuple(regions)
        self._minute = minute_s
        self._every = every_s
        self._budget = budget
        self.samples: list[Sample] = []
        self.edges: dict[int, int] = {}  # window k -> tokens charged by (k+1)*M - EDGE_S
        self.t0 = time.monotonic()
        self._proc: subprocess.Popen[str] | None = None
        self._reader: threading.Thread | None = None

    def start(self, t0: float) -> None:
        from ._harness import PY, ROOT, child_env

        self.t0 = t0
        cmd = [
            PY,
            "-m",
            "bench._quota",
            "--t0",
            repr(t0),
            "--minute",
            str(self._minute),
            "--every",
            str(self._every),
            "--for-s",
            str(max(1.0, self._budget.remaining())),
        ]
        for endpoint in self._endpoints:
            cmd += ["--endpoint", endpoint]
        self._proc = subprocess.Popen(
            cmd,
            cwd=ROOT,
            env=child_env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        self._reader = threading.Thread(target=self._read, name="quota-reader", daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self._proc is not None and self._proc.stdout is not None
        for line in self._proc.stdout:
            try:
                row = json.loads(line)
            except ValueError:
                continue
            self.samples.append((row["t"], row["tokens"], row["requests"], row["throttled"]))
            if row.get("edge") is not None:
                self.edges[int(row["edge"])] = row["tokens"]

    def stop(self) -> None:
        if self._proc is not None:
            self._proc.terminate()
            try:
                self._proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait(timeout=5)
        if self._reader is not None:
            self._reader.join(timeout=5)
        stats = [self._sim.stats(r) for r in self._regions]
        self.samples.append(
            (
                time.monotonic() - self.t0,
                sum(s["tokens_charged"] for s in stats),
                sum(s["requests"] for s in stats),
                sum(s["throttled"] for s in stats),
            )
        )


def window_totals(edges: dict[int, int], wall: float, minute_s: float) -> list[int]:
    """Tokens charged in each complete quota minute [k*M, (k+1)*M) that ended before ``wall``."""
    out = []
    prev = 0
    for k in range(int(wall // minute_s)):
        if k not in edges:
            break
        out.append(edges[k] - prev)
        prev = edges[k]
    return out


def rate_series(samples: Sequence[Sample]) -> list[tuple[float, float]]:
    """Charged tokens per second between consecutive samples: (t, rate)."""
    out = []
    prev_t, prev_tokens = 0.0, 0
    for t, tokens, _, _ in samples:
        if t - prev_t > 1e-6:
            out.append((round(t, 3), round((tokens - prev_tokens) / (t - prev_t), 1)))
        prev_t, prev_tokens = t, tokens
    return out


def _sample_loop(
    t0: float, minute: float, every: float, for_s: float, endpoints: list[str]
) -> None:
    from aoai_sim.control import RegionControl

    controls = [RegionControl(e, timeout=5) for e in endpoints]
    next_regular, k = every, 0
    end = t0 + for_s
    for _ in range(1_000_000):
        edge_at = (k + 1) * minute - EDGE_S
        due = min(next_regular, edge_at)
        delay = t0 + due - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        if time.monotonic() > end:
            return
        try:
            stats = [c.stats() for c in controls]
        except OSError:
            continue
        row = {
            "t": round(time.monotonic() - t0, 4),
            "tokens": sum(s["tokens_charged"] for s in stats),
            "requests": sum(s["requests"] for s in stats),
            "throttled": sum(s["throttled"] for s in stats),
            "edge": None,
        }
        if due == edge_at:
            row["edge"] = k
            k += 1
        else:
            next_regular += every
        print(json.dumps(row), flush=True)


def _main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench._quota")
    parser.add_argument(
        "--t0", type=float, required=True, help="the parent's time.monotonic() at the reset"
    )
    parser.add_argument("--minute", type=float, required=True)
    parser.add_argument("--every", type=float, default=0.2)
    parser.add_argument("--for-s", type=float, required=True)
    parser.add_argument("--endpoint", action="append", required=True)
    args = parser.parse_args(argv)
    try:
        _sample_loop(args.t0, args.minute, args.every, args.for_s, args.endpoint)
    except (KeyboardInterrupt, BrokenPipeError):
        pass
    return 0


if __name__ == "__main__":
    sys.exit(_main())
