"""Per-caller limits (``GATEWAY_CALLER_LIMITS``): tokens per minute and per month, enforced
across instances through a Table Storage row per caller (ETag-guarded), before any upstream call:
``CallerQuotas`` is the gateway's admission hook (``Gateway(admission=...)``).

Built on the same Table pattern as the deployments' shared quota ledger (``WindowStore``
behind an interface, so it can move onto that ledger's store once both are on one branch).
"""

from shared.settings import CallerLimit, CallerLimits, load_caller_limits

from ._errors import CallerBudgetExhausted, CallerRateLimited
from ._quotas import CallerQuotas, month_of, next_month
from ._store import InMemoryWindowStore, TableWindowStore, WindowConflict, WindowStore

__all__ = [
    "CallerBudgetExhausted",
    "CallerLimit",
    "CallerLimits",
    "CallerQuotas",
    "CallerRateLimited",
    "InMemoryWindowStore",
    "TableWindowStore",
    "WindowConflict",
    "WindowStore",
    "load_caller_limits",
    "month_of",
    "next_month",
]
