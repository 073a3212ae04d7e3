"""Where storage lives: the endpoints of identity-based storage and the emulator's shorthand.
Shared by the backlog's clients and the gateway's tables. The tables' one helper (where a table
is, create on first use, ETag-guarded writes) is ``shared._tables``, re-exported here."""

from __future__ import annotations

from collections.abc import Mapping

__all__ = [
    "EtagTable",
    "RowConflict",
    "TableTarget",
    "expand_dev_connection",
    "storage_endpoint",
    "table_target",
]


def storage_endpoint(kind: str, *, account: str | None, uris: Mapping[str, str | None]) -> str:
    """The service endpoint of identity-based storage (shared with the gateway's health table)."""
    if uris.get(kind):
        return str(uris[kind]).rstrip("/")
    if account:
        return f"https://{account}.{kind}.core.windows.net"
    for other, uri in uris.items():
        if uri and f".{other}." in uri:  # https://acct.queue.core.windows.net -> .table.
            return uri.rstrip("/").replace(f".{other}.", f".{kind}.", 1)
    raise ValueError(f"no endpoint for identity-based {kind} storage")


# The emulator's published well-known account and key (not a secret); what UseDevelopmentStorage=true means.
_DEV = (
    "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;"
    "AccountKey=Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==;"
    "BlobEndpoint=http://127.0.0.1:10000/devstoreaccount1;QueueEndpoint=http://127.0.0.1:10001/devstoreaccount1;"
    "TableEndpoint=http://127.0.0.1:10002/devstoreaccount1;"
)


def expand_dev_connection(connection: str) -> str:
    """``UseDevelopmentStorage=true`` -> the emulator's connection string; anything else as is."""
    return (
        _DEV
        if connection.strip().rstrip(";").lower() == "usedevelopmentstorage=true"
        else connection
    )


from ._tables import EtagTable, RowConflict, TableTarget, table_target  # noqa: E402
