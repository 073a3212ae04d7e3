"""A stream the caller closes before its end reaches the observers as an abandoned result that
carries what it is charged: the prompt estimate and the streamed output at four characters per
token, marked estimated (no usage chunk came). It stays a cancelled call, never a failure."""

from __future__ import annotations

from shared.aoai import CallOutcome

from ._helpers import chat, ctx


class Recorder:
    def __init__(self) -> None:
        self.calls: list[CallOutcome] = []

    def attempt_finished(self, event: object) -> None:
        return None

    def call_finished(self, outcome: CallOutcome) -> None:
        self.calls.append(outcome)


async def test_an_abandoned_stream_is_reported_with_its_estimated_usage(
    sim_factory, gateway_settings_factory, gateway_factory
):
    sim = sim_factory(per_token_ms=20)
    recorder = Recorder()
    gateway = gateway_factory(gateway_settings_factory(sim), observers=[recorder])
    stream = await gateway.open_chat_stream(chat(max_tokens=100, stream=True), ctx())
    text = ""
    async for chunk in stream:
        for choice in chunk.get("choices") or []:
            text += (choice.get("delta") or {}).get("content") or ""
        if len(text) >= 12:
            break
    await stream.aclose()
    [outcome] = recorder.calls
    assert outcome.cancelled and outcome.abandoned and outcome.outcome == "cancelled"
    assert outcome.error is None
    result = outcome.result
    assert result is not None and result.usage is not None and result.usage.estimated
    assert result.usage.prompt_tokens > 0
    assert result.usage.completion_tokens == -(-len(text) // 4)
    assert result.usage.total_tokens == result.usage.prompt_tokens + len(text) // 4 + bool(
        len(text) % 4
    )
    # A stream closed at once (nothing read) is still charged its prompt.
    stream = await gateway.open_chat_stream(chat(stream=True), ctx())
    await stream.aclose()
    usage = recorder.calls[-1].result.usage
    assert usage.prompt_tokens > 0 and usage.completion_tokens == 0 and usage.estimated
