"""Per-caller limits as the gateway's admission hook (``Gateway(admission=...)``), against the
simulator: a refused call raises before routing (no attempt, no observer hears it), an unknown
model is refused by the gateway without a charge, and each kind of call is charged its
admission estimate."""

from __future__ import annotations

from typing import Any

import pytest

from shared.aoai import CallContext, ChatRequest, EmbeddingsRequest, Gateway, UnknownModel
from shared.callerlimits import CallerLimiter, CallerLimits, CallerRateLimited, InMemoryWindowStore
from testpeers.gateway import settings_for_sim

NOW = 1_800_000_000.0


class Heard:
    def __init__(self) -> None:
        self.calls: list[Any] = []

    def attempt_finished(self, event: Any) -> None:
        return None

    def call_finished(self, outcome: Any) -> None:
        self.calls.append(outcome)


class Recording:
    """An admission hook that records what it is asked (the gateway's collaborator)."""

    def __init__(self) -> None:
        self.asked: list[tuple[str | None, int, str]] = []

    async def admit(self, caller: str | None, tokens: int, alias: str) -> None:
        self.asked.append((caller, tokens, alias))


def chat(model: str = "gpt-4o", max_tokens: int = 200) -> ChatRequest:
    return ChatRequest(
        model=model, messages=[{"role": "user", "content": "hello"}], max_tokens=max_tokens
    )


async def test_a_refused_call_never_starts(sim) -> None:
    settings = settings_for_sim(sim)
    quotas = CallerLimiter(
        CallerLimits.model_validate({"default": {"tpm": 300}}),
        InMemoryWindowStore(),
        now=lambda: NOW,
    )
    heard = Heard()
    ctx = CallContext("c1", caller="key:a")
    async with Gateway(settings, admission=quotas, observers=[heard]) as gateway:
        first = await gateway.chat(chat(), ctx)
        assert first.response["choices"]
        charged = await quotas.window_used("key:a")
        assert charged == gateway.estimate_cost(chat())
        with pytest.raises(CallerRateLimited):
            await gateway.chat(chat(), ctx)
        with pytest.raises(CallerRateLimited):
            await gateway.open_chat_stream(chat(), ctx)
        assert len(heard.calls) == 1  # the refusals made no attempt and reported no call
        await gateway.chat(chat(), CallContext("c2", caller="key:b"))  # another caller's window
    assert await quotas.window_used("key:a") == charged
    await quotas.aclose()


async def test_each_kind_of_call_asks_the_hook_with_its_estimate(sim) -> None:
    settings = settings_for_sim(sim)
    hook = Recording()
    ctx = CallContext("c1", caller="principal:svc")
    embed = EmbeddingsRequest(model="text-embedding-3-small", input=["a", "b"])
    async with Gateway(settings, admission=hook) as gateway:
        await gateway.chat(chat(max_tokens=50), ctx)
        await gateway.embeddings(embed, ctx)
        with pytest.raises(UnknownModel):
            await gateway.chat(chat(model="no-such-model"), ctx)  # refused free
        assert hook.asked == [
            ("principal:svc", gateway.estimate_cost(chat(max_tokens=50)), "gpt-4o"),
            ("principal:svc", gateway.estimate_cost(embed), embed.model),
        ]
