"""Percentiles, summaries and paired comparisons: the benchmark math, dependency-free and tested."""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence

__all__ = [
    "added_latency",
    "interleaved_rounds",
    "percentile",
    "ratio",
    "summarize",
    "throughput_series",
]


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0..100) with linear interpolation between closest ranks (numpy's default)."""
    if not values:
        raise ValueError("percentile of an empty sequence")
    if not 0.0 <= q <= 100.0:
        raise ValueError("q must be within 0..100")
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q / 100.0
    low = math.floor(pos)
    high = min(low + 1, len(ordered) - 1)
    frac = pos - low
    return ordered[low] + (ordered[high] - ordered[low]) * frac


def summarize(values: Sequence[float], digits: int = 4) -> dict[str, float]:
    """n, mean, p50, p90, p99 and max, rounded."""
    if not values:
        return {"n": 0}
    return {
        "n": len(values),
        "mean": round(sum(values) / len(values), digits),
        "p50": round(percentile(values, 50), digits),
        "p90": round(percentile(values, 90), digits),
        "p99": round(percentile(values, 99), digits),
        "max": round(max(values), digits),
    }


def added_latency(
    base: Sequence[float], other: Sequence[float], digits: int = 4
) -> dict[str, float]:
    """What ``other`` adds over ``base`` (paired samples, same index = same round).

    ``p50``/``p99``: difference of the two distributions' percentiles (the headline figures).
    ``paired_median``: median of the per-round differences, which cancels drift common to both arms.
    """
    if len(base) != len(other) or not base:
        raise ValueError("paired samples must be non-empty and of equal length")
    diffs = [o - b for b, o in zip(base, other)]
    return {
        "p50": round(percentile(other, 50) - percentile(base, 50), digits),
        "p99": round(percentile(other, 99) - percentile(base, 99), digits),
        "paired_median": round(percentile(diffs, 50), digits),
        "n": len(diffs),
    }


def interleaved_rounds(arms: Sequence[str], rounds: int) -> Iterator[tuple[int, tuple[str, ...]]]:
    """Yield (round, order) with every arm once per round, the order rotated round by round.

    Each arm runs first, second, ... equally often, so warm caches, GC pauses and machine drift
    fall on all arms alike.
    """
    n = len(arms)
    if n == 0 or rounds < 0:
        raise ValueError("need at least one arm and a non-negative round count")
    for r in range(rounds):
        shift = r % n
        yield r, tuple(arms[shift:]) + tuple(arms[:shift])


def throughput_series(
    events: Sequence[tuple[float, float]], bucket_s: float, until_s: float
) -> list[tuple[float, float]]:
    """(t, amount) events -> [(bucket start, amount per second)] over [0, until_s)."""
    if bucket_s <= 0:
        raise ValueError("bucket_s must be positive")
    count = max(1, math.ceil(until_s / bucket_s))
    sums = [0.0] * count
    for t, amount in events:
        idx = int(t // bucket_s)
        if 0 <= idx < count:
            sums[idx] += amount
    return [(round(i * bucket_s, 3), round(s / bucket_s, 3)) for i, s in enumerate(sums)]


def ratio(a: float, b: float, digits: int = 3) -> float | None:
    """a / b, or None when b is zero."""
    return round(a / b, digits) if b else None
