"""Pacing: how much each deployment may be sent, and when.

* ``DeploymentBudget`` (``_windows``): a deployment's TPM and RPM windows on this instance,
  corrected by Azure's ``x-ratelimit-*`` headers;
* ``DeploymentQuotaLedger`` (``_quota_ledger``): the deployment quota shared by every instance,
  a Table Storage row per deployment from which each instance leases slices of the current
  windows, by lane (interactive first, the backlog after); ``_lease_plan`` sizes the leases
  (pure, no I/O) and ``_ledger_store`` reads and writes the rows (ETag-guarded);
* ``cooldown_from_headers`` (``_cooldown``): how long a deployment rests after a 429.

Below ``shared.aoai``, which routes requests and counts what they cost (``request_tokens``):
nothing here imports it.
"""

from ._cooldown import cooldown_from_headers, parse_duration
from ._ledger_store import (
    InMemoryLedgerStore,
    LedgerConflict,
    LedgerRow,
    LedgerStore,
    TableLedgerStore,
)
from ._quota_ledger import BACKLOG, INTERACTIVE, DeploymentQuotaLedger, LedgerConfig, SharedQuota
from ._windows import DeploymentBudget, SlidingWindow

__all__ = [
    "BACKLOG",
    "INTERACTIVE",
    "DeploymentBudget",
    "DeploymentQuotaLedger",
    "InMemoryLedgerStore",
    "LedgerConfig",
    "LedgerConflict",
    "LedgerRow",
    "LedgerStore",
    "SharedQuota",
    "SlidingWindow",
    "TableLedgerStore",
    "cooldown_from_headers",
    "parse_duration",
]
