"""Fixtures for the benchmarks' own tests: the peers from ``testpeers`` (never from ``tests/``)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from testpeers.azurite import AzuriteHandle, start_azurite
from testpeers.broker import Broker, start_broker
from testpeers.sim import SimHandle, start_sim


@pytest.fixture
def chaos_sim(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SimHandle]:
    handle = start_sim(workdir=tmp_path_factory.mktemp("chaos-sim"))
    try:
        yield handle
    finally:
        handle.stop()


@pytest.fixture
def chaos_broker() -> Iterator[Broker]:
    broker = start_broker()
    try:
        yield broker
    finally:
        broker.stop()


@pytest.fixture
def chaos_storage(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AzuriteHandle]:
    handle = start_azurite(tmp_path_factory.mktemp("chaos-azurite"))
    try:
        yield handle
    finally:
        handle.stop()
