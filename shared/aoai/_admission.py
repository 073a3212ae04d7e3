"""The gateway's admission hook: a check that runs before a call is routed, with the caller and
the call's admission estimate (per-caller limits, ``shared.callerlimits.CallerLimiter``, are one).

It runs only for a known alias (an unknown model is refused by the gateway, free) and before the
call starts: a refusal raises out of ``chat`` / ``open_chat_stream`` / ``embeddings`` /
``call_deployment`` without an attempt, and the observers hear nothing of it.
"""

from __future__ import annotations

from typing import Protocol

__all__ = ["Admission"]


class Admission(Protocol):
    async def admit(self, caller: str | None, tokens: int, alias: str) -> None:
        """Raise to refuse the call (its error reaches the caller as is); return to let it in."""
        ...
