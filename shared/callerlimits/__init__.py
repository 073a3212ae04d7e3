"""Per-caller limits (``GATEWAY_CALLER_LIMITS``): tokens per minute and per month, enforced
across instances through a Table Storage row per caller (ETag-guarded), before any upstream call.

Built on the same Table pattern as the deployments' shared quota ledger (``WindowStore``
behind an interface, so it can move onto that ledger's store once both are on one branch).
"""

from shared.settings import CallerLimit, CallerLimits, load_caller_limits

from ._errors import CallerBudgetExhausted, CallerRateLimited
from ._gateway import CallerLimitedGateway
from ._limiter import CallerLimiter, month_of, next_month
from ._store import InMemoryWindowStore, TableWindowStore, WindowConflict, WindowStore

__all__ = [
    "CallerBudgetExhausted",
    "CallerLimit",
    "CallerLimitedGateway",
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
