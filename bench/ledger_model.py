"""The quota ledger past this machine: a worked model driven by the scale-out benchmark's figures.

``python -m bench.ledger_model [results.json]`` prints the inputs it measured (per ledger row:
write attempts, lost ETag races, successful writes, reads per write, from
``bench/results/latest.json``'s scale-out scenarios) and the projection to K instances on Azure
(``docs/design-log/ledger-at-scale.md`` explains it). Nothing here is measured on Azure: the
read-modify-write window on Azure Table storage is an assumption, shown at three values.

The model. One row per deployment is read, planned and written under its ETag. A write loses
when another instance wrote the row between its read and its write, a window of ``T`` seconds.
With write attempts arriving at ``A`` per second, a write loses with probability
``L = 1 - exp(-A * T)`` (the others' attempts in its window; Poisson arrivals). The successful
writes a row can commit are then ``S = A * exp(-A * T)``, which peaks at ``1 / (e * T)`` when
``A * T = 1`` (slotted-ALOHA's ceiling): past that demand, more writers only lose more races.
"""

from __future__ import annotations

import json
import math
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["Measured", "Projection", "calibrate", "project", "solve_attempts"]

E = math.e
REQUEST_WINDOW_S = 10.0  # Azure's request window: a sixth of a 60 s quota minute
BACKOFF_FIRST, BACKOFF_CAP = 0.005, 0.05  # x the request window (LedgerConfig's defaults)
BACKLOG_FACTOR, BACKLOG_ATTEMPTS, INTERACTIVE_ATTEMPTS = 4.0, 4, 12
LEASE_TIMEOUT_S = 2.0  # GATEWAY_LEDGER_TIMEOUT_S; retries stop at half of it


@dataclass(frozen=True)
class Measured:
    """One scale-out scenario's ledger figures, per row (deployment) and second of its clock."""

    k: int
    wall_s: float
    minute_s: float
    rows: int
    share: float
    attempts_per_s: float  # write attempts per row per second
    loss: float  # lost ETag races / write attempts
    writes_per_instance_window: float  # successful writes per instance, row and token window
    reads_per_attempt: float
    window_s: float  # the read-modify-write window T implied by the loss (None-like: 0 at K=1)


def calibrate(scenario: dict[str, Any], minute_s: float, rows: int) -> Measured:
    st = scenario["ledger_stats"]
    wall, k = scenario["wall_s"], scenario["k"]
    attempts = st["writes"] / wall / rows
    loss = st["conflicts"] / st["writes"]
    won = st["writes"] - st["conflicts"]
    windows = wall / minute_s
    # the others' attempts: (K - 1) / K of the row's; at K = 1 the two lanes of one instance
    others = attempts * (k - 1) / k if k > 1 else attempts / 2
    return Measured(
        k=k,
        wall_s=wall,
        minute_s=minute_s,
        rows=rows,
        share=scenario["share"],
        attempts_per_s=attempts,
        loss=loss,
        writes_per_instance_window=won / (k * rows * windows),
        reads_per_attempt=st["reads"] / st["writes"],
        window_s=-math.log(1 - loss) / others,
    )


def solve_attempts(demand: float, window_s: float) -> float | None:
    """The write attempts per second that commit ``demand`` successful writes per second when a
    write loses with ``1 - exp(-A * T)``: the smaller root of ``A * exp(-A * T) = demand``, or
    None past the row's ceiling ``1 / (e * T)`` (no rate of attempts commits that much)."""
    if demand * window_s > 1 / E:
        return None
    lo, hi = 0.0, 1.0 / window_s  # A * exp(-A T) rises on [0, 1/T]
    for _ in range(200):
        mid = (lo + hi) / 2
        if mid * math.exp(-mid * window_s) < demand:
            lo = mid
        else:
            hi = mid
    return (lo + hi) / 2


def _lease_latency(loss: float, window_s: float, factor: float, attempts: int) -> float:
    """Expected seconds to a lease: a read and a write (``window_s``) per attempt, plus the
    back-off after each lost race (a random half to whole of a wait doubling from 0.5 % to 5 %
    of the request window; a backlog lease's ``factor`` longer), stopped after ``attempts`` or
    at half the lease timeout (then the lane holds: counted at that cost)."""
    total, p_reach, waited = 0.0, 1.0, 0.0
    for n in range(attempts):
        cost = waited + window_s * (n + 1)
        total += p_reach * (1 - loss) * min(cost, LEASE_TIMEOUT_S / 2)
        p_reach *= loss
        waited += 0.75 * factor * min(BACKOFF_FIRST * 2**n, BACKOFF_CAP) * REQUEST_WINDOW_S
    return total + p_reach * min(waited + window_s * attempts, LEASE_TIMEOUT_S / 2)


@dataclass(frozen=True)
class Projection:
    k: int
    writes_per_instance_window: float
    window_s: float
    demand_per_s: float  # successful writes a row must commit per second
    ceiling_per_s: float  # 1 / (e T)
    attempts_per_s: float | None
    loss: float | None
    tx_per_row_s: float | None
    backlog_give_up: float | None  # a backlog lease losing all its attempts
    interactive_give_up: float | None
    interactive_lease_s: float | None
    backlog_lease_s: float | None


def project(
    k: int, writes_per_instance_window: float, window_s: float, reads_per_attempt: float
) -> Projection:
    """One row on Azure (60 s quota minute) written by ``k`` busy instances."""
    demand = k * writes_per_instance_window / 60.0
    attempts = solve_attempts(demand, window_s)
    loss = None if attempts is None else 1 - math.exp(-attempts * window_s)
    return Projection(
        k=k,
        writes_per_instance_window=writes_per_instance_window,
        window_s=window_s,
        demand_per_s=demand,
        ceiling_per_s=1 / (E * window_s),
        attempts_per_s=attempts,
        loss=loss,
        tx_per_row_s=None if attempts is None else attempts * (1 + reads_per_attempt),
        backlog_give_up=None if loss is None else loss**BACKLOG_ATTEMPTS,
        interactive_give_up=None if loss is None else loss**INTERACTIVE_ATTEMPTS,
        interactive_lease_s=None
        if loss is None
        else _lease_latency(loss, window_s, 1.0, INTERACTIVE_ATTEMPTS),
        backlog_lease_s=None
        if loss is None
        else _lease_latency(loss, window_s, BACKLOG_FACTOR, BACKLOG_ATTEMPTS),
    )


def _f(value: float | None, spec: str) -> str:
    return "saturated" if value is None else format(value, spec)


def main(argv: list[str]) -> int:
    path = Path(argv[0]) if argv else Path(__file__).parent / "results" / "latest.json"
    scaleout = json.loads(path.read_text(encoding="utf-8"))["benchmarks"]["scaleout"]
    setup = scaleout["setup"]
    rows = len(setup["regions"])
    measured = [
        calibrate(s, setup["minute_s"], rows)
        for s in scaleout["scenarios"].values()
        if s.get("ledger_stats")
    ]
    print("measured (bench clock, quota minute %gs), per row:" % setup["minute_s"])
    print(
        "K | attempts/s | lost races | won writes / instance / window | reads/attempt | T s | share"
    )
    for m in measured:
        print(
            f"{m.k} | {m.attempts_per_s:.2f} | {m.loss:.3f} | {m.writes_per_instance_window:.1f}"
            f" | {m.reads_per_attempt:.2f} | {m.window_s:.3f} | {m.share}"
        )
    reads = max(m.reads_per_attempt for m in measured)
    print("\nprojected on Azure (60 s quota minute), one row written by K busy instances:")
    print(
        "K | won writes/inst/window | T s | demand/s | ceiling/s | attempts/s | lost races"
        " | tx/s per row | backlog gives up | interactive gives up | interactive lease s"
        " | backlog lease s"
    )
    for k in (8, 50, 200):
        for s in (6.0, 20.0):
            for t in (0.02, 0.05, 0.15):
                p = project(k, s, t, reads)
                print(
                    f"{k} | {s:g} | {t:g} | {p.demand_per_s:.1f} | {p.ceiling_per_s:.1f}"
                    f" | {_f(p.attempts_per_s, '.1f')} | {_f(p.loss, '.2f')}"
                    f" | {_f(p.tx_per_row_s, '.0f')} | {_f(p.backlog_give_up, '.3f')}"
                    f" | {_f(p.interactive_give_up, '.4f')} | {_f(p.interactive_lease_s, '.3f')}"
                    f" | {_f(p.backlog_lease_s, '.3f')}"
                )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
