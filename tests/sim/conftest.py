"""A simulator shared by a test module, reset before each test that uses it."""

from __future__ import annotations

from typing import Iterator

import pytest

from tests.fixtures.sim import SimHandle, start_sim


@pytest.fixture(scope="module")
def shared_sim(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SimHandle]:
    """Default regions plus identity, started once per module."""
    handle = start_sim(workdir=tmp_path_factory.mktemp("aoai-sim-shared"))
    try:
        yield handle
    finally:
        handle.stop()


@pytest.fixture
def fresh(shared_sim: SimHandle) -> SimHandle:
    """The shared simulator with faults, limits, stats and identity mode reset."""
    for region in shared_sim.regions.values():
        region.reset()
    if shared_sim.identity is not None:
        shared_sim.identity.reset()
    return shared_sim
