"""Usage and cost per caller, alias, deployment and hour, in Table Storage.

``CallerTokenCounter`` is the one per-caller token counter on the access layer's seam, feeding
``UsageRecorder`` (and the per-caller limits, ``shared.callerlimits``); ``UsageRecorder`` (counts in memory, written in
batches off the call's path); ``TableUsageStore`` holds the rows; ``summarize`` sums and prices
them for ``GET /api/v1/usage`` and the ops surface.
"""

from shared.settings import UsageSettings, load_usage_settings

from ._counter import CallerTokenCounter, CallerTokens, TokenSink, caller_tokens
from ._recorder import UsageRecorder
from ._report import GROUPS, summarize, to_csv
from ._store import InMemoryUsageStore, TableUsageStore, UsageStore
from ._types import Counts, UsageKey, hour_of

__all__ = [
    "GROUPS",
    "CallerTokenCounter",
    "CallerTokens",
    "Counts",
    "InMemoryUsageStore",
    "TableUsageStore",
    "TokenSink",
    "UsageKey",
    "UsageRecorder",
    "UsageSettings",
    "UsageStore",
    "caller_tokens",
    "hour_of",
    "load_usage_settings",
    "summarize",
    "to_csv",
]
