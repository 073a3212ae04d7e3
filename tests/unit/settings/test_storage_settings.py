"""One storage settings model: the gateway's and the backlog's settings read storage from the
same table of host names and hand over the same ``StorageSettings``; the gateway's own
``GATEWAY_STORAGE_*`` names come first for the gateway only."""

from __future__ import annotations

import json

import pytest

from shared.settings import (
    HOST_STORAGE_NAMES,
    GatewaySettings,
    StorageSettings,
    load_backlog_settings,
    load_gateway_settings,
)

REGIONS = (
    '[{"name": "eastus2", "endpoint": "https://contoso-eus2.openai.azure.com/", '
    '"models": {"gpt-4o": {"deployment": "gpt-4o-prod", "tpm": 30000}}}]'
)
BUS = {"ServiceBusConnection": "Endpoint=sb://127.0.0.1:1;SharedAccessKeyName=k;SharedAccessKey=v"}


@pytest.mark.parametrize("field", sorted(HOST_STORAGE_NAMES))
def test_both_settings_read_every_host_storage_name(field):
    value = "https://acct.table.core.windows.net" if field.endswith("_uri") else "v"
    env = {HOST_STORAGE_NAMES[field]: value}
    if field != "storage_connection":  # the backlog refuses settings without any storage
        env.setdefault("AzureWebJobsStorage__accountName", "acct")
    gateway = load_gateway_settings({"GATEWAY_REGIONS": REGIONS, **env})
    backlog = load_backlog_settings({**BUS, **env})
    assert getattr(gateway, field) == value == getattr(backlog, field)
    assert gateway.storage == backlog.storage
    assert isinstance(gateway.storage, StorageSettings)


def test_the_gateway_reads_its_own_names_first_and_the_backlog_only_the_hosts():
    env = {
        "AzureWebJobsStorage": "host-storage",
        "GATEWAY_STORAGE_CONNECTION": "own-storage",
        "AzureWebJobsStorage__clientId": "host-id",
        "GATEWAY_STORAGE_CLIENT_ID": "own-id",
    }
    gateway = load_gateway_settings({"GATEWAY_REGIONS": REGIONS, **env})
    backlog = load_backlog_settings({**BUS, **env})
    assert (gateway.storage.connection, gateway.storage.client_id) == ("own-storage", "own-id")
    # the host's queue trigger (parking poison) reads AzureWebJobsStorage: so does the backlog
    assert (backlog.storage.connection, backlog.storage.client_id) == ("host-storage", "host-id")


def test_endpoints_of_identity_based_storage():
    by_queue = StorageSettings(queue_uri="https://acct2.queue.core.windows.net/")
    assert by_queue.endpoint("table") == "https://acct2.table.core.windows.net"
    assert StorageSettings(account="a").endpoint("blob") == "https://a.blob.core.windows.net"
    assert not StorageSettings().configured
    by_hand = GatewaySettings.model_validate(
        {"regions": json.loads(REGIONS), "storage_account": "acct", "storage_client_id": "id"}
    )
    assert by_hand.storage == StorageSettings(account="acct", client_id="id")
