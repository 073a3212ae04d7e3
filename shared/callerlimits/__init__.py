"""Per-caller limits (``GATEWAY_CALLER_LIMITS``): tokens per minute and per month, enforced
across instances through a Table Storage row per caller (ETag-guarded), before any upstream call:
``CallerLimiter`` is the gateway's admission hook (``Gateway(admission=...)``).

Not to be confused with the deployment quota ledger (``shared.pacing``): that one shares each
deployment's Azure quota among instances; this one holds each caller to its own limits. Both use
the same ETag-guarded Table pattern (``WindowStore`` behind an interface).
"""

from shared.settings import CallerLimit, CallerLimits, load_caller_limits

from ._errors import CallerBudgetExhausted, CallerRateLimited
from ._limiter import CallerLimiter, month_of, next_month
from ._store import InMemoryWindowStore, TableWindowStore, WindowConflict, WindowStore

__all__ = [
    "CallerBudgetExhausted",
    "CallerLimit",
    "CallerLimiter",
    "CallerLimits",
    "CallerRateLimited",
    "InMemoryWindowStore",
    "TableWindowStore",
    "WindowConflict",
    "WindowStore",
    "load_caller_limits",
    "month_of",
    "next_month",
]
