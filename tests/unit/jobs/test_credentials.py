"""One credential policy for the whole app, and every client and credential closed on shutdown."""

from __future__ import annotations

import pytest
from azure.identity.aio import DefaultAzureCredential, ManagedIdentityCredential

from shared.aoai import ClientProvider
from shared.credentials import CredentialPool, close_all, load_credential_policy
from shared.runtime import build_backlog, build_gateway
from shared.settings import GatewaySettings, load_backlog_settings

REGIONS = [
    {
        "name": name,
        "endpoint": f"https://{name}.openai.azure.com",
        "auth": "managed_identity",
        "api_style": "v1",
        "models": {"gpt-4o": {"deployment": "d", "tpm": 1000}},
    }
    for name in ("a", "b")
]


def test_the_policy_is_managed_identity_with_azure_client_id_or_developer_mode():
    assert load_credential_policy({}).describe() == {
        "mode": "managed_identity",
        "identity": "system_assigned",
    }
    user = load_credential_policy({"AZURE_CLIENT_ID": "cid"})
    assert user.describe()["client_id"] == "cid" and user.client_id_for(None) == "cid"
    assert user.client_id_for("region-specific") == "region-specific"
    assert isinstance(user.build(), ManagedIdentityCredential)
    developer = load_credential_policy({"AZURE_CREDENTIAL_MODE": "developer"})
    assert isinstance(developer.build(), DefaultAzureCredential)
    with pytest.raises(ValueError, match="AZURE_CREDENTIAL_MODE"):
        load_credential_policy({"AZURE_CREDENTIAL_MODE": "magic"})


async def test_close_all_closes_every_one_even_when_one_fails():
    closed: list[str] = []

    def closer(name: str, fail: bool = False):
        async def close() -> None:
            closed.append(name)
            if fail:
                raise RuntimeError(f"{name} failed")

        return close

    with pytest.raises(RuntimeError, match="a failed"):
        await close_all([closer("a", fail=True), closer("b"), closer("c", fail=True)])
    assert closed == ["a", "b", "c"]


async def test_client_provider_closes_every_client_and_credential_even_when_one_close_fails():
    settings = GatewaySettings.model_validate({"regions": REGIONS})
    closed: list[str] = []

    class Credential:
        def __init__(self, client_id):
            self.client_id = client_id

        async def get_token(self, *scopes, **kw):  # never called here
            raise AssertionError

        async def close(self):
            closed.append(f"credential:{self.client_id}")

    provider = ClientProvider(settings, credential_factory=Credential)
    first, second = provider.get(settings.regions[0]), provider.get(settings.regions[1])

    async def broken_close():
        closed.append("client:a")
        raise OSError("socket already gone")

    original = second.close

    async def tracked_close():
        closed.append("client:b")
        await original()

    first.close = broken_close  # type: ignore[method-assign]
    second.close = tracked_close  # type: ignore[method-assign]
    with pytest.raises(OSError):
        await provider.aclose()
    assert closed == ["client:a", "client:b", "credential:None"]


async def test_jobs_side_uses_the_same_policy_and_closes_its_service_bus_credential(
    monkeypatch,
):
    monkeypatch.setenv("AZURE_CLIENT_ID", "app-identity")
    settings = load_backlog_settings(
        {
            "ServiceBusConnection__fullyQualifiedNamespace": "ns.servicebus.windows.net",
            "AzureWebJobsStorage__accountName": "acct",
        }
    )
    backlog = build_backlog(settings, gateway=None)
    bus_client = backlog.services.bus._client
    credential = bus_client._credential
    assert isinstance(credential, ManagedIdentityCredential)
    store_table = backlog.services.store._table
    assert store_table.url.startswith("https://acct.table.core.windows.net")
    assert backlog.services.payloads._container.url.startswith("https://acct.blob.core.windows.net")
    assert backlog.services.parking._queue.url.startswith("https://acct.queue.core.windows.net")
    # one credential for the identity (storage and Service Bus share it), closed on shutdown
    assert store_table.credential is credential
    closed: list[str] = []
    original = credential.close

    async def tracked() -> None:
        closed.append("credential")
        await original()

    credential.close = tracked  # type: ignore[method-assign]
    await backlog.aclose()
    assert closed == ["credential"]


def test_identity_based_storage_by_queue_service_uri_derives_the_other_endpoints():
    settings = load_backlog_settings(
        {
            "ServiceBusConnection": "Endpoint=sb://127.0.0.1:1;SharedAccessKeyName=k;SharedAccessKey=v",
            "AzureWebJobsStorage__queueServiceUri": "https://acct2.queue.core.windows.net/",
        }
    )
    assert settings.storage_endpoint("queue") == "https://acct2.queue.core.windows.net"
    assert settings.storage_endpoint("table") == "https://acct2.table.core.windows.net"
    assert settings.storage_endpoint("blob") == "https://acct2.blob.core.windows.net"


async def test_shared_health_works_with_identity_based_storage_and_reports_the_store():
    """#10 finding 8: ``AzureWebJobsStorage__accountName`` alone used to leave health per instance."""
    settings = GatewaySettings.model_validate(
        {"regions": REGIONS, "storage_account": "acct", "storage_client_id": "storage-id"}
    )
    gateway = build_gateway(settings)
    try:
        shared = gateway.health_report()["shared_health"]
        assert shared["store"] == "TableVerdictStore"
        assert shared["backend"] == {
            "kind": "table",
            "table": "gatewayhealth",
            "endpoint": "https://acct.table.core.windows.net",
            "auth": {
                "mode": "managed_identity",
                "identity": "user_assigned",
                "client_id": "storage-id",
            },
        }
        table = gateway._sync.shared.store._table()
        assert isinstance(table.credential, ManagedIdentityCredential)
    finally:
        await gateway.aclose()
    local = build_gateway(GatewaySettings.model_validate({"regions": REGIONS}))
    assert local.health_report()["shared_health"]["store"] is None
    await local.aclose()


async def test_a_pool_shares_one_credential_per_identity():
    pool = CredentialPool(load_credential_policy({}))
    assert pool.get(None) is pool.get(None) and pool.get("x") is not pool.get(None)
    assert len(pool) == 2
    await pool.aclose()
    assert len(pool) == 0
