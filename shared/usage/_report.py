"""Usage rows summed by the requested dimensions, priced from the price table, as JSON or CSV."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Sequence
from typing import Any

from shared.settings import PriceTable

from ._types import Counts, UsageKey, hour_start

__all__ = ["GROUPS", "cost_of", "summarize", "to_csv"]

GROUPS = ("caller", "alias", "deployment", "hour", "lane")
_COLUMNS = (
    "requests",
    "input_tokens",
    "cached_input_tokens",
    "output_tokens",
    "reasoning_output_tokens",
    "total_tokens",
    "cost",
)


def cost_of(key: UsageKey, counts: Counts, prices: PriceTable) -> float | None:
    """The cost of one row, or None when neither its deployment nor its alias has a price."""
    price = prices.price(key.alias, key.deployment)
    if price is None:
        return None
    cost = price.cost(counts.input_tokens, counts.cached_input_tokens, counts.output_tokens)
    return cost * prices.batch_discount if key.lane == "batch" else cost


def _value(key: UsageKey, group: str) -> str:
    if group == "hour":
        return hour_start(key.hour).isoformat().replace("+00:00", "Z")
    return str(getattr(key, group))


def summarize(
    rows: Iterable[tuple[UsageKey, Counts]], group_by: Sequence[str], prices: PriceTable
) -> dict[str, Any]:
    """``{"data": [one dict per group], "total": {...}}``; ``cost`` is None for a group with an
    unpriced row (``unpriced_tokens`` says how many tokens had no price)."""
    groups: dict[tuple[str, ...], dict[str, Any]] = {}
    total: dict[str, Any] = {"counts": Counts(), "cost": 0.0, "unpriced_tokens": 0}
    for key, counts in rows:
        label = tuple(_value(key, g) for g in group_by)
        entry = groups.setdefault(label, {"counts": Counts(), "cost": 0.0, "unpriced_tokens": 0})
        cost = cost_of(key, counts, prices)
        for bucket in (entry, total):
            bucket["counts"].add(counts)
            if cost is None:
                bucket["unpriced_tokens"] += counts.total_tokens
            else:
                bucket["cost"] += cost
    return {
        "data": [
            {**dict(zip(group_by, label, strict=True)), **_figures(entry)}
            for label, entry in sorted(groups.items())
        ],
        "total": _figures(total),
    }


def _figures(entry: dict[str, Any]) -> dict[str, Any]:
    counts: Counts = entry["counts"]
    return {
        "requests": counts.requests,
        "input_tokens": counts.input_tokens,
        "cached_input_tokens": counts.cached_input_tokens,
        "output_tokens": counts.output_tokens,
        "reasoning_output_tokens": counts.reasoning_output_tokens,
        "total_tokens": counts.total_tokens,
        "cost": round(entry["cost"], 6),
        "unpriced_tokens": entry["unpriced_tokens"],
    }


def to_csv(report: dict[str, Any], group_by: Sequence[str]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    columns = [*group_by, *_COLUMNS, "unpriced_tokens"]
    writer.writerow(columns)
    for row in report["data"]:
        writer.writerow([row.get(c, "") for c in columns])
    return out.getvalue()
