"""The shared quota ledger: every instance of the app draws on one quota per deployment.

Per-instance budgets alone let eight instances each spend a deployment's whole TPM and RPM.
Here each instance *leases slices* of the deployment's current windows from one Table Storage
row per deployment (``_ledger_store``), with an ETag-guarded read-modify-write:

* Windows are Azure's: tokens per quota minute, requests per sixth of it (RPM / 6). They are
  fixed windows whose boundaries (the *phase*) are learned from every response's
  ``x-ratelimit-reset-tokens`` / ``-requests`` (send time + reset = the window's end; the latest
  such end is kept, since the request reaches Azure after we send it) and shared in the row.
* A lease is tokens for one token window and requests for the current request window and the
  next ones that start before the token window's slot ends (at most ``request_horizon``
  windows; the row keeps the count per window, ``request_counts``, earlier ones pruned). It is
  spent locally with no I/O; each window's part only from ``start + guard`` to ``end - guard``
  of that window (the guard covers the send-to-arrival delay). A lease is sized to the lane's
  recent rate: the current window's requests over its rest, plus the calls waiting; each later
  window's over its whole span (each capped by what that window has free for the lane); tokens
  over the same span (at least ``slice_fraction`` of a minute). It tops up the part not missing
  to the same, so a steady lane leases about once per token window: moving into a request
  window the lease holds requests for needs no new lease (no herd at each window's start).
  When the request phase moves, the requests held for later windows are forgotten (the row
  still counts them: under-use only).
* Leases that get spent (quota one instance leaves unspent at a window's end is lost to all):
  a lease's tokens and requests match (``_matched``: tokens only for requests held or granted,
  at the lane's recent cost per call; requests for later windows only for tokens to pay them,
  the farthest cut first). Later windows are leased at the lower of the lane's last request
  window's and last minute's rate, rounded down (a sparse lane leases nothing ahead; a burst is
  not a rate). A backlog lease leaves the instance holding at most ``fair_share`` x an equal
  split of each window among the instances active in the row in the last token window (a cap
  on holding, not on use). ``stats``: ``leased_*``, ``expired_*`` (unspent when the window
  ended), ``forgotten_requests`` (later windows' requests dropped when the phase moved).
* Contention: a write that loses the ETag race backs off before re-reading, a random half to
  whole of a wait that doubles per lost race (``backoff_fraction`` to ``backoff_cap_fraction``
  of the request window; the retries stop at half the lease's timeout, so contention is never
  taken for a storage failure; ``sleep`` and the jitter's source are injected). A backlog
  lease waits ``backlog_backoff_factor`` times longer, gives up after ``backlog_conflicts``
  attempts (interactive: ``max_conflicts``) and then holds its lane for a tenth of the request
  window, so interactive leases win a contended row. Each lane has its own lock: an
  interactive lease never queues behind a backlog lease's back-off.
* Lanes: an interactive (HTTP) lease may take the deployment's whole window. A backlog lease
  leaves a reserve for interactive callers: ``reserve x limit x`` the share of the window still
  to run (at least ``TAIL`` of it; a later request window leased ahead: the whole reserve,
  as at its start). The reserve is a rate: it keeps ``reserve`` of the quota per
  minute for interactive calls arriving later in the window and is released to the backlog as
  the window runs out, so a backlog alone still fills the window.
* Ground truth: each response's ``x-ratelimit-remaining-*`` says how much the window really has
  left. A lower figure than the ledger's (another client of the deployment) raises the row's
  count at the next lease and shrinks this instance's lease at once.
* Uncounted failures (no answer, 5xx: ``DeploymentBudget.refund``) put their charge back into
  the lease and return the lease's unused part, every window's, to the row (``give_back``, in a
  task), so an outage burst does not hold the windows leased away from the other instances.
* ``window_view``: the row's view of the current windows (what all instances leased), which
  bounds ``Gateway.capacity``; ``refresh`` (from ``probe_regions``) reads it without a lease.
* Storage unreachable (timeout, connection, any error): for ``retry_s`` the deployment falls back
  to the instance's own sliding-window budget at a *conservative share* of the quota:
  ``min(fallback_share, 1 / members)`` (members: instances seen in the row in the last minutes),
  never the full quota. A lease that times out although storage answered during it (a read,
  or a write, won or lost) is slow, not gone: a row contended on a loaded store. It counts as
  contention (``slow_leases``): the lane holds for a moment, as when every race is lost, and
  the ledger stays in use; only a lease with no answer at all counts as a storage failure.

``QuotaLedger`` belongs to one gateway (one instance); ``SharedQuota`` is its view of one
deployment, attached to that deployment's ``DeploymentBudget``.
"""

from __future__ import annotations

import asyncio
import logging
import math
import random
from collections import deque
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ._cooldown import parse_duration
from ._ledger_store import LedgerConflict, LedgerRow, LedgerStore

__all__ = ["BACKLOG", "INTERACTIVE", "LedgerConfig", "QuotaLedger", "SharedQuota"]

logger = logging.getLogger(__name__)

INTERACTIVE = "interactive"
BACKLOG = "backlog"
TAIL = 0.1  # the part of the reserve a backlog lease never takes, even at a window's end
_MEMBER_TTL_MINUTES = 3.0


@dataclass(frozen=True, slots=True)
class LedgerConfig:
    reserve: float = 0.2
    slice_fraction: float = 0.05
    fallback_share: float = 0.1
    timeout_s: float = 2.0
    retry_s: float = 10.0
    max_conflicts: int = 12  # an interactive lease (and a give-back): attempts before it holds
    backlog_conflicts: int = 4  # a backlog lease gives up sooner, and holds longer
    backoff_fraction: float = 0.005  # the first wait after a lost race, x the request window
    backoff_cap_fraction: float = 0.05  # the longest wait, x the request window
    backlog_backoff_factor: float = 4.0  # a backlog lease waits this much longer
    request_horizon: int = 6  # request windows a lease's requests may cover (1: the current)
    fair_share: float = 2.0  # a backlog lease holds at most this x an equal split (0: no cap)


@dataclass(slots=True)
class _Lease:
    """Tokens of one token window; requests of the current request window (``requests``) and
    of the next ones (``ahead``: window index -> requests), which become ``requests`` as the
    clock moves into their window (``SharedQuota._valid``)."""

    token_window: int
    request_window: int
    tokens: int
    requests: int
    ahead: dict[int, int] = field(default_factory=dict)

    def unspent(self) -> bool:
        return self.tokens > 0 or self.requests > 0 or any(n > 0 for n in self.ahead.values())


@dataclass(frozen=True, slots=True)
class _Slot:
    """The windows a lease taken at some time belongs to, and when it may be spent."""

    token_window: int
    request_window: int
    start: float  # spendable from (after the start guard)
    until: float  # spendable until (before the end guard)
    token_end: float
    request_end: float


class QuotaLedger:
    """One instance's side of the shared ledger: its store, identity, health and statistics."""

    def __init__(
        self,
        store: LedgerStore,
        *,
        instance: str,
        now: Callable[[], float],
        config: LedgerConfig | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        rand: Callable[[], float] | None = None,
    ) -> None:
        self.store = store
        self.instance = instance
        self.config = config or LedgerConfig()
        self._now = now
        self._sleep = sleep  # the back-off's waits: a seam, so tests record them, never sleep
        self._rand = rand if rand is not None else random.Random().random  # jitter only
        self._down_until = 0.0
        self._failures_in_a_row = 0
        self._answered_at = -math.inf  # the last time storage answered a read or a write
        self._warned = False
        self.quotas: dict[str, SharedQuota] = {}
        self.stats = {
            "reads": 0,
            "writes": 0,
            "conflicts": 0,
            "backoffs": 0,
            "backoff_s": 0.0,
            "failures": 0,
            "slow_leases": 0,  # timed out while storage kept answering: contention, not a failure
            "leases": 0,
            "refusals": 0,
            "charges": 0,
            "returns": 0,
            "returned_tokens": 0,
            "returned_requests": 0,
            "leased_tokens": 0,
            "leased_requests": 0,
            "expired_tokens": 0,  # leased, never spent nor given back: the window ended
            "expired_requests": 0,
            "forgotten_requests": 0,  # leased ahead, dropped when the request phase moved
        }
        self._tasks: set[asyncio.Task[None]] = set()

    def attach(self, key: str, *, tpm: int, rpm: int, minute_s: float) -> SharedQuota:
        quota = SharedQuota(self, key, tpm=tpm, rpm=rpm, minute_s=minute_s)
        self.quotas[key] = quota
        return quota

    def usable(self, now: float) -> bool:
        return now >= self._down_until

    def failed(self, exc: BaseException) -> None:
        """A storage error or timeout. One alone (a slow moment) only fails that lease; the
        second in a row, before a success, sends every deployment to the fallback share."""
        self.stats["failures"] += 1
        self._failures_in_a_row += 1
        if self._failures_in_a_row < 2:
            return
        self._down_until = self._now() + self.config.retry_s
        if not self._warned:
            self._warned = True
            logger.warning(
                "quota ledger unavailable (%s); each deployment falls back to this instance's "
                "conservative share for %.0fs",
                type(exc).__name__,
                self.config.retry_s,
                extra={"ledger_error": type(exc).__name__},
            )

    def answered(self) -> None:
        """Storage answered a read or a write (a lost race too): it is reachable."""
        self._answered_at = self._now()

    def answered_since(self, since: float) -> bool:
        return self._answered_at >= since

    def recovered(self) -> None:
        self._failures_in_a_row = 0
        if self._warned:
            self._warned = False
            logger.info("quota ledger available again")
        self._down_until = 0.0

    def spawn(self, work: Any) -> None:
        """Run ``work`` (a give-back) in a task the ledger keeps until it ends; ``drain`` awaits."""
        task = asyncio.get_running_loop().create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def drain(self) -> None:
        """Await the give-backs under way (they log their own failures)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def refresh(self) -> None:
        """Read every deployment's row (no write): the shared view of the current windows that
        ``SharedQuota.window_view`` and ``Gateway.capacity`` report."""
        await self.drain()
        for quota in self.quotas.values():
            if not self.usable(self._now()):
                return
            await quota.refresh()

    def report(self) -> dict[str, Any]:
        now = self._now()
        calls = max(1, self.stats["charges"])
        describe = getattr(self.store, "describe", None)
        return {
            "instance": self.instance,
            "store": type(self.store).__name__,
            "backend": describe() if callable(describe) else None,
            "mode": "shared" if self.usable(now) else "fallback",
            "down_until": self._down_until if self._down_until > now else None,
            "reserve": self.config.reserve,
            "fallback_share": self.config.fallback_share,
            "stats": {**self.stats, "backoff_s": round(self.stats["backoff_s"], 3)},
            "transactions_per_1000_calls": round(
                1000.0 * (self.stats["reads"] + self.stats["writes"]) / calls, 1
            ),
            "deployments": {key: q.report(now) for key, q in self.quotas.items()},
        }

    async def aclose(self) -> None:
        """Return every unused lease (an instance scaled in leaves its slices to the others
        rather than holding them to the windows' end), then close the store."""
        try:
            for quota in self.quotas.values():
                for lane in (INTERACTIVE, BACKLOG):
                    self.spawn(quota.give_back(lane))
            await self.drain()
            await self.store.aclose()
        except Exception:  # noqa: BLE001
            pass


class SharedQuota:
    """One deployment as this instance sees it in the ledger (see the module docstring)."""

    def __init__(self, ledger: QuotaLedger, key: str, *, tpm: int, rpm: int, minute_s: float):
        self._ledger = ledger
        self.key = key
        self.token_limit = tpm
        self.request_limit = max(1, rpm // 6)
        self.token_span = minute_s
        self.request_span = minute_s / 6
        self._token_guard = _guard(self.token_span)
        self._request_guard = _guard(self.request_span)
        self.token_phase = 0.0
        self.request_phase = 0.0
        self.phase_known = False
        self._leases: dict[str, _Lease | None] = {INTERACTIVE: None, BACKLOG: None}
        self._full_until: dict[str, float] = {INTERACTIVE: 0.0, BACKLOG: 0.0}
        self._locks: dict[str, asyncio.Lock] = {}
        self._waiting: dict[str, int] = {INTERACTIVE: 0, BACKLOG: 0}
        self._recent: dict[str, deque[tuple[float, int]]] = {
            INTERACTIVE: deque(),
            BACKLOG: deque(),
        }
        self._token_floor: tuple[int, int] = (-1, 0)  # (window, tokens Azure says are used)
        self._request_floor: tuple[int, int] = (-1, 0)
        self._members: dict[str, float] = {}
        self.last_row: dict[str, Any] | None = None
        self.last_lease_at: float | None = None

    # -------------------------------------------------------------- synchronous (the router)

    def usable(self, now: float) -> bool:
        return self._ledger.usable(now)

    @property
    def fallback_share(self) -> float:
        now = self._ledger._now()
        live = len(_live(self._members, now - _MEMBER_TTL_MINUTES * self.token_span))
        share = self._ledger.config.fallback_share
        return min(share, 1.0 / live) if live > 1 else share

    def available_at(self, now: float, cost: int, lane: str) -> float:
        """``now`` when a lease covers ``cost`` or a top-up may get one; else when it may."""
        slot = self._slot(now)
        if slot.start > now:
            return slot.start
        if self._covering(slot, cost, lane) is not None:
            return now
        full = self._full_until[lane]
        return full if full > now else now

    def needs_lease(self, now: float, cost: int, lane: str) -> bool:
        slot = self._slot(now)
        return slot.start <= now and self._covering(slot, cost, lane) is None

    def hold(self, now: float, lane: str) -> None:
        """Treat the lane as full for a moment (a call that kept losing its lease to others):
        a twentieth of the request window, a tenth for the backlog, which leaves the row to
        interactive leases rather than keep hammering it."""
        span = self.request_span / (10 if lane == BACKLOG else 20)
        self._full_until[lane] = max(self._full_until[lane], now + span)

    def charge(self, now: float, cost: int, lane: str) -> None:
        self._ledger.stats["charges"] += 1
        recent = self._recent[lane]
        recent.append((now, cost))
        while recent and recent[0][0] <= now - self.token_span:  # a minute of the lane's calls
            recent.popleft()
        slot = self._slot(now)
        lease = self._covering(slot, cost, lane)
        if lease is None:  # spent without a lease (should not happen): take what is there
            lease = self._valid(self._leases[lane], slot)
            if lease is None:
                return
        lease.tokens = max(0, lease.tokens - min(cost, self.token_limit))
        lease.requests = max(0, lease.requests - 1)

    def refund(self, charged_at: float, cost: int, lane: str) -> None:
        """A charge Azure did not count (no response, a 5xx): put it back into the lane's lease
        and return the lease's unused part to the row (``give_back``, in a task), so that an
        outage burst does not keep the window leased away from the other instances."""
        now = self._ledger._now()
        if not self._ledger.usable(now):
            return
        slot = self._slot(now)
        charged = self._slot(charged_at)
        if (charged.token_window, charged.request_window) != (
            slot.token_window,
            slot.request_window,
        ):
            return  # charged in a window that is over: nothing left to give back
        # Into the lane's lease, or a new one when a give-back has just taken it.
        lease = self._valid(self._leases[lane], slot)
        if lease is None:
            lease = self._leases[lane] = _Lease(slot.token_window, slot.request_window, 0, 0)
        lease.tokens += min(cost, self.token_limit)
        lease.requests += 1
        self._ledger.spawn(self.give_back(lane))

    async def give_back(self, lane: str) -> None:
        """Return the lane's unused lease to the row (ETag-guarded, like a lease). The lease is
        taken first, so nothing is spent from it while it goes back; kept when storage fails."""
        lock = self._lane_lock(lane)
        async with lock:
            now = self._ledger._now()
            if not self._ledger.usable(now):
                return
            lease = self._valid(self._leases[lane], self._slot(now))
            if lease is None or not lease.unspent():
                return
            self._leases[lane] = None
            try:
                returned = await asyncio.wait_for(
                    self._return(lease, lane, now), self._ledger.config.timeout_s
                )
            except Exception as exc:  # noqa: BLE001 - storage trouble: keep the lease
                self._ledger.failed(exc)
                returned = False
            if not returned:  # storage trouble, or lost every race: the lease is still ours
                current = self._leases[lane]
                if current is None:
                    self._leases[lane] = lease
                elif (current.token_window, current.request_window) == (
                    lease.token_window,
                    lease.request_window,
                ):
                    current.tokens += lease.tokens
                    current.requests += lease.requests
                    for w, n in lease.ahead.items():
                        current.ahead[w] = current.ahead.get(w, 0) + n

    async def _return(self, lease: _Lease, lane: str, now: float) -> bool:
        """Take the lease's unused part off the row; False when every race was lost."""
        ledger = self._ledger
        stats = ledger.stats
        give_up_at = ledger._now() + ledger.config.timeout_s / 2
        for attempt in range(ledger.config.max_conflicts):
            # Lost the race: wait (as an interactive lease would), then re-read.
            if attempt and not await self._back_off(INTERACTIVE, attempt, give_up_at):
                return False
            stats["reads"] += 1
            row, etag = await ledger.store.read(self.key)
            if row is None:
                return True
            tokens = requests = 0
            if row.token_window == lease.token_window:
                tokens = min(max(0, lease.tokens), row.tokens)
                row.tokens -= tokens
                if lane == BACKLOG:
                    row.backlog_tokens -= min(tokens, row.backlog_tokens)
            # Every unspent window count goes back: the current window's and the later ones'.
            counts = _row_counts(row)
            for window, held in ((lease.request_window, lease.requests), *lease.ahead.items()):
                back = min(max(0, held), counts.get(window, 0))
                if back:
                    counts[window] -= back
                    requests += back
            _set_counts(row, counts, row.request_window)
            if not tokens and not requests:
                return True
            if not await self._write(row, etag):
                continue
            stats["returns"] += 1
            stats["returned_tokens"] += tokens
            stats["returned_requests"] += requests
            self._remember(row, now)
            return True
        return False

    async def refresh(self) -> None:
        """Read the row (no write) into ``last_row``: what every instance has leased."""
        ledger = self._ledger
        now = ledger._now()
        try:
            ledger.stats["reads"] += 1
            row, _ = await asyncio.wait_for(ledger.store.read(self.key), ledger.config.timeout_s)
        except Exception as exc:  # noqa: BLE001 - storage trouble: capacity says "local"
            ledger.failed(exc)
            return
        ledger.recovered()
        row = row if row is not None else LedgerRow()
        self._merge_phase(row)
        slot = self._slot(now)
        if row.token_window < slot.token_window:  # nothing leased in this window yet
            row.token_window, row.tokens, row.backlog_tokens = slot.token_window, 0, 0
        if row.request_window < slot.request_window:
            _set_counts(row, _row_counts(row), slot.request_window)
        self._remember(row, now)

    def window_view(self, now: float) -> dict[str, Any] | None:
        """The ledger's view of the current windows: what all instances have leased, and what
        this instance may still use (the window's rest plus its own unspent leases). None when
        the ledger is unreachable or no row of the current windows has been read."""
        row = self.last_row
        if row is None or not self._ledger.usable(now):
            return None
        slot = self._slot(now)
        if row["token_window"] != slot.token_window or row["request_window"] != slot.request_window:
            return None
        own_tokens = own_requests = 0
        for lease in self._leases.values():
            if lease is not None and lease.token_window == slot.token_window:
                own_tokens += lease.tokens
            if lease is not None and lease.request_window == slot.request_window:
                own_requests += lease.requests
        return {
            "tokens_leased": row["tokens"],
            "requests_leased": row["requests"],
            "free_tokens": max(0, self.token_limit - row["tokens"]) + own_tokens,
            "free_requests": max(0, self.request_limit - row["requests"]) + own_requests,
            "read_s_ago": round(now - row["read_at"], 3),
        }

    def _valid(self, lease: _Lease | None, slot: _Slot) -> _Lease | None:
        """The lease rolled to ``slot``: tokens last their token window, requests their
        (shorter) request window; what belongs to a window gone is dropped."""
        if lease is None:
            return None
        stats = self._ledger.stats
        if lease.token_window != slot.token_window:
            if lease.token_window < slot.token_window:
                stats["expired_tokens"] += lease.tokens
            lease.token_window, lease.tokens = slot.token_window, 0
        if lease.request_window != slot.request_window:
            window = slot.request_window
            if lease.request_window < window:
                stats["expired_requests"] += lease.requests + sum(
                    n for w, n in lease.ahead.items() if w < window
                )
            lease.request_window, lease.requests = window, lease.ahead.pop(window, 0)
            lease.ahead = {w: n for w, n in lease.ahead.items() if w > window}
        return lease

    def _covering(self, slot: _Slot, cost: int, lane: str) -> _Lease | None:
        need = min(cost, self.token_limit)
        lanes = (INTERACTIVE, BACKLOG) if lane == INTERACTIVE else (BACKLOG,)
        for name in lanes:
            lease = self._valid(self._leases[name], slot)
            if lease is not None and lease.tokens >= need and lease.requests >= 1:
                return lease
        return None

    def _slot(self, now: float) -> _Slot:
        tw, t_start, t_end = _window(now, self.token_span, self.token_phase)
        rw, r_start, r_end = _window(now, self.request_span, self.request_phase)
        until = min(t_end - self._token_guard, r_end - self._request_guard)
        if now >= until:  # in an end guard: the lease to get is the next window's
            at = min(t_end, r_end) + 1e-6
            tw, t_start, t_end = _window(at, self.token_span, self.token_phase)
            rw, r_start, r_end = _window(at, self.request_span, self.request_phase)
            until = min(t_end - self._token_guard, r_end - self._request_guard)
        start = max(t_start + self._token_guard, r_start + self._request_guard)
        if start >= until:  # guards overlap (a tiny span): no guard at the start
            start = max(t_start, r_start)
        return _Slot(tw, rw, start, until, t_end, r_end)

    # -------------------------------------------------------------- what responses say

    def observe(self, sent_at: float, now: float, headers: Mapping[str, str]) -> None:
        """Learn the windows' phase and Azure's own count from a response's headers."""
        reset_tokens = _duration(headers.get("x-ratelimit-reset-tokens"))
        reset_requests = _duration(headers.get("x-ratelimit-reset-requests"))
        first = not self.phase_known
        if reset_tokens is not None and 0 < reset_tokens <= self.token_span:
            self._learn("token", (sent_at + reset_tokens) % self.token_span)
        if reset_requests is not None and 0 < reset_requests <= self.request_span:
            self._learn("request", (sent_at + reset_requests) % self.request_span)
        if reset_tokens is not None or reset_requests is not None:
            self.phase_known = True
            if first:
                self._full_until = {INTERACTIVE: 0.0, BACKLOG: 0.0}
        slot = self._slot(sent_at)
        remaining_tokens = _int(headers.get("x-ratelimit-remaining-tokens"))
        if remaining_tokens is not None:
            used = self.token_limit - remaining_tokens
            window, floor = self._token_floor
            if window != slot.token_window or used > floor:
                self._token_floor = (slot.token_window, used)
            for lease in self._leases.values():
                if lease is not None and lease.token_window == slot.token_window:
                    lease.tokens = min(lease.tokens, max(0, remaining_tokens))
        remaining_requests = _int(headers.get("x-ratelimit-remaining-requests"))
        limit_requests = _int(headers.get("x-ratelimit-limit-requests"))
        if remaining_requests is not None and limit_requests in (None, self.request_limit):
            used = self.request_limit - remaining_requests
            window, floor = self._request_floor
            if window != slot.request_window or used > floor:
                self._request_floor = (slot.request_window, used)
            for lease in self._leases.values():
                if lease is not None and lease.request_window == slot.request_window:
                    lease.requests = min(lease.requests, max(0, remaining_requests))

    def _learn(self, which: str, phase: float) -> bool:
        """Keep the latest window end seen (circularly): a request reaches Azure after we send
        it, so send time + reset is never later than the true end, and the latest is the best
        estimate. An earlier one is noise (a slow send) and ignored. True when it moved.
        Leases are kept: a lease whose window index no longer matches is dropped on use."""
        span = self.token_span if which == "token" else self.request_span
        current = self.token_phase if which == "token" else self.request_phase
        if self.phase_known:
            diff = ((phase - current + span / 2) % span) - span / 2
            if diff <= 0.0005:
                return False
        if which == "token":
            self.token_phase = phase
        else:
            self.request_phase = phase
            self._forget_ahead()
        return True

    # -------------------------------------------------------------- leasing (async)

    async def top_up(self, now: float, cost: int, lane: str) -> bool:
        """Lease enough for ``cost`` (and the lane's recent rate) from the row; False when the
        window (for this lane) has no room: ``available_at`` then says until when."""
        # One lock per lane (``_lane_lock``): interactive never queues behind the backlog's lease.
        lock = self._lane_lock(lane)
        self._waiting[lane] += 1
        try:
            async with lock:
                now = self._ledger._now()
                if not self.needs_lease(now, cost, lane) or not self._ledger.usable(now):
                    return True
                if self._full_until[lane] > now:
                    return False
                demand = self._waiting[lane]
                try:
                    return await asyncio.wait_for(
                        self._lease(now, cost, lane, demand), self._ledger.config.timeout_s
                    )
                except Exception as exc:  # noqa: BLE001 - storage trouble: fall back
                    if isinstance(exc, TimeoutError) and self._ledger.answered_since(now):
                        # Slow, not gone: storage answered during the lease (contention on a
                        # loaded store). Hold, as when every race is lost; the ledger stays.
                        self._ledger.stats["slow_leases"] += 1
                        self.hold(self._ledger._now(), lane)
                        return False
                    self._ledger.failed(exc)
                    if self._ledger.usable(self._ledger._now()):
                        self.hold(now, lane)  # one failure: this lease only, try again soon
                    return True
        finally:
            self._waiting[lane] -= 1

    async def _lease(self, now: float, cost: int, lane: str, waiting: int) -> bool:
        ledger = self._ledger
        config = ledger.config
        stats = ledger.stats
        slot = self._slot(now)
        need = min(cost, self.token_limit)
        recent = self._recent[lane]
        # the lane's calls in the request window's length up to its latest call
        last = [c for t, c in recent if t > recent[-1][0] - self.request_span] if recent else []
        rate_tokens = sum(last) / self.request_span
        rate_requests = len(last) / self.request_span
        # The lane's calls per request window over the last minute (or since its first call):
        # what later windows are leased at, when below the last window's (a burst is not a rate).
        lasted = min(self.token_span, max(self.request_span, now - recent[0][0])) if recent else 1.0
        steady = len(recent) * self.request_span / lasted
        # What one of the lane's calls costs (recently; else this one): tokens and requests are
        # leased in matching amounts (``_matched``), never one without the other to spend it.
        per_call = rate_tokens / rate_requests if rate_requests else float(need)
        # Requests for the current request window (the time left) and the next ones that start
        # before the token window's slot ends (at most ``request_horizon``): a steady lane then
        # leases about once per token window. Tokens are sized over the same span (at least a
        # slice of a minute).
        left_s = max(0.0, slot.until - max(now, slot.start))
        ahead = self._ahead(slot)
        covered_until = min(slot.token_end, ahead[-1][2]) if ahead else slot.until
        token_s = max(config.slice_fraction * self.token_span, covered_until - max(now, slot.start))
        held = self._valid(self._leases[lane], slot)
        have_tokens = held.tokens if held is not None else 0
        have_requests = held.requests if held is not None else 0
        have_ahead = dict(held.ahead) if held is not None else {}
        # What is missing must be free (tokens and requests live in different windows); the
        # part not missing is topped up to the lane's rate (never beyond), so both run out
        # together and the next lease is one, not one per part.
        need_tokens = max(0, need - have_tokens)
        need_requests = max(0, 1 - have_requests)
        want_tokens = (
            max(need * waiting - have_tokens, math.ceil(rate_tokens * token_s))
            if need_tokens
            else max(0, math.ceil(rate_tokens * token_s) - have_tokens)
        )
        want_requests = (
            max(waiting - have_requests, math.ceil(rate_requests * left_s))
            if need_requests
            else max(0, math.ceil(rate_requests * left_s) - have_requests)
        )
        # A later window is sized to the rate over its whole span (calls that arrive in its
        # guards wait for its spendable part and are served there): the lower of the last
        # window's and the minute's, rounded down, so a sparse lane (under one call a window, as
        # an instance's share of interactive calls often is) leases nothing ahead, where a call
        # a window held quota in every later window that went unspent.
        want_ahead = {
            w: max(0, math.floor(min(len(last), steady)) - have_ahead.get(w, 0))
            for w, _, _ in ahead
        }
        attempts = config.max_conflicts
        if lane == BACKLOG:
            attempts = min(attempts, config.backlog_conflicts)
        # Contention never looks like a storage failure: the retries stop at half the timeout.
        give_up_at = ledger._now() + config.timeout_s / 2
        for attempt in range(attempts):
            # Lost the race: wait a little (the backlog longer), then re-read.
            if attempt and not await self._back_off(lane, attempt, give_up_at):
                break
            stats["reads"] += 1
            row, etag = await ledger.store.read(self.key)
            ledger.answered()
            row = row if row is not None else LedgerRow()
            counts = _row_counts(row)
            counted_under = self._merge_phase(row)
            at = max(now, ledger._now())
            slot = self._slot(at)
            if counted_under is not None:
                # The row's windows were numbered under the old phase: number them under the
                # new one, by how the same instant's index moved (0, or 1 when the phase
                # crossed a window edge). Every window moves by the same step, a count is
                # carried, never dropped; a window that has passed stays passed, so a new
                # window never starts with the last one's count.
                row.token_window += _index_shift(
                    at, self.token_span, counted_under[0], self.token_phase
                )
                shift = _index_shift(at, self.request_span, counted_under[1], self.request_phase)
                counts = {w + shift: n for w, n in counts.items()}
                row.request_window += shift
            if row.token_window > slot.token_window or row.request_window > slot.request_window:
                # Written under a later window (a clock ahead, or a phase not yet adopted).
                self._full_until[lane] = slot.until
                stats["refusals"] += 1
                return False
            if row.token_window < slot.token_window:
                row.token_window, row.tokens, row.backlog_tokens = slot.token_window, 0, 0
            current = slot.request_window
            counts = {w: n for w, n in counts.items() if w >= current}  # windows gone: pruned
            window, floor = self._token_floor
            if window == slot.token_window and floor > row.tokens:
                row.tokens = floor
            window, floor = self._request_floor
            if window == current and floor > counts.get(current, 0):
                counts[current] = floor
            _set_counts(row, counts, current)
            token_cap, request_cap = self._caps(lane, slot, max(now, slot.start))
            free_tokens = token_cap - row.tokens
            free_requests = request_cap - row.requests
            # Only a missing part must be free: a lease that holds this call's tokens and lacks
            # a request is not refused because interactive leases took the window's tokens past
            # the backlog's cap (it then waited for the window's end with its tokens unspent).
            if (need_tokens and free_tokens < need_tokens) or (
                need_requests and free_requests < need_requests
            ):
                self._full_until[lane] = self._free_at(lane, slot, row, need_tokens, need_requests)
                stats["refusals"] += 1
                self._remember(row, now)
                return False
            tokens = max(0, min(want_tokens, free_tokens))  # a part not missing may have none
            requests = max(0, min(want_requests, free_requests))
            # A later window: its whole span is to run, so the backlog leaves the whole reserve.
            future_cap = self._request_cap(lane, 1.0)
            granted_ahead: dict[int, int] = {}
            for w, want in want_ahead.items():
                if w <= current:  # the slot moved on while racing: that window is the current
                    continue
                grant = max(0, min(want, future_cap - counts.get(w, 0)))
                if grant:
                    granted_ahead[w] = grant
            if lane == BACKLOG and config.fair_share > 0:
                tokens, requests = self._fair(
                    row, now, tokens, requests, granted_ahead, token_cap, future_cap, held
                )
                tokens, requests = max(tokens, need_tokens), max(requests, need_requests)
            tokens = _matched(
                tokens,
                granted_ahead,
                have_tokens=have_tokens,
                calls=have_requests
                + requests
                + sum(n for w, n in have_ahead.items() if w > current),
                per_call=per_call,
                floor=need_tokens,
            )
            row.tokens += tokens
            if lane == BACKLOG:
                row.backlog_tokens += tokens
            counts[current] = counts.get(current, 0) + requests
            for w, grant in granted_ahead.items():
                counts[w] = counts.get(w, 0) + grant
            _set_counts(row, counts, current)
            horizon = now - _MEMBER_TTL_MINUTES * self.token_span
            row.members = {k: row.members[k] for k in _live(row.members, horizon)}
            row.members[ledger.instance] = now
            if not await self._write(row, etag):
                continue
            stats["leases"] += 1
            stats["leased_tokens"] += tokens
            stats["leased_requests"] += requests + sum(granted_ahead.values())
            self._remember(row, now)
            self.last_lease_at = now
            lease = self._valid(self._leases[lane], slot)
            if lease is None:
                lease = self._leases[lane] = _Lease(slot.token_window, current, 0, 0)
            if lease.token_window == slot.token_window:
                lease.tokens += tokens
            lease.requests += requests
            for w, grant in granted_ahead.items():
                lease.ahead[w] = lease.ahead.get(w, 0) + grant
            self._full_until[lane] = 0.0
            return True
        # Lost every race: others are leasing this very window; try again shortly.
        self.hold(ledger._now(), lane)
        return False

    def _fair(
        self,
        row: LedgerRow,
        now: float,
        tokens: int,
        requests: int,
        granted_ahead: dict[int, int],
        token_cap: int,
        request_cap: int,
        held: _Lease | None,
    ) -> tuple[int, int]:
        """Cap what a backlog lease leaves this instance holding at ``fair_share`` times an
        equal split of each window among the instances active in the last token window (the
        row's members): one instance whose recent burst sets a high rate would otherwise lease
        a whole window ahead and leave the others refused while it cannot spend it all. A cap
        on holding, not on use: an instance that spends its part leases again."""
        active = len(_live(row.members, now - self.token_span) | {self._ledger.instance})
        if active <= 1:
            return tokens, requests
        share = self._ledger.config.fair_share / active
        token_fair = math.ceil(share * token_cap)
        request_fair = math.ceil(share * request_cap)
        have_tokens = held.tokens if held is not None else 0
        have_requests = held.requests if held is not None else 0
        for w in list(granted_ahead):
            have = held.ahead.get(w, 0) if held is not None else 0
            granted_ahead[w] = min(granted_ahead[w], max(0, request_fair - have))
            if not granted_ahead[w]:
                del granted_ahead[w]
        return (
            min(tokens, max(0, token_fair - have_tokens)),
            min(requests, max(0, request_fair - have_requests)),
        )

    async def _back_off(self, lane: str, lost: int, give_up_at: float) -> bool:
        """Wait after the ``lost``-th lost race in a row before reading the row again: a random
        half to whole of a ceiling that doubles per lost race, from ``backoff_fraction`` up to
        ``backoff_cap_fraction`` of the request window, ``backlog_backoff_factor`` times longer
        for a backlog lease (so interactive leases win the row); never past ``give_up_at``
        (half the lease's timeout, storage round trips included). False: time to give up."""
        ledger = self._ledger
        config = ledger.config
        factor = config.backlog_backoff_factor if lane == BACKLOG else 1.0
        step = min(config.backoff_cap_fraction, config.backoff_fraction * 2.0 ** (lost - 1))
        wait = factor * step * self.request_span * (0.5 + 0.5 * ledger._rand())
        wait = min(wait, give_up_at - ledger._now())
        if wait > 0:
            ledger.stats["backoffs"] += 1
            ledger.stats["backoff_s"] += wait
            await ledger._sleep(wait)
        return ledger._now() < give_up_at

    def _lane_lock(self, lane: str) -> asyncio.Lock:
        """One lock per lane: this instance's leases of a lane never race each other for the
        row, and an interactive lease never waits behind a backlog lease backing off."""
        lock = self._locks.get(lane)
        if lock is None:
            lock = self._locks[lane] = asyncio.Lock()
        return lock

    async def _write(self, row: LedgerRow, etag: str | None) -> bool:
        """Write the row under its ETag; False when another instance changed it (read again)."""
        ledger = self._ledger
        ledger.stats["writes"] += 1
        try:
            await ledger.store.write(self.key, row, etag)
        except LedgerConflict:
            ledger.answered()
            ledger.stats["conflicts"] += 1
            return False
        ledger.answered()
        ledger.recovered()
        return True

    def _caps(self, lane: str, slot: _Slot, at: float) -> tuple[int, int]:
        """What the current windows may grant the lane at ``at`` (see ``_cap``)."""
        return (
            self._cap(lane, self.token_limit, (slot.token_end - at) / self.token_span),
            self._request_cap(lane, (slot.request_end - at) / self.request_span),
        )

    def _request_cap(self, lane: str, left: float) -> int:
        """A request window's cap for the lane with ``left`` of it still to run (a later
        window: 1.0, the whole reserve, as at a window's start)."""
        return self._cap(lane, self.request_limit, left)

    def _cap(self, lane: str, limit: int, left: float) -> int:
        """What a window of ``limit`` may grant the lane with ``left`` of it still to run: all
        of it for interactive leases; for the backlog, less the reserve's share of what is
        still to run (at least ``TAIL`` of it)."""
        if lane != BACKLOG:
            return limit
        left = max(TAIL, min(1.0, left))
        return limit - int(self._ledger.config.reserve * limit * left)

    def _ahead(self, slot: _Slot) -> list[tuple[int, float, float]]:
        """The request windows after the slot's a lease may cover: (index, start, end) of those
        whose spendable part starts before the token window's slot ends, at most
        ``request_horizon - 1`` of them."""
        token_until = slot.token_end - self._token_guard
        windows = []
        start = slot.request_end
        for step in range(1, max(1, self._ledger.config.request_horizon)):
            if start + self._request_guard >= token_until:
                break
            end = start + self.request_span
            windows.append((slot.request_window + step, start, end))
            start = end
        return windows

    def _forget_ahead(self) -> None:
        """The request phase moved: the leases' later windows were counted under the old one
        and may be mis-aligned now; they are forgotten, never spent. The row still counts them
        until their windows pass, so this can only under-use the quota, never over-use it."""
        for lease in self._leases.values():
            if lease is not None:
                self._ledger.stats["forgotten_requests"] += sum(lease.ahead.values())
                lease.ahead.clear()

    def _free_at(
        self, lane: str, slot: _Slot, row: LedgerRow, need_tokens: int, need_requests: int
    ) -> float:
        """When a refused lease may succeed: when the reserve has shrunk enough, else at the
        next window of whichever missing part is full."""
        reserve = self._ledger.config.reserve
        times = []
        for limit, used, want, end, span in (
            (self.token_limit, row.tokens, need_tokens, slot.token_end, self.token_span),
            (self.request_limit, row.requests, need_requests, slot.request_end, self.request_span),
        ):
            if not want:
                continue
            if used + want <= (limit if lane != BACKLOG else limit - int(reserve * limit * TAIL)):
                if lane != BACKLOG:
                    continue
                # the backlog's cap grows as the window runs out
                left = (limit - used - want) / (reserve * limit) if reserve > 0 else 1.0
                times.append(end - max(TAIL, min(1.0, left)) * span)
            else:
                times.append(end)
        at = max(times) if times else slot.until
        if at <= slot.start:
            at = slot.start + self.request_span / 20
        return at + (self._request_guard if at in (slot.token_end, slot.request_end) else 0.0)

    def _merge_phase(self, row: LedgerRow) -> tuple[float, float] | None:
        """Adopt the row's phase or give it ours. When the row's phase changes here: the
        (token, request) phases its windows were counted under; else None."""
        before = (row.phase_known, row.token_phase, row.request_phase)
        if row.phase_known and not self.phase_known:
            if row.request_phase != self.request_phase:
                self._forget_ahead()
            self.token_phase, self.request_phase, self.phase_known = (
                row.token_phase,
                row.request_phase,
                True,
            )
        elif row.phase_known:
            self._learn("token", row.token_phase)
            self._learn("request", row.request_phase)
        if self.phase_known:
            row.token_phase, row.request_phase, row.phase_known = (
                self.token_phase,
                self.request_phase,
                True,
            )
        if before == (row.phase_known, row.token_phase, row.request_phase):
            return None
        return before[1], before[2]

    def _remember(self, row: LedgerRow, now: float) -> None:
        self._members = dict(row.members)
        self.last_row = {
            "token_window": row.token_window,
            "tokens": row.tokens,
            "backlog_tokens": row.backlog_tokens,
            "request_window": row.request_window,
            "requests": row.requests,
            "read_at": now,
        }

    def report(self, now: float) -> dict[str, Any]:
        slot = self._slot(now)
        leases = {}
        for lane, lease in self._leases.items():
            lease = self._valid(lease, slot)
            leases[lane] = (
                None
                if lease is None
                else {
                    "tokens": lease.tokens,
                    "requests": lease.requests,
                    "requests_ahead": sum(lease.ahead.values()),
                }
            )
        return {
            "tpm": self.token_limit,
            "requests_per_window": self.request_limit,
            "phase_known": self.phase_known,
            "leases": leases,
            "last_lease_at": self.last_lease_at,
            "row": self.last_row,
            "members": {k: round(now - v, 3) for k, v in sorted(self._members.items())},
            "fallback_share": round(self.fallback_share, 4),
            "window": self._window_report(now),
        }

    def _window_report(self, now: float) -> dict[str, Any]:
        view = self.window_view(now)
        if view is not None:
            return {"source": "ledger", **view}
        # the instance's own windows count (shown with the deployment's budget in the report)
        why = "ledger_unreachable" if not self._ledger.usable(now) else "no_current_row_read"
        return {"source": "local", "reason": why}


def _matched(
    tokens: int,
    granted_ahead: dict[int, int],
    *,
    have_tokens: int,
    calls: int,
    per_call: float,
    floor: int,
) -> int:
    """Match a lease's two parts: tokens without requests to spend them (or requests without
    tokens) would sit unused in this instance until their window ends while other instances
    are refused them. ``calls``: requests held and granted for the current and earlier-granted
    windows; ``granted_ahead`` (window -> requests) is trimmed from the farthest window when
    the tokens held after the grant cannot pay for that many calls. Returns the tokens to
    grant: at most what the requests can spend at ``per_call`` each, never below ``floor`` (the
    part the waiting call is missing)."""
    per_call = max(1.0, per_call)
    total_calls = calls + sum(granted_ahead.values())
    affordable = math.floor((have_tokens + tokens) / per_call)
    for w in sorted(granted_ahead, reverse=True):
        if total_calls <= max(affordable, calls):
            break
        cut = min(granted_ahead[w], total_calls - max(affordable, calls))
        granted_ahead[w] -= cut
        total_calls -= cut
        if not granted_ahead[w]:
            del granted_ahead[w]
    spendable = math.ceil(total_calls * per_call) - have_tokens
    return min(tokens, max(floor, spendable))  # ``tokens`` covers ``floor`` (checked free)


def _live(members: dict[str, float], since: float) -> set[str]:
    """The instances a row saw at ``since`` or later (members: instance -> last lease time)."""
    return {instance for instance, seen in members.items() if seen >= since}


def _row_counts(row: LedgerRow) -> dict[int, int]:
    """The row's requests per request window, from its ``request_window`` on. Its
    ``request_window``/``requests`` count too: a row older code wrote has only those."""
    counts = {w: n for w, n in row.request_counts.items() if w >= row.request_window}
    counts[row.request_window] = max(counts.get(row.request_window, 0), row.requests)
    return counts


def _set_counts(row: LedgerRow, counts: dict[int, int], current: int) -> None:
    """Store ``counts`` in the row from window ``current`` on (earlier ones pruned), with the
    current window's count in ``request_window``/``requests`` as well."""
    row.request_window = current
    row.request_counts = {w: n for w, n in sorted(counts.items()) if w >= current and n > 0}
    row.requests = counts.get(current, 0)


def _guard(span: float) -> float:
    return min(0.5, max(0.05, 0.05 * span))


def _window(now: float, span: float, phase: float) -> tuple[int, float, float]:
    index = math.floor((now - phase) / span)
    start = phase + index * span
    return index, start, start + span


def _index_shift(at: float, span: float, old_phase: float, new_phase: float) -> int:
    """How far the index of the window holding ``at`` moves when the phase does (-1, 0 or 1)."""
    return _window(at, span, new_phase)[0] - _window(at, span, old_phase)[0]


def _duration(text: str | None) -> float | None:
    return parse_duration(text) if text else None


def _int(text: str | None) -> int | None:
    if not text:
        return None
    try:
        return int(float(text))
    except (ValueError, OverflowError):
        return None
