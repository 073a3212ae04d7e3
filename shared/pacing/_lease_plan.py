"""The quota ledger's lease planner: what one lease asks of a deployment's row, and what the row
it read lets it write. Pure: no I/O, no clock, no randomness; every input a frozen value.

``_quota_ledger`` owns the store loop around it (read the row and its ETag, plan, write under the
ETag, read again on a lost race) and the leases an instance holds and spends. A lease is planned
in two steps:

* ``size_lease`` (once, before the loop): what the lane wants (``Ask``) from what it holds
  (``Holdings``), its recent rate (``Rates``, from ``lane_rates``) and the slot: the part of
  the call's cost it is missing (must be free) and, for the part not missing, a top-up to the
  lane's rate over the rest of the current request window and the later request windows that
  start before the token window's slot ends (``later_windows``, at most ``request_horizon``);
  later windows at the lower of the last request window's and the minute's rate, rounded down.
* ``plan_lease`` (per read): the row as read (``Reading``) -> a ``LeasePlan``: the phase both
  now keep (the latest window end seen, ``merge_phase``); the row renumbered when the phase
  moved (by how the same instant's index moved: -1, 0 or 1, so a count is carried within its
  window and a window that has passed stays passed); then either ``Refused`` (the row was
  written under a later window; or a missing part is not free, and ``free_at`` says when it
  may be) or ``Granted`` with the row to write. Only a missing part must be free: a lease that
  holds its tokens and lacks a request is never refused because the tokens are past the
  backlog's cap. What is granted is capped by the lane's caps (the backlog leaves the
  interactive reserve, ``cap``), by ``fair_share`` x an equal split among the active
  instances (backlog), and matched (``matched``: tokens only for requests to spend them,
  later windows' requests only for tokens to pay them).

``plan_return`` plans a give-back: the row less a lease's unspent part, every window's.
See ``_quota_ledger``'s docstring for why each rule exists.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from ._ledger_store import LedgerRow

__all__ = [
    "BACKLOG",
    "FULL",
    "INTERACTIVE",
    "MEMBER_TTL_MINUTES",
    "ROW_AHEAD",
    "TAIL",
    "Ask",
    "Deployment",
    "Granted",
    "Holdings",
    "LeasePlan",
    "Phase",
    "Rates",
    "Reading",
    "Refused",
    "Returned",
    "Rules",
    "Slot",
    "Windows",
    "cap",
    "free_at",
    "lane_rates",
    "later_windows",
    "live",
    "matched",
    "merge_phase",
    "plan_lease",
    "plan_return",
    "row_counts",
    "set_counts",
    "size_lease",
    "slot_at",
    "window_at",
]

INTERACTIVE = "interactive"
BACKLOG = "backlog"
# The part of the reserve a backlog lease never takes, even at a window's end (2 % of every
# window with the default reserve). The largest structural loss of the backlog's share at one
# instance (bench.ledger_share), but also slack for charges the row does not see in time
# (which ones is not known yet): without it, 4 of 6 scale-out runs at K = 8 counted upstream
# 429s, up to about 1 % (docs/design-log/2026-12-ledger-scale-out.md).
TAIL = 0.1
MEMBER_TTL_MINUTES = 3.0  # a row's member counts for this many token windows after its lease
ROW_AHEAD = "row_ahead"  # refused: the row was written under a later window
FULL = "full"  # refused: a part the call is missing is not free for the lane
_PHASE_NOISE_S = 0.0005  # a window end this much later than the one kept is not a move


# ------------------------------------------------------------------------------- the inputs


@dataclass(frozen=True, slots=True)
class Windows:
    """One deployment's windows: tokens per quota minute, requests per sixth of it."""

    token_limit: int
    request_limit: int
    token_span: float
    request_span: float
    # the send-to-arrival guard at each end of a window: no lease is spent in it
    token_guard: float = field(init=False)
    request_guard: float = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "token_guard", _guard(self.token_span))
        object.__setattr__(self, "request_guard", _guard(self.request_span))


@dataclass(frozen=True, slots=True)
class Rules:
    """The settings a plan follows (``LedgerConfig``'s part that sizes and caps a lease; its
    defaults are there)."""

    reserve: float
    slice_fraction: float
    request_horizon: int
    fair_share: float


@dataclass(frozen=True, slots=True)
class Deployment:
    """What does not change between leases: the windows, the rules, this instance's name."""

    windows: Windows
    rules: Rules
    instance: str


@dataclass(frozen=True, slots=True)
class Phase:
    """Where the windows' boundaries fall (``phase + k * span``); ``known`` once learned."""

    token: float = 0.0
    request: float = 0.0
    known: bool = False


@dataclass(frozen=True, slots=True)
class Slot:
    """The windows a lease taken at some time belongs to, and when it may be spent."""

    token_window: int
    request_window: int
    start: float  # spendable from (after the start guard)
    until: float  # spendable until (before the end guard)
    token_end: float
    request_end: float


@dataclass(frozen=True, slots=True)
class Holdings:
    """What a lane's lease holds: tokens of ``token_window``, requests of ``request_window``
    and of later request windows (``ahead``: window index -> requests)."""

    tokens: int = 0
    requests: int = 0
    ahead: Mapping[int, int] = field(default_factory=dict)
    token_window: int = -1
    request_window: int = -1


@dataclass(frozen=True, slots=True)
class Rates:
    """A lane's recent calls: its rate over the last request window's length up to its latest
    call, and its calls per request window over the last minute (``steady``)."""

    tokens_per_s: float = 0.0
    requests_per_s: float = 0.0
    window_calls: int = 0  # calls in the last request window's length
    steady: float = 0.0  # calls per request window over the minute (or since the first call)


@dataclass(frozen=True, slots=True)
class Ask:
    """What a lease asks for, sized once before the store loop (``size_lease``)."""

    lane: str
    need_tokens: int  # missing for the waiting call: must be free
    need_requests: int
    want_tokens: int  # asked for: the missing part and the lane's rate
    want_requests: int
    want_ahead: Mapping[int, int]  # later request window -> requests asked for
    per_call: float  # what one of the lane's calls costs, in tokens
    held: Holdings  # what the lane held when the lease was sized
    asked_at: float


@dataclass(frozen=True, slots=True)
class Reading:
    """One read of the row, and this instance's state as it is read."""

    row: LedgerRow | None  # as read (None: no row yet); never changed by the planner
    phase: Phase  # this instance's phase before this read
    at: float  # when it was read (never before ``Ask.asked_at``)
    held: Holdings  # what the lane's lease holds now (spent from while the lease raced)
    token_floor: tuple[int, int] = (-1, 0)  # (token window, tokens Azure says are used)
    request_floor: tuple[int, int] = (-1, 0)  # (request window, requests Azure says are used)


# ------------------------------------------------------------------------------ the outputs


@dataclass(frozen=True, slots=True)
class Granted:
    tokens: int
    requests: int  # of the slot's request window
    ahead: Mapping[int, int]  # later request window -> requests


@dataclass(frozen=True, slots=True)
class Refused:
    reason: str  # ROW_AHEAD or FULL
    retry_at: float  # the lane is full until then


@dataclass(frozen=True, slots=True)
class LeasePlan:
    """The phase to keep (the instance's and the row's), the slot at the read, the row (as
    renumbered and, when granted, with the lease added: the row to write) and the outcome."""

    phase: Phase
    slot: Slot
    row: LedgerRow
    outcome: Granted | Refused


@dataclass(frozen=True, slots=True)
class Returned:
    row: LedgerRow  # the row to write
    tokens: int
    requests: int


# ------------------------------------------------------------------------------- the windows


def window_at(now: float, span: float, phase: float) -> tuple[int, float, float]:
    """(index, start, end) of the window holding ``now``."""
    index = math.floor((now - phase) / span)
    start = phase + index * span
    return index, start, start + span


def slot_at(windows: Windows, phase: Phase, now: float) -> Slot:
    """The slot a lease taken at ``now`` belongs to: in an end guard, the next windows'."""
    tw, t_start, t_end = window_at(now, windows.token_span, phase.token)
    rw, r_start, r_end = window_at(now, windows.request_span, phase.request)
    token_guard, request_guard = windows.token_guard, windows.request_guard
    until = min(t_end - token_guard, r_end - request_guard)
    if now >= until:  # in an end guard: the lease to get is the next window's
        at = min(t_end, r_end) + 1e-6
        tw, t_start, t_end = window_at(at, windows.token_span, phase.token)
        rw, r_start, r_end = window_at(at, windows.request_span, phase.request)
        until = min(t_end - token_guard, r_end - request_guard)
    start = max(t_start + token_guard, r_start + request_guard)
    if start >= until:  # guards overlap (a tiny span): no guard at the start
        start = max(t_start, r_start)
    return Slot(tw, rw, start, until, t_end, r_end)


def later_phase(current: float, seen: float, span: float) -> float:
    """The phase to keep: ``seen`` when it is a later window end than ``current`` (circularly,
    beyond noise), else ``current``. Send time + reset is never later than the true end, so
    the latest is the best estimate; an earlier one is a slow send."""
    diff = ((seen - current + span / 2) % span) - span / 2
    return seen if diff > _PHASE_NOISE_S else current


def merge_phase(ours: Phase, row: Phase, windows: Windows) -> Phase:
    """The phase this instance and the row keep after a read: the row's when ours is not
    known; the later of the two, window by window, when both are."""
    if not row.known:
        return ours
    if not ours.known:
        return row
    return Phase(
        later_phase(ours.token, row.token, windows.token_span),
        later_phase(ours.request, row.request, windows.request_span),
        True,
    )


def later_windows(windows: Windows, rules: Rules, slot: Slot) -> list[tuple[int, float, float]]:
    """The request windows after the slot's a lease may cover: (index, start, end) of those
    whose spendable part starts before the token window's slot ends, at most
    ``request_horizon - 1`` of them."""
    token_until = slot.token_end - windows.token_guard
    found = []
    start = slot.request_end
    for step in range(1, max(1, rules.request_horizon)):
        if start + windows.request_guard >= token_until:
            break
        end = start + windows.request_span
        found.append((slot.request_window + step, start, end))
        start = end
    return found


# ----------------------------------------------------------------------------- sizing a lease


def lane_rates(recent: Sequence[tuple[float, int]], now: float, windows: Windows) -> Rates:
    """The lane's rates from its recent calls ((time, cost), oldest first, the last minute)."""
    if not recent:
        return Rates()
    span = windows.request_span
    last = [c for t, c in recent if t > recent[-1][0] - span]
    lasted = min(windows.token_span, max(span, now - recent[0][0]))
    return Rates(sum(last) / span, len(last) / span, len(last), len(recent) * span / lasted)


def size_lease(
    deployment: Deployment,
    slot: Slot,
    *,
    lane: str,
    now: float,
    cost: int,
    waiting: int,
    held: Holdings,
    rates: Rates,
) -> Ask:
    """What a lease for a call of ``cost`` asks for, ``waiting`` calls of the lane waiting."""
    windows, rules = deployment.windows, deployment.rules
    need = min(cost, windows.token_limit)
    per_call = rates.tokens_per_s / rates.requests_per_s if rates.requests_per_s else float(need)
    left_s = max(0.0, slot.until - max(now, slot.start))
    ahead = later_windows(windows, rules, slot)
    covered_until = min(slot.token_end, ahead[-1][2]) if ahead else slot.until
    token_s = max(rules.slice_fraction * windows.token_span, covered_until - max(now, slot.start))
    need_tokens = max(0, need - held.tokens)
    need_requests = max(0, 1 - held.requests)
    # The missing part for every waiting call, at least the rate; the part not missing is
    # topped up to the rate (never beyond), so both run out together.
    rate_tokens = math.ceil(rates.tokens_per_s * token_s)
    rate_requests = math.ceil(rates.requests_per_s * left_s)
    want_tokens = (
        max(need * waiting - held.tokens, rate_tokens)
        if need_tokens
        else max(0, rate_tokens - held.tokens)
    )
    want_requests = (
        max(waiting - held.requests, rate_requests)
        if need_requests
        else max(0, rate_requests - held.requests)
    )
    # A later window: the lower of the last window's and the minute's rate, rounded down (a
    # sparse lane leases nothing ahead; a burst is not a rate).
    per_window = math.floor(min(rates.window_calls, rates.steady))
    want_ahead = {w: max(0, per_window - held.ahead.get(w, 0)) for w, _, _ in ahead}
    return Ask(
        lane,
        need_tokens,
        need_requests,
        want_tokens,
        want_requests,
        want_ahead,
        per_call,
        held,
        now,
    )


# ----------------------------------------------------------------------- planning one read


def plan_lease(deployment: Deployment, ask: Ask, reading: Reading) -> LeasePlan:
    """The lease ``ask`` gets from the row in ``reading``: the row to write, or a refusal."""
    windows = deployment.windows
    row = reading.row.copy() if reading.row is not None else LedgerRow()
    counts = row_counts(row)
    before = Phase(row.token_phase, row.request_phase, row.phase_known)
    phase = merge_phase(reading.phase, before, windows)
    slot = slot_at(windows, phase, reading.at)
    if phase.known:
        row.token_phase, row.request_phase, row.phase_known = phase.token, phase.request, True
    if (row.phase_known, row.token_phase, row.request_phase) != (
        before.known,
        before.token,
        before.request,
    ):
        counts = _renumber(row, counts, windows, reading.at, before, phase)
    if row.token_window > slot.token_window or row.request_window > slot.request_window:
        # Written under a later window (a clock ahead, or a phase not yet adopted).
        return LeasePlan(phase, slot, row, Refused(ROW_AHEAD, slot.until))
    _roll(row, counts, slot, reading)
    # A request phase move forgets the windows held ahead (``SharedQuota._forget_ahead``).
    held = reading.held
    if phase.request != reading.phase.request:
        held = Holdings(held.tokens, held.requests, {}, held.token_window, held.request_window)
    return LeasePlan(phase, slot, row, _grant(deployment, ask, row, slot, held))


def _renumber(
    row: LedgerRow,
    counts: dict[int, int],
    windows: Windows,
    at: float,
    before: Phase,
    after: Phase,
) -> dict[int, int]:
    """The row's windows were numbered under ``before``: number them under ``after``, by how
    the same instant's index moved (0, or +-1 when the phase crossed a window edge). Every
    window moves by the same step: a count is carried, never dropped; a window that has passed
    stays passed, so a new window never starts with the last one's count."""
    row.token_window += _index_shift(at, windows.token_span, before.token, after.token)
    shift = _index_shift(at, windows.request_span, before.request, after.request)
    row.request_window += shift
    return {w + shift: n for w, n in counts.items()}


def _roll(row: LedgerRow, counts: dict[int, int], slot: Slot, reading: Reading) -> None:
    """The row moved to the slot's windows: a passed token window's count dropped, passed
    request windows pruned; Azure's own count (a floor) where it is higher than the row's."""
    if row.token_window < slot.token_window:
        row.token_window, row.tokens, row.backlog_tokens = slot.token_window, 0, 0
    current = slot.request_window
    counts = {w: n for w, n in counts.items() if w >= current}
    window, floor = reading.token_floor
    if window == slot.token_window and floor > row.tokens:
        row.tokens = floor
    window, floor = reading.request_floor
    if window == current and floor > counts.get(current, 0):
        counts[current] = floor
    set_counts(row, counts, current)


def _grant(
    deployment: Deployment, ask: Ask, row: LedgerRow, slot: Slot, held: Holdings
) -> Granted | Refused:
    """Size the grant from what the row has free for the lane, and add it to ``row``."""
    windows, rules, lane = deployment.windows, deployment.rules, ask.lane
    token_cap = cap(lane, windows.token_limit, rules.reserve, _left(slot, ask, "token", windows))
    request_cap = cap(
        lane, windows.request_limit, rules.reserve, _left(slot, ask, "request", windows)
    )
    free_tokens = token_cap - row.tokens
    free_requests = request_cap - row.requests
    # Only a missing part must be free: a lease that holds this call's tokens and lacks a
    # request is not refused because interactive leases took the tokens past the backlog's cap.
    if (ask.need_tokens and free_tokens < ask.need_tokens) or (
        ask.need_requests and free_requests < ask.need_requests
    ):
        retry_at = free_at(windows, rules, lane, slot, row, ask.need_tokens, ask.need_requests)
        return Refused(FULL, retry_at)
    tokens = max(0, min(ask.want_tokens, free_tokens))  # a part not missing may have none
    requests = max(0, min(ask.want_requests, free_requests))
    # A later window: its whole span is to run, so the backlog leaves the whole reserve.
    future_cap = cap(lane, windows.request_limit, rules.reserve, 1.0)
    counts = row_counts(row)
    current = slot.request_window
    ahead: dict[int, int] = {}
    for w, want in ask.want_ahead.items():
        if w <= current:  # the slot moved on while racing: that window is the current
            continue
        grant = max(0, min(want, future_cap - counts.get(w, 0)))
        if grant:
            ahead[w] = grant
    if lane == BACKLOG and rules.fair_share > 0:
        tokens, requests = _fair(
            deployment, row, ask.asked_at, (tokens, requests), ahead, (token_cap, future_cap), held
        )
        tokens, requests = max(tokens, ask.need_tokens), max(requests, ask.need_requests)
    calls = ask.held.requests + requests + sum(n for w, n in ask.held.ahead.items() if w > current)
    tokens = matched(
        tokens,
        ahead,
        have_tokens=ask.held.tokens,
        calls=calls,
        per_call=ask.per_call,
        floor=ask.need_tokens,
    )
    _add(deployment, row, ask, Granted(tokens, requests, ahead), current)
    return Granted(tokens, requests, ahead)


def _left(slot: Slot, ask: Ask, which: str, windows: Windows) -> float:
    """The share of the slot's token (or request) window still to run when the lease was asked
    (or when the slot starts, if later)."""
    at = max(ask.asked_at, slot.start)
    if which == "token":
        return (slot.token_end - at) / windows.token_span
    return (slot.request_end - at) / windows.request_span


def _add(deployment: Deployment, row: LedgerRow, ask: Ask, grant: Granted, current: int) -> None:
    """Count the grant in the row; this instance's member entry stamped, stale ones pruned."""
    row.tokens += grant.tokens
    if ask.lane == BACKLOG:
        row.backlog_tokens += grant.tokens
    counts = row_counts(row)
    counts[current] = counts.get(current, 0) + grant.requests
    for w, n in grant.ahead.items():
        counts[w] = counts.get(w, 0) + n
    set_counts(row, counts, current)
    since = ask.asked_at - MEMBER_TTL_MINUTES * deployment.windows.token_span
    row.members = {k: row.members[k] for k in live(row.members, since)}
    row.members[deployment.instance] = ask.asked_at


def cap(lane: str, limit: int, reserve: float, left: float) -> int:
    """What a window of ``limit`` may grant the lane with ``left`` of it still to run: all of
    it for interactive leases; for the backlog, less the reserve's share of what is still to
    run (at least ``TAIL`` of it; a later window: ``left`` 1.0, the whole reserve)."""
    if lane != BACKLOG:
        return limit
    left = max(TAIL, min(1.0, left))
    return limit - int(reserve * limit * left)


def _fair(
    deployment: Deployment,
    row: LedgerRow,
    now: float,
    asked: tuple[int, int],
    ahead: dict[int, int],
    caps: tuple[int, int],
    held: Holdings,
) -> tuple[int, int]:
    """Cap what a backlog lease leaves this instance holding at ``fair_share`` times an equal
    split of each window among the instances active in the last token window (the row's
    members): one instance whose recent burst sets a high rate would otherwise lease a whole
    window ahead and leave the others refused while it cannot spend it all. A cap on holding,
    not on use: an instance that spends its part leases again. Trims ``ahead`` in place."""
    since = now - deployment.windows.token_span
    active = len(live(row.members, since) | {deployment.instance})
    if active <= 1:
        return asked
    share = deployment.rules.fair_share / active
    token_fair = math.ceil(share * caps[0])
    request_fair = math.ceil(share * caps[1])
    for w in list(ahead):
        ahead[w] = min(ahead[w], max(0, request_fair - held.ahead.get(w, 0)))
        if not ahead[w]:
            del ahead[w]
    return (
        min(asked[0], max(0, token_fair - held.tokens)),
        min(asked[1], max(0, request_fair - held.requests)),
    )


def matched(
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


def free_at(
    windows: Windows,
    rules: Rules,
    lane: str,
    slot: Slot,
    row: LedgerRow,
    need_tokens: int,
    need_requests: int,
) -> float:
    """When a refused lease may succeed: when the reserve has shrunk enough, else at the next
    window of whichever missing part is full (a part not missing is not waited for)."""
    reserve = rules.reserve
    times = []
    for limit, used, want, end, span in (
        (windows.token_limit, row.tokens, need_tokens, slot.token_end, windows.token_span),
        (
            windows.request_limit,
            row.requests,
            need_requests,
            slot.request_end,
            windows.request_span,
        ),
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
        at = slot.start + windows.request_span / 20
    guard = windows.request_guard if at in (slot.token_end, slot.request_end) else 0.0
    return at + guard


# ------------------------------------------------------------------------------ a give-back


def plan_return(row: LedgerRow | None, held: Holdings, lane: str) -> Returned | None:
    """The row less a lease's unspent part: its tokens (when the row is still in the lease's
    token window) and every window's requests. None: nothing to take off (no row, or nothing
    of the lease counted in it)."""
    if row is None:
        return None
    row = row.copy()
    tokens = requests = 0
    if row.token_window == held.token_window:
        tokens = min(max(0, held.tokens), row.tokens)
        row.tokens -= tokens
        if lane == BACKLOG:
            row.backlog_tokens -= min(tokens, row.backlog_tokens)
    counts = row_counts(row)
    for window, n in ((held.request_window, held.requests), *held.ahead.items()):
        back = min(max(0, n), counts.get(window, 0))
        if back:
            counts[window] -= back
            requests += back
    set_counts(row, counts, row.request_window)
    if not tokens and not requests:
        return None
    return Returned(row, tokens, requests)


# ------------------------------------------------------------------------------ row helpers


def live(members: Mapping[str, float], since: float) -> set[str]:
    """The instances a row saw at ``since`` or later (members: instance -> last lease time)."""
    return {instance for instance, seen in members.items() if seen >= since}


def row_counts(row: LedgerRow) -> dict[int, int]:
    """The row's requests per request window, from its ``request_window`` on. Its
    ``request_window``/``requests`` count too: a row older code wrote has only those."""
    counts = {w: n for w, n in row.request_counts.items() if w >= row.request_window}
    counts[row.request_window] = max(counts.get(row.request_window, 0), row.requests)
    return counts


def set_counts(row: LedgerRow, counts: Mapping[int, int], current: int) -> None:
    """Store ``counts`` in the row from window ``current`` on (earlier ones pruned), with the
    current window's count in ``request_window``/``requests`` as well."""
    row.request_window = current
    row.request_counts = {w: n for w, n in sorted(counts.items()) if w >= current and n > 0}
    row.requests = counts.get(current, 0)


def _guard(span: float) -> float:
    return min(0.5, max(0.05, 0.05 * span))


def _index_shift(at: float, span: float, old_phase: float, new_phase: float) -> int:
    """How far the index of the window holding ``at`` moves when the phase does (-1, 0 or 1)."""
    return window_at(at, span, new_phase)[0] - window_at(at, span, old_phase)[0]
