"""The observer seam: every attempt and every finished call reach every observer, whatever the
log level; the structured log record is one observer among others."""

from __future__ import annotations

import logging

import pytest

from shared.aoai import (
    AttemptEvent,
    CallOutcome,
    EmbeddingsRequest,
    FailureKind,
    UnknownModel,
)

from ._helpers import chat, ctx

PREFER_EAST = {"eastus2": 0, "swedencentral": 1}


class Recorder:
    def __init__(self) -> None:
        self.attempts: list[AttemptEvent] = []
        self.calls: list[CallOutcome] = []

    def attempt_finished(self, event: AttemptEvent) -> None:
        self.attempts.append(event)

    def call_finished(self, outcome: CallOutcome) -> None:
        self.calls.append(outcome)


class Broken:
    def attempt_finished(self, event: AttemptEvent) -> None:
        raise RuntimeError("observer bug")

    def call_finished(self, outcome: CallOutcome) -> None:
        raise RuntimeError("observer bug")


@pytest.fixture
def quiet_logs():
    """Every ``shared`` log below ERROR off: observers must not depend on the log level."""
    log = logging.getLogger("shared")
    previous = log.level
    log.setLevel(logging.CRITICAL)
    yield
    log.setLevel(previous)


async def test_observers_hear_every_attempt_and_the_call_whatever_the_log_level(
    sim_factory, gateway_settings_factory, gateway_factory, quiet_logs
):
    sim = sim_factory()
    recorder = Recorder()
    gateway = gateway_factory(
        gateway_settings_factory(sim, priorities=PREFER_EAST), observers=[Broken(), recorder]
    )
    sim.region("eastus2").fault("error", count=1, status=503)
    context = ctx()
    result = await gateway.chat(chat(), context)

    assert [(e.attempt.region, e.attempt.outcome) for e in recorder.attempts] == [
        ("eastus2", FailureKind.SERVER_ERROR),
        ("swedencentral", None),
    ]
    assert {(e.operation, e.alias, e.ctx) for e in recorder.attempts} == {
        ("chat", "gpt-4o", context)
    }
    [outcome] = recorder.calls
    assert outcome.result is result and outcome.error is None and outcome.outcome == "ok"
    assert outcome.attempts == result.attempts and outcome.latency_ms >= 0

    with pytest.raises(UnknownModel):
        await gateway.chat(chat().model_copy(update={"model": "nope"}), context)
    failed = recorder.calls[-1]
    assert isinstance(failed.error, UnknownModel) and failed.outcome == "model_not_found"
    assert failed.result is None and failed.attempts == ()


async def test_streams_and_embeddings_report_once_each(
    sim_factory, gateway_settings_factory, gateway_factory
):
    sim = sim_factory()
    recorder = Recorder()
    settings = gateway_settings_factory(
        sim, deployment_overrides={"embed-eastus2": {"max_inputs": 2}}
    )
    gateway = gateway_factory(settings, observers=[recorder])

    stream = await gateway.open_chat_stream(chat(stream=True), ctx())
    assert recorder.calls == []  # not finished until the stream ends
    [_ async for _ in stream]
    await stream.aclose()
    [streamed] = recorder.calls
    assert streamed.operation == "chat_stream" and streamed.result is stream.result
    assert streamed.ttft_ms is not None

    cancelled = await gateway.open_chat_stream(chat(stream=True), ctx())
    await cancelled.aclose()
    assert recorder.calls[-1].cancelled and recorder.calls[-1].outcome == "cancelled"

    texts = [f"text {i}" for i in range(5)]
    result = await gateway.embeddings(
        EmbeddingsRequest(model="text-embedding-3-small", input=texts), ctx()
    )
    embedded = recorder.calls[-1]
    assert embedded.operation == "embeddings" and embedded.result is result
    assert len(result.attempts) == 3 == result.extra["batches"]
    assert len([e for e in recorder.attempts if e.operation == "embeddings"]) == 3


async def test_the_log_record_is_the_default_observer(
    sim_factory, gateway_settings_factory, gateway_factory, caplog
):
    sim = sim_factory()
    gateway = gateway_factory(gateway_settings_factory(sim))
    with caplog.at_level(logging.INFO, logger="shared.aoai"):
        result = await gateway.chat(chat(), ctx())
    [record] = [r for r in caplog.records if getattr(r, "event", None) == "aoai_call"]
    assert record.outcome == "ok" and record.region == result.region
    assert record.attempts == [a.as_dict() for a in result.attempts]
