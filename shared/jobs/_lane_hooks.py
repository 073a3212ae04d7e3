"""What the backlog needs of the batch lane (``shared.batchlane.BatchLane`` is the one): the
hooks the worker, the timer, the status route and a cancel call. Typed here so ``jobs`` never
imports ``batchlane``; the composition root plugs the lane in (``LanePlugin``)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from ._contract import JobMessage
    from ._core import JobServices
    from ._records import JobRecord

__all__ = ["LaneBatch", "LaneHooks", "LaneRows"]


class LaneBatch(Protocol):
    """One batch of the lane, as a job's status shows it."""

    def public(self) -> dict[str, Any]: ...


class LaneRows(Protocol):
    """The lane's rows, as far as the backlog reads or drops them."""

    async def get_batch(self, batch_ref: str) -> LaneBatch | None: ...

    async def drop_pending(self, alias: str, job_ids: list[str]) -> None: ...


class LaneHooks(Protocol):
    @property
    def store(self) -> LaneRows: ...

    def wants(self, job: JobMessage, now: float) -> bool:
        """Whether ``job`` goes to the lane instead of a model call now."""
        ...

    async def accept(self, svc: JobServices, job: JobMessage, record: JobRecord) -> None:
        """Take ``job`` into the lane (the row becomes ``batched``)."""
        ...

    async def tick(self, svc: JobServices) -> object:
        """The timer's turn: assemble, submit, poll and finish batches."""
        ...

    async def aclose(self) -> None: ...
