"""``CallerLimitedGateway``: the gateway with per-caller limits checked before any upstream call.

It wraps a ``Gateway`` (everything else is passed through), so plain calls, streams and the
backlog's calls are all admitted the same way: over the caller's TPM the call raises
``CallerRateLimited`` (HTTP 429; a job is parked until the window frees), over its monthly
tokens ``CallerBudgetExhausted`` (HTTP 429; a job fails with that code).
"""

from __future__ import annotations

from typing import Any

from ._limiter import CallerLimiter

__all__ = ["CallerLimitedGateway"]


class CallerLimitedGateway:
    def __init__(self, gateway: Any, limiter: CallerLimiter) -> None:
        self.inner = gateway
        self.limiter = limiter

    async def _admit(self, request: Any, ctx: Any) -> None:
        if request.model in self.inner.aliases:  # an unknown model is refused by the gateway, free
            await self.limiter.admit(ctx.caller, self.inner.estimate_cost(request), request.model)

    async def chat(self, request: Any, ctx: Any) -> Any:
        await self._admit(request, ctx)
        return await self.inner.chat(request, ctx)

    async def open_chat_stream(self, request: Any, ctx: Any) -> Any:
        await self._admit(request, ctx)
        return await self.inner.open_chat_stream(request, ctx)

    async def embeddings(self, request: Any, ctx: Any) -> Any:
        await self._admit(request, ctx)
        return await self.inner.embeddings(request, ctx)

    async def call_deployment(
        self,
        operation: str,
        target: Any,
        *,
        path: str,
        body: dict[str, Any],
        send: Any,
        cost: int,
        ctx: Any,
        usage: Any = None,
        report_at_end: bool = False,
    ) -> Any:
        """The Responses API: a create is admitted at its estimate (a continuation pinned to a
        deployment counts against the alias in its body); reads, deletions and cancellations
        are not charged to the caller."""
        if operation == "responses":
            alias = target if isinstance(target, str) else str(body.get("model") or "")
            if alias in self.inner.aliases:
                await self.limiter.admit(ctx.caller, cost, alias)
        return await self.inner.call_deployment(
            operation,
            target,
            path=path,
            body=body,
            send=send,
            cost=cost,
            ctx=ctx,
            usage=usage,
            report_at_end=report_at_end,
        )

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    async def aclose(self) -> None:
        await self.inner.aclose()
