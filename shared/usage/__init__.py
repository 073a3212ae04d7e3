"""Usage and cost per caller, alias, deployment and hour, in Table Storage.

``UsageRecorder`` is an observer on the access layer's seam (counts in memory, written in
batches off the call's path); ``TableUsageStore`` holds the rows; ``summarize`` sums and prices
them for ``GET /api/v1/usage`` and the ops surface.
"""

from shared.settings import Price, PriceTable, UsageSettings, load_usage_settings

from ._recorder import UsageRecorder
from ._report import GROUPS, cost_of, summarize, to_csv
from ._store import InMemoryUsageStore, TableUsageStore, UsageStore
from ._types import Counts, UsageKey, hour_of, hour_start

__all__ = [
    "GROUPS",
    "Counts",
    "InMemoryUsageStore",
    "Price",
    "PriceTable",
    "TableUsageStore",
    "UsageKey",
    "UsageRecorder",
    "UsageSettings",
    "UsageStore",
    "cost_of",
    "hour_of",
    "hour_start",
    "load_usage_settings",
    "summarize",
    "to_csv",
]
