"""The usage observer: counts each finished call's tokens in memory and writes them in batches.

``call_finished`` (the access layer's observer seam) only adds to a dict: no I/O on the call's
path. The first count after a write starts one task that waits ``flush_s`` and then writes every
row that changed since (``UsageStore.write``); ``flush()`` writes at once (``aclose`` and
``read`` call it). A crash loses at most the counts of the last ``flush_s`` seconds, plus any a
failing table refused meanwhile (they are kept and written on the next try).

Counted: calls that returned a result (chat, embeddings, Responses, and streams that completed),
with the tokens Azure reported: prompt (``input``), of which cached (``prompt_tokens_details`` /
``input_tokens_details.cached_tokens``, where the response carries it), and completion
(``output``), of which reasoning (``completion_tokens_details`` /
``output_tokens_details.reasoning_tokens``); a stream the client left is counted with what was streamed (the usage seen, else
an estimate); a stream that broke off upstream reports no usage and is not counted.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING

from ._counter import CallerTokens, caller_tokens
from ._store import UsageStore
from ._types import Counts, UsageKey, hour_of

if TYPE_CHECKING:
    from shared.aoai import AttemptEvent, CallOutcome

__all__ = ["UsageRecorder"]

logger = logging.getLogger(__name__)


class UsageRecorder:
    """``CallObserver`` keeping this instance's running totals per (hour, caller, alias,
    deployment, lane). ``store`` None: counts stay in memory (single instance, tests)."""

    def __init__(
        self,
        store: UsageStore | None,
        *,
        flush_s: float = 5.0,
        now: Callable[[], float] = time.time,
        instance: str | None = None,
    ) -> None:
        self.store = store
        self.instance = instance or uuid.uuid4().hex[:12]
        self._flush_s = flush_s
        self._now = now
        self._totals: dict[UsageKey, Counts] = {}
        self._dirty: set[UsageKey] = set()
        self._task: asyncio.Task[None] | None = None
        self._lock: asyncio.Lock | None = None
        self._warned = False

    # ------------------------------------------------------------------ the seam

    def attempt_finished(self, event: AttemptEvent) -> None:
        return None

    def call_finished(self, outcome: CallOutcome) -> None:
        tokens = caller_tokens(outcome)
        if tokens is not None:
            self.count(tokens)

    def count(self, tokens: CallerTokens) -> None:
        """A finished call's tokens (from ``CallerTokenCounter``, the one counter)."""
        key = UsageKey(
            hour_of(self._now()), tokens.caller, tokens.alias, tokens.deployment, tokens.lane
        )
        self.add(key, tokens.counts.copy())

    def add(self, key: UsageKey, counts: Counts) -> None:
        total = self._totals.get(key)
        if total is None:
            total = self._totals[key] = Counts()
        total.add(counts)
        self._dirty.add(key)
        self._schedule()

    # ------------------------------------------------------------------ writing

    def _schedule(self) -> None:
        if self.store is None or self._task is not None:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return  # no loop (a synchronous caller): the next count or flush() writes it
        self._task = loop.create_task(self._flush_later())

    async def _flush_later(self) -> None:
        try:
            await asyncio.sleep(self._flush_s)
            self._task = None
            await self.flush()
        finally:
            if self._task is asyncio.current_task():
                self._task = None
        if self._dirty:
            self._schedule()

    async def flush(self) -> bool:
        """Write every changed row now; False (rows kept for the next try) if the store failed."""
        if self.store is None:
            return True
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:
            if not self._dirty:
                return True
            keys, self._dirty = self._dirty, set()
            rows = {key: self._totals[key].copy() for key in keys}
            try:
                await self.store.write(self.instance, rows)
            except Exception as exc:  # noqa: BLE001 - storage trouble never fails a call
                self._dirty |= keys
                if not self._warned:
                    self._warned = True
                    logger.warning(
                        "usage store write failed (%s); %d rows kept for the next try",
                        type(exc).__name__,
                        len(keys),
                    )
                return False
            self._warned = False
            self._prune()
            return True

    def _prune(self) -> None:
        """Forget written rows older than the previous hour (their totals are final)."""
        keep_from = hour_of(self._now() - 3600)
        for key in [k for k in self._totals if k.hour < keep_from and k not in self._dirty]:
            del self._totals[key]

    # ------------------------------------------------------------------ reading

    async def read(
        self, first_hour: str, last_hour: str, *, caller: str | None = None
    ) -> list[tuple[UsageKey, Counts]]:
        """Every instance's rows in the hour range (this instance's written first)."""
        if self.store is None:
            return [
                (key, counts.copy())
                for key, counts in self._totals.items()
                if first_hour <= key.hour <= last_hour and (caller is None or key.caller == caller)
            ]
        await self.flush()
        return await self.store.read(first_hour, last_hour, caller=caller)

    async def aclose(self) -> None:
        task, self._task = self._task, None
        if task is not None and not task.done():
            task.cancel()
        await self.flush()
        if self.store is not None:
            await self.store.aclose()
