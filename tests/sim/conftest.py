"""A simulator shared by a test module, reset before each test that uses it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.fixtures.sim import SimHandle, start_sim

# Credentials azure-identity would try before the managed identity endpoint.
_ENV_TO_CLEAR = (
    "AZURE_CLIENT_ID",
    "AZURE_TENANT_ID",
    "AZURE_CLIENT_SECRET",
    "AZURE_FEDERATED_TOKEN_FILE",
    "MSI_ENDPOINT",
    "MSI_SECRET",
    "IDENTITY_SERVER_THUMBPRINT",
    "IMDS_ENDPOINT",
)


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


@pytest.fixture
def identity_env(fresh: SimHandle, monkeypatch: pytest.MonkeyPatch) -> SimHandle:
    """The fresh simulator, with azure-identity's managed-identity variables pointing at its token endpoint."""
    assert fresh.identity is not None
    for name in _ENV_TO_CLEAR:
        monkeypatch.delenv(name, raising=False)
    for name, value in fresh.identity.env().items():
        monkeypatch.setenv(name, value)
    return fresh
