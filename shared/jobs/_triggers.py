"""The backlog's trigger wiring, written once: each trigger's input -> the backlog call.

``function_app.py`` calls these with the composition root's backlog; the end-to-end tests and
the benchmarks drive the same ``BacklogTriggers`` (through ``devserver.queues.QueueSide``,
``by_function``), wrapping a handler where they count or inject faults. Returning completes the
message; raising makes the host redeliver it.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from ._functions_adapter import delivery_from_servicebus, text_from_queue_message

if TYPE_CHECKING:
    from ._redrive import TimerReport
    from ._service import Backlog

__all__ = ["BacklogTriggers", "TriggerHandler"]

logger = logging.getLogger(__name__)

TriggerHandler = Callable[[Any], Awaitable[Any]]


class BacklogTriggers:
    """The backlog's four trigger handlers over ``backlog`` (a backlog, or how to get the
    composition root's: ``shared.runtime.backlog``)."""

    def __init__(self, backlog: Backlog | Callable[[], Backlog]) -> None:
        self._backlog = backlog

    def _get(self) -> Backlog:
        found = self._backlog
        return found() if callable(found) else found

    async def worker(self, msg: Any) -> str:
        """``backlog_worker``: run one job (success, permanent failure, parked: the message
        completes; a transient failure raises)."""
        return await self._get().process(delivery_from_servicebus(msg))

    async def dead_letters(self, msg: Any) -> str:
        """``backlog_dead_letters``: re-drive a bounded number of times, else a terminal failure."""
        return await self._get().process_dead_letter(delivery_from_servicebus(msg))

    async def timer(self, _timer: Any = None) -> TimerReport:
        """``backlog_timer``: probe regions, re-drive parked jobs, poison the hopeless ones."""
        report = await self._get().run_timer()
        if not report.ok:
            logger.warning("timer partial failure: %s", report.as_dict())
        return report

    async def parking_poison(self, msg: Any) -> str:
        """``parking_poison``: a parked job the timer gave up on becomes a terminal failure."""
        text, dequeue_count = text_from_queue_message(msg)
        return await self._get().process_parking_poison(text, dequeue_count=dequeue_count)

    def by_function(self) -> dict[str, TriggerHandler]:
        """The handlers by the function names ``function_app.py`` gives them."""
        return {
            "backlog_worker": self.worker,
            "backlog_dead_letters": self.dead_letters,
            "backlog_timer": self.timer,
            "parking_poison": self.parking_poison,
        }
