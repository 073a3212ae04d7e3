"""Where the scale-out share goes, without the machine's noise: the real quota ledger
(``DeploymentQuotaLedger``/``SharedQuota`` and the pure planner, one ``InMemoryLedgerStore`` row) driven
by a simulated clock, K instances, one deployment of the scale-out benchmark's size (32,000
tokens per 20 s quota minute, 32 requests per request window), a backlog that always has calls
waiting (16 at a time per instance, each 334 tokens, 0.1 s upstream) and Poisson interactive
chats at 10 % of the quota (111 tokens) to random instances, waiting at most 2 s.

``python -m bench.ledger_share [--k 1 8] [--minutes 12] [--seed 1]`` prints, per K, the share
(as the benchmark computes it, over every minute after the first) and where the rest of each
minute went: leased but never spent (``expired``, by lane), never leased (``unleased``: the
backlog's reserve and the tail of a window nobody leased), upstream 429s and interactive calls
that waited past 2 s.

What it leaves out (and the benchmark includes): storage latency and lost ETag races (the
in-memory row answers at once, so no lease ever races), the Service Bus path's take-up latency
(a job here calls as soon as a worker slot is free), CPU contention. So its losses are the
ledger's *structural* ones: what leases cost at perfect storage and infinite CPU.
"""

from __future__ import annotations

import argparse
import asyncio
import heapq
import itertools
import math
import random
from dataclasses import dataclass, field
from typing import Any

from shared.pacing import (
    BACKLOG,
    INTERACTIVE,
    DeploymentQuotaLedger,
    InMemoryLedgerStore,
    LedgerConfig,
    SharedQuota,
)

__all__ = ["Model", "main", "simulate"]

MINUTE_S = 20.0
TPM = 32_000
RPM = TPM * 6 // 1000  # 192: 32 per request window
JOB = 334
CHAT = 111
LATENCY_S = 0.1
WORKERS = 16
INTERACTIVE_SHARE = 0.10
INTERACTIVE_WAIT_S = 2.0
STEP_S = 0.01
KEY = "bench-chat"


class _Store(InMemoryLedgerStore):
    def peek(self, key: str) -> tuple[Any, str | None]:
        found = self._rows.get(key)
        return (None, None) if found is None else found


@dataclass
class Model:
    """The upstream's fixed windows (phase 0) and what they charged."""

    tokens: dict[int, int] = field(default_factory=dict)
    backlog: dict[int, int] = field(default_factory=dict)
    interactive: dict[int, int] = field(default_factory=dict)
    requests: dict[int, int] = field(default_factory=dict)
    throttled: int = 0
    calls: int = 0

    def send(self, t: float, cost: int, lane: str) -> bool:
        tw, rw = math.floor(t / MINUTE_S), math.floor(t / (MINUTE_S / 6))
        self.calls += 1
        if self.tokens.get(tw, 0) + cost > TPM or self.requests.get(rw, 0) + 1 > RPM // 6:
            self.throttled += 1
            return False
        self.tokens[tw] = self.tokens.get(tw, 0) + cost
        self.requests[rw] = self.requests.get(rw, 0) + 1
        by_lane = self.backlog if lane == BACKLOG else self.interactive
        by_lane[tw] = by_lane.get(tw, 0) + cost
        return True

    def headers(self, t: float) -> dict[str, str]:
        tw, rw = math.floor(t / MINUTE_S), math.floor(t / (MINUTE_S / 6))
        return {
            "x-ratelimit-reset-tokens": f"{(tw + 1) * MINUTE_S - t:.3f}s",
            "x-ratelimit-reset-requests": f"{(rw + 1) * MINUTE_S / 6 - t:.3f}s",
            "x-ratelimit-remaining-tokens": str(TPM - self.tokens.get(tw, 0)),
            "x-ratelimit-remaining-requests": str(RPM // 6 - self.requests.get(rw, 0)),
            "x-ratelimit-limit-requests": str(RPM // 6),
        }


async def simulate(
    k: int,
    minutes: int,
    seed: int = 1,
    config: LedgerConfig | None = None,
    late_s: float = 0.0,
) -> dict[str, Any]:
    """K instances for ``minutes`` quota minutes; the figures described in the module doc.
    ``late_s``: a call reaches the upstream a uniform 0 to ``late_s`` after it is sent (a
    loaded machine), so one sent just before a window's end may be counted in the next."""
    clock = [0.0]
    rng = random.Random(seed)
    late = random.Random(seed + 1)  # its own stream: late_s=0 leaves the arrivals alone
    store = _Store()
    quotas: list[SharedQuota] = []
    ledgers: list[DeploymentQuotaLedger] = []

    async def no_sleep(_: float) -> None:
        return None

    for i in range(k):
        ledger = DeploymentQuotaLedger(
            store, instance=f"i{i}", now=lambda: clock[0], config=config, sleep=no_sleep
        )
        ledgers.append(ledger)
        quotas.append(ledger.attach(KEY, tpm=TPM, rpm=RPM, minute_s=MINUTE_S))
    up = Model()
    # completions: (time, seq, instance, sent_at, lane)
    done: list[tuple[float, int, int, float, str]] = []
    seq = itertools.count()
    busy = [0] * k
    backlog_next = [0.0] * k  # a worker slot's next try
    waiting: list[list[tuple[float, float]]] = [[] for _ in range(k)]  # (arrived, next try)
    chat_rate = INTERACTIVE_SHARE * TPM / MINUTE_S / CHAT
    next_chat = rng.expovariate(chat_rate)
    gave_up = 0
    waits: list[float] = []
    unleased: dict[int, int] = {}
    end = minutes * MINUTE_S
    steps = int(end / STEP_S)
    for step in range(steps + 1):
        t = clock[0] = step * STEP_S
        row, _ = store.peek(KEY)
        if row is not None:  # what the row had leased of its window, at most
            w = row.token_window
            unleased[w] = min(unleased.get(w, TPM), max(0, TPM - row.tokens))
        while done and done[0][0] <= t:
            _, _, i, sent, lane = heapq.heappop(done)
            quotas[i].observe(sent, t, up.headers(sent))
            if lane == BACKLOG:
                busy[i] -= 1
        while next_chat <= t:
            waiting[rng.randrange(k)].append((next_chat, next_chat))
            next_chat += rng.expovariate(chat_rate)
        for i, quota in enumerate(quotas):
            keep = []
            for arrived, at in waiting[i]:
                if at > t:
                    keep.append((arrived, at))
                    continue
                if t - arrived > INTERACTIVE_WAIT_S:
                    gave_up += 1
                    continue
                ready = await _ready(quota, t, CHAT, INTERACTIVE)
                if ready > t:
                    keep.append((arrived, ready))
                    continue
                quota.charge(t, CHAT, INTERACTIVE)
                up.send(t + late.uniform(0.0, late_s), CHAT, INTERACTIVE)
                waits.append(t - arrived)
                heapq.heappush(done, (t + LATENCY_S, next(seq), i, t, INTERACTIVE))
            waiting[i] = keep
            while busy[i] < WORKERS and backlog_next[i] <= t:
                ready = await _ready(quota, t, JOB, BACKLOG)
                if ready > t:
                    backlog_next[i] = ready
                    break
                quota.charge(t, JOB, BACKLOG)
                up.send(t + late.uniform(0.0, late_s), JOB, BACKLOG)
                busy[i] += 1
                heapq.heappush(done, (t + LATENCY_S, next(seq), i, t, BACKLOG))
    judged = range(1, minutes)
    stats = {key: sum(ledger.stats[key] for ledger in ledgers) for key in ledgers[0].stats}
    backlog = sum(up.backlog.get(w, 0) for w in judged)
    inter = sum(up.interactive.get(w, 0) for w in judged)
    quota_tokens = TPM * len(judged)
    return {
        "k": k,
        "minutes": minutes,
        "share": round(backlog / (quota_tokens - inter), 4),
        "interactive_share_of_quota": round(inter / quota_tokens, 4),
        "unused_share_of_quota": round(1 - (backlog + inter) / quota_tokens, 4),
        "unleased_share_of_quota": round(sum(unleased.get(w, 0) for w in judged) / quota_tokens, 4),
        # leased in a judged minute and never spent in it (the row's count less the charges)
        "leased_unspent_share_of_quota": round(
            sum(
                TPM - unleased.get(w, TPM) - up.backlog.get(w, 0) - up.interactive.get(w, 0)
                for w in judged
            )
            / quota_tokens,
            4,
        ),
        "expired_share_of_quota": round(stats["expired_tokens"] / (TPM * minutes), 4),
        "expired_backlog_share_of_quota": round(
            stats.get("expired_backlog_tokens", 0) / (TPM * minutes), 4
        ),
        "upstream_429": up.throttled,
        "upstream_calls": up.calls,
        "interactive_gave_up": gave_up,
        "interactive_waited_over_0_5_s": sum(1 for w in waits if w > 0.5),
        "interactive_wait_max_s": round(max(waits, default=0.0), 2),
        "per_minute": [
            {
                "minute": w,
                "backlog": up.backlog.get(w, 0),
                "interactive": up.interactive.get(w, 0),
                "unleased": unleased.get(w),
            }
            for w in range(minutes)
        ],
        "ledger": {
            key: stats[key] for key in ("leases", "refusals", "leased_tokens", "expired_tokens")
        },
    }


async def _ready(quota: SharedQuota, t: float, cost: int, lane: str) -> float:
    """``t`` when a call of ``cost`` may go now (leasing if it must), else when to try again."""
    at = quota.available_at(t, cost, lane)
    if at > t:
        return at
    if quota.needs_lease(t, cost, lane):
        await quota.top_up(t, cost, lane)
        if quota.needs_lease(t, cost, lane):
            return max(quota.available_at(t, cost, lane), t + STEP_S)
    return t


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.ledger_share")
    parser.add_argument("--k", type=int, nargs="+", default=[1, 8])
    parser.add_argument("--minutes", type=int, default=12)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    for k in args.k:
        r = asyncio.run(simulate(k, args.minutes, args.seed))
        print({key: v for key, v in r.items() if key != "per_minute"})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
