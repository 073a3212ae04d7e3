"""The backlog's batch lane: jobs with ``lane: batch`` (or ``auto`` with time to spare) go through
Azure OpenAI's Global Batch at half the price. See docs/design/backlog.md ("The batch lane").

The lane lives here; the backlog reaches it through a few delimited hooks: ``JobMessage.lane``,
``JobServices.batch_lane``, the worker's hand-over (``Outcome.BATCHED``), the timer's ``tick`` and
the status endpoint's ``batch`` object (typed in ``shared.jobs`` as ``LaneHooks``). The public
names are what the composition root plugs in; this package's tests use the private modules.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..aoai import ClientProvider
from ._lane import BatchLane, batch_targets
from ._store import LaneStore

if TYPE_CHECKING:
    from azure.data.tables.aio import TableClient

    from ..jobs import Checkpoint, PayloadStore
    from ..settings import BacklogSettings, GatewaySettings
    from ..usage import UsageRecorder

__all__ = ["BatchLane", "batch_targets", "build_batch_lane"]


def build_batch_lane(
    settings: BacklogSettings,
    gateway_settings: GatewaySettings,
    table: TableClient,
    payloads: PayloadStore,
    *,
    checkpoint: Checkpoint | None = None,
    usage: UsageRecorder | None = None,
) -> BatchLane | None:
    """The lane, or None when no region names a Global Batch deployment."""
    targets = batch_targets(gateway_settings)
    if not targets:
        return None

    clients = ClientProvider(gateway_settings)
    lane = BatchLane(
        settings,
        targets,
        LaneStore(table),
        payloads,
        clients.get,
        checkpoint=checkpoint,
        usage=usage,
    )
    lane.closers = (clients.aclose, table.close)
    return lane
