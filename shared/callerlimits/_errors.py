"""The two ways a caller's own limits refuse a call (HTTP 429, before any upstream call).

``CallerRateLimited`` is an ``AllThrottled``: the HTTP API answers 429 with ``Retry-After``, and
the backlog parks the job until ``retry_at`` (the caller's window frees up) instead of failing it.
``CallerBudgetExhausted`` is a ``RequestRejected``: the backlog fails the job with its code.
"""

from __future__ import annotations

import math
from typing import Any

from shared.aoai import AllThrottled, RequestRejected

__all__ = ["CallerBudgetExhausted", "CallerRateLimited"]


class CallerRateLimited(AllThrottled):
    code = "caller_rate_limited"
    http_status = 429

    def __init__(
        self, caller: str, *, limit: int, remaining: int, retry_at: float, now: float, alias: str
    ) -> None:
        super().__init__(alias, retry_at=retry_at, now=now)
        wait = max(0.0, retry_at - now)
        self.message = (
            f"Caller '{caller}' is over its limit of {limit} tokens per minute; "
            f"its window frees up in {wait:.1f}s."
        )
        self.args = (self.message,)
        self.caller = caller
        self.limit = limit
        self.remaining = remaining

    def details(self) -> dict[str, Any]:
        return {**super().details(), "limit_tokens": self.limit, "remaining_tokens": self.remaining}

    def response_headers(self) -> dict[str, str]:
        """The caller's own limit headers, as Azure sends them for a deployment."""
        return {
            "x-ratelimit-limit-tokens": str(self.limit),
            "x-ratelimit-remaining-tokens": str(self.remaining),
            "x-ratelimit-reset-tokens": f"{max(1, math.ceil(self.retry_after_s))}s",
        }


class CallerBudgetExhausted(RequestRejected):
    code = "caller_budget_exhausted"
    http_status = 429

    def __init__(self, caller: str, *, limit: int, used: int, reset_date: str) -> None:
        super().__init__(
            f"Caller '{caller}' has used {used} of its {limit} tokens this month; "
            f"the budget resets on {reset_date} (UTC)."
        )
        self.caller = caller
        self.limit = limit
        self.used = used
        self.reset_date = reset_date

    def details(self) -> dict[str, Any]:
        return {
            "monthly_tokens": self.limit,
            "used_tokens": self.used,
            "reset_date": self.reset_date,
        }
