"""The operations routes on identity-based storage (what ``infra/`` deploys: no connection
string, ``AzureWebJobsStorage__*ServiceUri`` and a managed identity).

Azurite runs with ``--oauth basic`` over HTTPS (a self-signed certificate the app process
trusts through ``SSL_CERT_FILE``); ``ManagedIdentityCredential`` takes its token from the
simulator's App Service identity endpoint (``IDENTITY_ENDPOINT``). Azurite checks the token's
issuer, audience (``https://storage.azure.com``) and lifetime, not its signature, and no role
assignments: what this shows is that the routes reach the shared region-state table and the job
table through the app's credential policy, not that Azure's role checks pass.

Before the composition root, the routes built the health store from the connection string
only: ``GET /api/ops/state`` said ``shared_store: null`` and ``POST /api/ops/clear`` answered
409 ``no_shared_health``, while the gateway itself found the table.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from testpeers.azurite import self_signed_cert, start_azurite
from testpeers.devserver import settings_env
from testpeers.gateway import settings_for_sim

ROOT = Path(__file__).resolve().parents[3]

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
def oauth_azurite(tmp_path):
    cert = self_signed_cert(tmp_path)
    handle = start_azurite(tmp_path, oauth=cert)
    try:
        yield handle, cert[0]
    finally:
        handle.stop()


def test_ops_routes_find_the_shared_health_table_on_identity_based_storage(
    oauth_azurite, sim_factory
):
    azurite, cert = oauth_azurite
    sim = sim_factory()
    assert sim.identity is not None
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("GATEWAY_", "BACKLOG_", "AzureWebJobsStorage", "ServiceBusConnection"))
    }
    env.update(settings_env(settings_for_sim(sim)))
    env.update(sim.identity.env())
    env.update(
        {
            "AzureWebJobsStorage__tableServiceUri": azurite.service_uri("table"),
            "AzureWebJobsStorage__blobServiceUri": azurite.service_uri("blob"),
            "AzureWebJobsStorage__queueServiceUri": azurite.service_uri("queue"),
            "AzureWebJobsStorage__clientId": "storage-identity",
            # the backlog's settings need a namespace; the routes here never send
            "ServiceBusConnection": "Endpoint=sb://127.0.0.1:1;SharedAccessKeyName=k;"
            "SharedAccessKey=v;UseDevelopmentEmulator=true",
            "AZURE_CREDENTIAL_MODE": "managed_identity",
            "GATEWAY_USAGE": "off",
            "SSL_CERT_FILE": str(cert),
        }
    )
    done = subprocess.run(
        [sys.executable, "-m", "tests.functional.ops.identity_app"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    out = json.loads(done.stdout.strip().splitlines()[-1])

    assert out["state_before"]["status"] == 200
    assert out["state_before"]["body"]["shared_store"] == "table"
    assert out["clear"]["status"] == 200, out["clear"]
    cleared = out["clear"]["body"]["cleared"]
    assert "region/eastus2" in cleared
    after = out["state_after"]["body"]
    assert after["shared_store"] == "table"
    written = {r["key"]: r for r in after["shared"]}
    assert written["region/eastus2"]["state"] == "closed"
    assert written["region/eastus2"]["writer"] == "ops"
    # the job table is reached the same way (the backlog's own client)
    assert out["parked"]["status"] == 200, done.stderr[-3000:]
    assert out["parked"]["body"]["data"] == []
    # one store, the gateway's, reached through the app's credential policy
    assert out["same_store"] is True
    assert out["credential"] == "ManagedIdentityCredential"
    assert out["store"]["endpoint"] == azurite.service_uri("table")
    assert out["store"]["auth"] == {
        "mode": "managed_identity",
        "identity": "user_assigned",
        "client_id": "storage-identity",
    }
    # Azurite saw bearer tokens from the identity endpoint, not a shared key
    assert sim.identity.stats()["tokens_issued"] >= 1
