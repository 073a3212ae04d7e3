"""One credential policy for the whole app: model calls, Service Bus, storage (jobs, parking,
blobs, shared region health) all get their Entra ID credential here.

| ``AZURE_CREDENTIAL_MODE``      | credential                                                          |
|--------------------------------|---------------------------------------------------------------------|
| ``managed_identity`` (default) | ``ManagedIdentityCredential``: the identity's client id when one is |
|                                | named (a connection's ``__clientId``, a region's ``client_id``),    |
|                                | else ``AZURE_CLIENT_ID`` (user-assigned), else system-assigned      |
| ``developer``                  | ``DefaultAzureCredential`` without managed identity: environment    |
|                                | variables, workload identity, Azure CLI / azd / PowerShell login —  |
|                                | for running the app locally against real Azure resources            |

Credentials are shared per client id (``CredentialPool``) and closed with the pool: every one,
even when closing another fails.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from azure.core.credentials_async import AsyncTokenCredential

    CredentialFactory = Callable[[str | None], AsyncTokenCredential]

__all__ = ["CredentialPolicy", "CredentialPool", "close_all", "load_credential_policy"]

logger = logging.getLogger(__name__)

MODE_SETTING = "AZURE_CREDENTIAL_MODE"
_MODES = ("managed_identity", "developer")


@dataclass(frozen=True, slots=True)
class CredentialPolicy:
    mode: Literal["managed_identity", "developer"] = "managed_identity"
    default_client_id: str | None = None  # AZURE_CLIENT_ID: the user-assigned identity

    def client_id_for(self, client_id: str | None) -> str | None:
        return client_id or self.default_client_id

    def build(self, client_id: str | None = None) -> AsyncTokenCredential:
        """A new async credential under this policy (the caller closes it; prefer a pool)."""
        chosen = self.client_id_for(client_id)
        if self.mode == "developer":
            from azure.identity.aio import DefaultAzureCredential

            return DefaultAzureCredential(exclude_managed_identity_credential=True)
        from azure.identity.aio import ManagedIdentityCredential

        return (
            ManagedIdentityCredential(client_id=chosen) if chosen else ManagedIdentityCredential()
        )

    def describe(self, client_id: str | None = None) -> dict[str, str | None]:
        """For health reports: the mode and which identity (never a secret)."""
        chosen = self.client_id_for(client_id)
        if self.mode == "developer":
            return {"mode": "developer"}
        return {
            "mode": "managed_identity",
            "identity": "user_assigned" if chosen else "system_assigned",
            **({"client_id": chosen} if chosen else {}),
        }


def load_credential_policy(environ: Mapping[str, str] | None = None) -> CredentialPolicy:
    """The policy from ``AZURE_CREDENTIAL_MODE`` and ``AZURE_CLIENT_ID``; ValueError on an unknown mode."""
    env = os.environ if environ is None else environ
    mode = (env.get(MODE_SETTING) or "managed_identity").strip().lower()
    if mode not in _MODES:
        raise ValueError(f"{MODE_SETTING}: '{mode}' is not one of {', '.join(_MODES)}")
    return CredentialPolicy(mode=mode, default_client_id=env.get("AZURE_CLIENT_ID") or None)  # type: ignore[arg-type]


class CredentialPool:
    """Credentials built on demand under one policy, one per client id, closed together."""

    def __init__(
        self, policy: CredentialPolicy | None = None, *, factory: CredentialFactory | None = None
    ) -> None:
        self.policy = policy if policy is not None else load_credential_policy()
        self._factory = factory
        self._credentials: dict[str | None, AsyncTokenCredential] = {}

    def get(self, client_id: str | None = None) -> AsyncTokenCredential:
        key = self.policy.client_id_for(client_id)
        credential = self._credentials.get(key)
        if credential is None:
            credential = self._credentials[key] = (
                self._factory(key) if self._factory is not None else self.policy.build(key)
            )
        return credential

    def __len__(self) -> int:
        return len(self._credentials)

    async def aclose(self) -> None:
        credentials, self._credentials = list(self._credentials.values()), {}
        await close_all([c.close for c in credentials], what="credential")


async def close_all(
    closers: Sequence[Callable[[], Awaitable[object]]], *, what: str = "client"
) -> None:
    """Await every closer, even when some fail; failures are logged, the first re-raised at the end."""
    first: BaseException | None = None
    for close in closers:
        try:
            await close()
        except Exception as exc:  # noqa: BLE001 - keep closing the others
            logger.warning("closing a %s failed: %s", what, exc.__class__.__name__)
            first = first or exc
    if first is not None:
        raise first
