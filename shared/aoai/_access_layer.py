"""What callers of the access layer rely on, as a Protocol: ``Gateway`` is the implementation;
the backlog (``shared.jobs``) and tests type against this."""

from __future__ import annotations

from typing import Protocol

from ._requests import ChatRequest, EmbeddingsRequest
from ._types import CallContext, CallResult, Capacity

__all__ = ["AccessLayer"]


class AccessLayer(Protocol):
    async def chat(self, request: ChatRequest, ctx: CallContext) -> CallResult: ...

    async def embeddings(self, request: EmbeddingsRequest, ctx: CallContext) -> CallResult: ...

    def estimate_cost(self, request: ChatRequest | EmbeddingsRequest | None) -> int: ...

    def capacity(self, alias: str) -> Capacity: ...

    async def probe_regions(self) -> dict[str, bool]: ...

    async def aclose(self) -> None: ...
