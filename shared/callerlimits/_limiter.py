"""Per-caller limits enforced across instances: tokens per minute and tokens per month.

``CallerLimiter.admit(caller, tokens, alias)`` runs before any upstream call:

* **Monthly tokens**: the tokens the caller's calls really used this UTC month, counted by this
  object as a gateway observer (``call_finished``), added to the caller's month row in batches
  off the call's path (``flush_s``), and read back through a short cache (``cache_s``) plus
  what this instance has not written yet. At or over the limit: ``CallerBudgetExhausted``.
* **Tokens per minute**: a fixed window per caller (``window_s``), one row per caller updated
  with an ETag-guarded read-modify-write on every admitted call, charged with Azure's own
  arrival-time estimate. Over the limit: ``CallerRateLimited`` (retry at the window's end).
  A call bigger than the whole limit is admitted into an empty window (else it could never run).

Storage trouble never blocks callers: a failing table admits the call (logged once) and the
monthly deltas stay pending until a write succeeds.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from shared.settings import CallerLimit, CallerLimits
from shared.usage import CallerTokens, caller_tokens

from ._errors import CallerBudgetExhausted, CallerRateLimited
from ._store import WindowConflict, WindowStore

if TYPE_CHECKING:
    from shared.aoai import AttemptEvent, CallOutcome

__all__ = ["CallerLimiter", "month_of", "next_month"]

logger = logging.getLogger(__name__)

_MAX_CONFLICTS = 8
_CACHE_MAX = 4096  # callers whose monthly count one instance keeps in memory


def month_of(epoch_s: float) -> str:
    return datetime.fromtimestamp(epoch_s, UTC).strftime("%Y%m")


def next_month(epoch_s: float) -> str:
    """The first day of the next UTC month, ISO format: when a monthly budget resets."""
    now = datetime.fromtimestamp(epoch_s, UTC)
    year, month = (now.year + 1, 1) if now.month == 12 else (now.year, now.month + 1)
    return f"{year:04d}-{month:02d}-01"


class CallerLimiter:
    """Enforces ``CallerLimits`` on one instance, sharing the windows through ``store``."""

    def __init__(
        self,
        limits: CallerLimits,
        store: WindowStore,
        *,
        now: Callable[[], float] = time.time,
        flush_s: float = 2.0,
    ) -> None:
        self.limits = limits
        self.store = store
        self._now = now
        self._flush_s = flush_s
        self._pending: dict[str, int] = {}  # caller -> tokens used, not yet in its month row
        self._cache: dict[str, tuple[str, int, float]] = {}  # caller -> (month, used, read at)
        self._task: asyncio.Task[None] | None = None
        self._warned = False

    # ------------------------------------------------------------------ admission

    async def admit(self, caller: str | None, tokens: int, alias: str) -> None:
        """Raise ``CallerBudgetExhausted`` / ``CallerRateLimited`` if the call may not go out."""
        who = caller or "anonymous"
        limit = self.limits.for_caller(who)
        if limit.monthly_tokens is not None:
            used = await self.monthly_used(who)
            if used >= limit.monthly_tokens:
                raise CallerBudgetExhausted(
                    who, limit=limit.monthly_tokens, used=used, reset_date=next_month(self._now())
                )
        if limit.tpm is not None:
            await self._charge(who, limit, tokens, alias)

    async def _charge(self, caller: str, limit: CallerLimit, tokens: int, alias: str) -> None:
        assert limit.tpm is not None
        span = self.limits.window_s
        key = f"tpm|{caller}"
        for _ in range(_MAX_CONFLICTS):
            now = self._now()
            window = int(now // span)
            try:
                row, etag = await self.store.read(key)
                used = int(row.get("tokens", 0)) if row and row.get("window") == window else 0
                if used > 0 and used + tokens > limit.tpm:
                    raise CallerRateLimited(
                        caller,
                        limit=limit.tpm,
                        remaining=max(0, limit.tpm - used),
                        retry_at=(window + 1) * span,
                        now=now,
                        alias=alias,
                    )
                await self.store.write(key, {"window": window, "tokens": used + tokens}, etag)
                self._recovered()
                return
            except WindowConflict:
                continue
            except CallerRateLimited:
                raise
            except Exception as exc:  # noqa: BLE001 - storage trouble admits the call
                self._failed("tpm", exc)
                return
        logger.warning("caller %s: window row kept changing; call admitted", caller)

    async def monthly_used(self, caller: str) -> int:
        """Tokens the caller used this month, as every instance has written them plus this
        instance's own unwritten count."""
        now = self._now()
        month = month_of(now)
        cached = self._cache.get(caller)
        if cached is None or cached[0] != month or now - cached[2] >= self.limits.cache_s:
            try:
                row, _ = await self.store.read(f"month|{caller}")
                used = int(row.get("tokens", 0)) if row and row.get("month") == month else 0
            except Exception as exc:  # noqa: BLE001
                self._failed("month", exc)
                used = cached[1] if cached and cached[0] == month else 0
            cached = self._cache[caller] = (month, used, now)
            self._prune(now)
        return cached[1] + self._pending.get(caller, 0)

    def _prune(self, now: float) -> None:
        """Keep the monthly-count cache bounded: past ``_CACHE_MAX`` callers, drop every entry
        too old to be trusted anyway (``cache_s``), then the oldest."""
        if len(self._cache) <= _CACHE_MAX:
            return
        for who, (_, _, read_at) in list(self._cache.items()):
            if now - read_at >= self.limits.cache_s:
                del self._cache[who]
        while len(self._cache) > _CACHE_MAX:
            del self._cache[min(self._cache, key=lambda who: self._cache[who][2])]

    async def window_used(self, caller: str) -> int:
        """Tokens charged in the caller's current TPM window (all instances)."""
        row, _ = await self.store.read(f"tpm|{caller}")
        window = int(self._now() // self.limits.window_s)
        return int(row.get("tokens", 0)) if row and row.get("window") == window else 0

    # ------------------------------------------------------------------ the observer seam

    def attempt_finished(self, event: AttemptEvent) -> None:
        return None

    def call_finished(self, outcome: CallOutcome) -> None:
        tokens = caller_tokens(outcome)
        if tokens is not None:
            self.count(tokens)

    def count(self, tokens: CallerTokens) -> None:
        """A finished call's tokens (from ``CallerTokenCounter``, the one counter)."""
        caller = tokens.caller
        if self.limits.for_caller(caller).monthly_tokens is None:
            return
        self._pending[caller] = self._pending.get(caller, 0) + tokens.total_tokens
        if self._task is None:
            try:
                self._task = asyncio.get_running_loop().create_task(self._flush_later())
            except RuntimeError:
                pass

    async def _flush_later(self) -> None:
        try:
            await asyncio.sleep(self._flush_s)
        finally:
            self._task = None
        await self.flush()

    async def flush(self) -> None:
        """Add this instance's pending monthly counts to the month rows."""
        pending, self._pending = self._pending, {}
        for caller, tokens in pending.items():
            if not await self._add_month(caller, tokens):
                self._pending[caller] = self._pending.get(caller, 0) + tokens

    async def _add_month(self, caller: str, tokens: int) -> bool:
        key = f"month|{caller}"
        month = month_of(self._now())
        for _ in range(_MAX_CONFLICTS):
            try:
                row, etag = await self.store.read(key)
                used = int(row.get("tokens", 0)) if row and row.get("month") == month else 0
                await self.store.write(key, {"month": month, "tokens": used + tokens}, etag)
                self._cache[caller] = (month, used + tokens, self._now())
                return True
            except WindowConflict:
                continue
            except Exception as exc:  # noqa: BLE001
                self._failed("month", exc)
                return False
        return False

    # ------------------------------------------------------------------ ops

    async def report(self) -> list[dict[str, Any]]:
        """Every configured or seen caller: its limits and its current use against them."""
        await self.flush()
        rows = await self.store.read_all()
        now = self._now()
        month, window = month_of(now), int(now // self.limits.window_s)
        callers = set(self.limits.callers)
        callers.update(k.split("|", 1)[1] for k in rows if "|" in k)
        out = []
        for caller in sorted(callers):
            limit = self.limits.for_caller(caller)
            tpm_row = rows.get(f"tpm|{caller}") or {}
            month_row = rows.get(f"month|{caller}") or {}
            out.append(
                {
                    "caller": caller,
                    "configured": caller in self.limits.callers,
                    "tpm": limit.tpm,
                    "window_tokens": int(tpm_row.get("tokens", 0))
                    if tpm_row.get("window") == window
                    else 0,
                    "monthly_tokens": limit.monthly_tokens,
                    "month_tokens": int(month_row.get("tokens", 0))
                    if month_row.get("month") == month
                    else 0,
                    "priority": limit.priority,
                }
            )
        return out

    # ------------------------------------------------------------------ storage health

    def _failed(self, what: str, exc: Exception) -> None:
        if not self._warned:
            self._warned = True
            logger.warning(
                "caller limits store unavailable (%s: %s); calls are admitted meanwhile",
                what,
                type(exc).__name__,
            )

    def _recovered(self) -> None:
        self._warned = False

    async def aclose(self) -> None:
        task, self._task = self._task, None
        if task is not None and not task.done():
            task.cancel()
        await self.flush()
        await self.store.aclose()
