"""The broker relies on azure-servicebus's private AMQP codec: it starts only on the version it was
checked against (pinned in requirements-dev.txt), and otherwise names both versions."""

from __future__ import annotations

from importlib.metadata import version

import pytest

import sbbroker
from sbbroker import _sdk


def test_the_tests_run_on_the_checked_version() -> None:
    assert version("azure-servicebus") == sbbroker.SDK_VERSION == "7.15.0"


def test_another_sdk_version_is_refused_naming_both(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_sdk, "installed_sdk_version", lambda: "7.99.0")
    broker = sbbroker.Broker(port=0)
    with pytest.raises(RuntimeError) as info:
        broker.start_in_thread()
    message = str(info.value)
    assert "7.15.0" in message and "7.99.0" in message
    assert broker._thread is None  # nothing was started


async def test_the_async_start_refuses_too(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_sdk, "installed_sdk_version", lambda: None)
    with pytest.raises(
        RuntimeError, match=r"checked against azure-servicebus 7\.15\.0, but no version"
    ):
        await sbbroker.Broker(port=0).start()
