"""The shared quota ledger: every instance of the app draws on one quota per deployment.

Per-instance budgets alone let eight instances each spend a deployment's whole TPM and RPM.
Here each instance *leases slices* of the deployment's current windows from one Table Storage
row per deployment (``_ledger_store``), with an ETag-guarded read-modify-write. What a lease
asks for and what a row lets it write (sizing, caps, reserve, fair share, matching, the row's
windows renumbered when the phase moves) is decided by a pure planner, ``_lease_plan``; this
module is the store loop around it (read, plan, write under the ETag, back off on a lost race)
and the leases an instance holds and spends:

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
  a lease's tokens and requests match (``matched``: tokens only for requests held or granted,
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
* Phase unknown (no reset header seen, here or in the row): the upstream may count over a
  rolling window, and leases of our own fixed windows do not bound a span across their edge.
  ``rolling_share`` is then the share of each limit this instance may spend over any span (an
  equal split among the row's members, as for the fallback share), which
  ``DeploymentBudget`` applies to its own sliding windows on top of the leases; the row is
  read (no write) about once a request window for its members, ten times as often while this
  instance saw itself alone, so an instance that joins is soon counted.
* ``window_view``: the row's view of the current windows (what all instances leased), which
  bounds ``Gateway.capacity``; ``refresh`` (from ``probe_regions``) reads it without a lease.
* Storage unreachable (timeout, connection, any error): for ``retry_s`` the deployment falls back
  to the instance's own sliding-window budget at a *conservative share* of the quota:
  ``min(fallback_share, 1 / members)`` (members: instances seen in the row in the last minutes),
  never the full quota. A lease that times out although storage answered during it (a read,
  or a write, won or lost) is slow, not gone: a row contended on a loaded store. It counts as
  contention (``slow_leases``): the lane holds for a moment, as when every race is lost, and
  the ledger stays in use; only a lease with no answer at all counts as a storage failure.

``DeploymentQuotaLedger`` belongs to one gateway (one instance); ``SharedQuota`` is its view of one
deployment, attached to that deployment's ``DeploymentBudget``.
"""

from __future__ import annotations

import asyncio
import logging
import math
import random
from collections import deque
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from ._cooldown import parse_duration
from ._lease_plan import (
    BACKLOG,
    FULL,
    INTERACTIVE,
    MEMBER_TTL_MINUTES,
    Deployment,
    Granted,
    Holdings,
    LeasePlan,
    Phase,
    Reading,
    Refused,
    Rules,
    Slot,
    Windows,
    lane_rates,
    later_phase,
    live,
    merge_phase,
    plan_lease,
    plan_return,
    row_counts,
    set_counts,
    size_lease,
    slot_at,
)
from ._lease_plan import matched as _matched  # noqa: F401 - its tests import it from here
from ._ledger_store import LedgerConflict, LedgerRow, LedgerStore

__all__ = ["BACKLOG", "INTERACTIVE", "DeploymentQuotaLedger", "LedgerConfig", "SharedQuota"]

logger = logging.getLogger(__name__)


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


class DeploymentQuotaLedger:
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
            "expired_backlog_tokens": 0,  # of which the backlog lane's
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

    def __init__(
        self, ledger: DeploymentQuotaLedger, key: str, *, tpm: int, rpm: int, minute_s: float
    ):
        self._ledger = ledger
        self.key = key
        self.token_limit = tpm
        self.request_limit = max(1, rpm // 6)
        self.token_span = minute_s
        self.request_span = minute_s / 6
        config = ledger.config
        self._deployment = Deployment(  # what the lease planner (``_lease_plan``) is given
            Windows(self.token_limit, self.request_limit, self.token_span, self.request_span),
            Rules(config.reserve, config.slice_fraction, config.request_horizon, config.fair_share),
            ledger.instance,
        )
        self._phase_now = Phase()  # where the windows' boundaries fall, once learned
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
        self._members_at = -math.inf  # when a row (and its members) was last read
        self._reading_members = False
        self.last_row: dict[str, Any] | None = None
        self.last_lease_at: float | None = None

    # -------------------------------------------------------------- synchronous (the router)

    def usable(self, now: float) -> bool:
        return self._ledger.usable(now)

    @property
    def token_phase(self) -> float:
        return self._phase_now.token

    @property
    def request_phase(self) -> float:
        return self._phase_now.request

    @property
    def phase_known(self) -> bool:
        return self._phase_now.known

    @property
    def fallback_share(self) -> float:
        now = self._ledger._now()
        members = len(live(self._members, now - MEMBER_TTL_MINUTES * self.token_span))
        share = self._ledger.config.fallback_share
        return min(share, 1.0 / members) if members > 1 else share

    def rolling_share(self, now: float) -> float:
        """The share of a window this instance may spend in any window-long span while the
        windows' phase is unknown (the upstream may roll them): an equal split among the
        instances the row saw lease in the last ``MEMBER_TTL_MINUTES`` token windows (this one
        included), as the last row read lists them. The leases follow our own fixed windows;
        this bounds their sum over a rolling span too (``DeploymentBudget.available_at``)."""
        # Members count as long as for the fallback share: a steady instance leases about once
        # per token window, so a shorter memory would drop it between two of its leases.
        since = now - MEMBER_TTL_MINUTES * self.token_span
        active = len(live(self._members, since) | {self._ledger.instance})
        # An instance that joined since is seen within a request window; within a tenth of
        # one while this instance saw itself alone (the largest share to give up).
        every = self.request_span / (10 if active == 1 else 1)
        if now - self._members_at >= every and not self._reading_members:
            self._read_members()
        return 1.0 / active

    def _read_members(self) -> None:
        """Read the row (``refresh``, no write) in a task the ledger keeps; no loop: skipped."""
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return
        self._reading_members = True

        async def read() -> None:
            try:
                await self.refresh()
            finally:
                self._reading_members = False

        self._ledger.spawn(read())

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
        held = _holdings(lease)
        give_up_at = ledger._now() + ledger.config.timeout_s / 2
        for attempt in range(ledger.config.max_conflicts):
            # Lost the race: wait (as an interactive lease would), then re-read.
            if attempt and not await self._back_off(INTERACTIVE, attempt, give_up_at):
                return False
            stats["reads"] += 1
            row, etag = await ledger.store.read(self.key)
            back = plan_return(row, held, lane)
            if back is None:  # no row, or nothing of the lease counted in it
                return True
            if not await self._write(back.row, etag):
                continue
            stats["returns"] += 1
            stats["returned_tokens"] += back.tokens
            stats["returned_requests"] += back.requests
            self._remember(back.row, now)
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
        row_phase = Phase(row.token_phase, row.request_phase, row.phase_known)
        self._adopt(merge_phase(self._phase(), row_phase, self._deployment.windows))
        slot = self._slot(now)
        if row.token_window < slot.token_window:  # nothing leased in this window yet
            row.token_window, row.tokens, row.backlog_tokens = slot.token_window, 0, 0
        if row.request_window < slot.request_window:
            set_counts(row, row_counts(row), slot.request_window)
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

    def _valid(self, lease: _Lease | None, slot: Slot) -> _Lease | None:
        """The lease rolled to ``slot``: tokens last their token window, requests their
        (shorter) request window; what belongs to a window gone is dropped."""
        if lease is None:
            return None
        stats = self._ledger.stats
        if lease.token_window != slot.token_window:
            if lease.token_window < slot.token_window:
                stats["expired_tokens"] += lease.tokens
                if lease is self._leases[BACKLOG]:
                    stats["expired_backlog_tokens"] += lease.tokens
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

    def _covering(self, slot: Slot, cost: int, lane: str) -> _Lease | None:
        need = min(cost, self.token_limit)
        lanes = (INTERACTIVE, BACKLOG) if lane == INTERACTIVE else (BACKLOG,)
        for name in lanes:
            lease = self._valid(self._leases[name], slot)
            if lease is not None and lease.tokens >= need and lease.requests >= 1:
                return lease
        return None

    def _slot(self, now: float) -> Slot:
        return slot_at(self._deployment.windows, self._phase(), now)

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
        if first and (reset_tokens is not None or reset_requests is not None):
            self._phase_now = replace(self._phase_now, known=True)
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
        if self.phase_known and later_phase(current, phase, span) == current:
            return False
        if which == "token":
            self._phase_now = replace(self._phase_now, token=phase)
        else:
            self._phase_now = replace(self._phase_now, request=phase)
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
        """The store loop around the planner (``_lease_plan``): size the lease once, then read
        the row, plan, write under the ETag; a lost race backs off and reads again."""
        ledger = self._ledger
        config = ledger.config
        slot = self._slot(now)
        held = self._valid(self._leases[lane], slot)
        windows = self._deployment.windows
        ask = size_lease(
            self._deployment,
            slot,
            lane=lane,
            now=now,
            cost=cost,
            waiting=waiting,
            held=_holdings(held),
            rates=lane_rates(self._recent[lane], now, windows),
        )
        attempts = config.max_conflicts
        if lane == BACKLOG:
            attempts = min(attempts, config.backlog_conflicts)
        # Contention never looks like a storage failure: the retries stop at half the timeout.
        give_up_at = ledger._now() + config.timeout_s / 2
        for attempt in range(attempts):
            # Lost the race: wait a little (the backlog longer), then re-read.
            if attempt and not await self._back_off(lane, attempt, give_up_at):
                break
            ledger.stats["reads"] += 1
            row, etag = await ledger.store.read(self.key)
            ledger.answered()
            reading = Reading(
                row,
                self._phase(),
                max(now, ledger._now()),
                _holdings(held),  # as spent from while the lease raced
                self._token_floor,
                self._request_floor,
            )
            plan = plan_lease(self._deployment, ask, reading)
            self._adopt(plan.phase)
            if isinstance(plan.outcome, Refused):
                self._refused(lane, plan, plan.outcome, now)
                return False
            if not await self._write(plan.row, etag):
                continue
            self._granted(lane, plan, plan.outcome, now)
            return True
        # Lost every race: others are leasing this very window; try again shortly.
        self.hold(ledger._now(), lane)
        return False

    def _refused(self, lane: str, plan: LeasePlan, refused: Refused, now: float) -> None:
        """The lane is full until the plan says; the row read is remembered (the window view)
        unless it was written under a later window."""
        self._full_until[lane] = refused.retry_at
        self._ledger.stats["refusals"] += 1
        if refused.reason == FULL:
            self._remember(plan.row, now)

    def _granted(self, lane: str, plan: LeasePlan, grant: Granted, now: float) -> None:
        """The row was written: the grant joins the lane's lease (rolled to the plan's slot)."""
        stats = self._ledger.stats
        stats["leases"] += 1
        stats["leased_tokens"] += grant.tokens
        stats["leased_requests"] += grant.requests + sum(grant.ahead.values())
        self._remember(plan.row, now)
        self.last_lease_at = now
        slot = plan.slot
        lease = self._valid(self._leases[lane], slot)
        if lease is None:
            lease = self._leases[lane] = _Lease(slot.token_window, slot.request_window, 0, 0)
        lease.tokens += grant.tokens  # _valid rolled it to the slot's token window
        lease.requests += grant.requests
        for w, n in grant.ahead.items():
            lease.ahead[w] = lease.ahead.get(w, 0) + n
        self._full_until[lane] = 0.0

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

    def _forget_ahead(self) -> None:
        """The request phase moved: the leases' later windows were counted under the old one
        and may be mis-aligned now; they are forgotten, never spent. The row still counts them
        until their windows pass, so this can only under-use the quota, never over-use it."""
        for lease in self._leases.values():
            if lease is not None:
                self._ledger.stats["forgotten_requests"] += sum(lease.ahead.values())
                lease.ahead.clear()

    def _phase(self) -> Phase:
        return self._phase_now

    def _adopt(self, phase: Phase) -> None:
        """Keep ``phase`` (merged with a row's): the windows leased ahead are forgotten when the
        request phase moves (``_forget_ahead``)."""
        if phase.request != self.request_phase:
            self._forget_ahead()
        self._phase_now = phase

    def _remember(self, row: LedgerRow, now: float) -> None:
        self._members = dict(row.members)
        self._members_at = now
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


def _holdings(lease: _Lease | None) -> Holdings:
    """What a lease holds, as the planner's frozen input (none: nothing)."""
    if lease is None:
        return Holdings()
    return Holdings(
        lease.tokens, lease.requests, dict(lease.ahead), lease.token_window, lease.request_window
    )


def _duration(text: str | None) -> float | None:
    return parse_duration(text) if text else None


def _int(text: str | None) -> int | None:
    if not text:
        return None
    try:
        return int(float(text))
    except (ValueError, OverflowError):
        return None
