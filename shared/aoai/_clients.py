"""One async openai client per region, created on first use and reused across invocations.

This is the one seam for swapping transports: pass ``http_client_factory`` to build each
region's ``httpx2.AsyncClient`` yourself (tests, proxies). Every client has
``max_retries=0``: the gateway's router is the only retry layer.

=====================  ===========================================================================
region                 client
=====================  ===========================================================================
api_style v1           ``AsyncOpenAI(base_url=f"{endpoint}/openai/v1/", api_key=...)``
api_style dated        ``AsyncAzureOpenAI(azure_endpoint=endpoint, api_version=..., ...)``
auth openai            ``AsyncOpenAI(base_url=endpoint, api_key=...)`` (plain OpenAI)
=====================  ===========================================================================

Entra ID: one credential per identity from the app's one credential policy
(``shared.credentials``: managed identity with the region's ``client_id`` or ``AZURE_CLIENT_ID``;
``AZURE_CREDENTIAL_MODE=developer`` for local runs), shared by every region using it, wrapped by ``get_bearer_token_provider(cred,
"https://cognitiveservices.azure.com/.default")``. In openai 3.54 the v1 client takes it as a
callable ``api_key`` (awaited per request, sent as ``Authorization: Bearer``), and
``AsyncAzureOpenAI`` takes it as ``azure_ad_token_provider`` (awaited when it returns an
awaitable). The provider keeps the token in azure-core's ``AsyncBearerTokenCredentialPolicy``
and asks the credential again only when it is within 5 minutes of expiry (or past Azure's
``refresh_on``); the credential itself caches in MSAL. So the per-request cost is a cache check.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from shared.credentials import CredentialPool, close_all
from shared.settings import GatewaySettings, RegionConfig

if TYPE_CHECKING:
    import httpx2
    from azure.core.credentials_async import AsyncTokenCredential
    from openai import AsyncOpenAI

__all__ = ["COGNITIVE_SCOPE", "ClientProvider", "credential_key"]

COGNITIVE_SCOPE = "https://cognitiveservices.azure.com/.default"


def credential_key(region: RegionConfig) -> tuple[str, str]:
    """Regions with the same key authenticate the same way: a 401/403 on one is not retried on
    the others. (Keys are compared in memory only; they never leave this process.)"""
    if region.auth == "managed_identity":
        return ("managed_identity", region.client_id or "")
    return (region.auth, region.api_key.get_secret_value() if region.api_key else "")


class ClientProvider:
    """Lazily built, cached openai clients, one per region."""

    def __init__(
        self,
        settings: GatewaySettings,
        *,
        http_client_factory: Callable[[RegionConfig], httpx2.AsyncClient] | None = None,
        credential_factory: Callable[[str | None], AsyncTokenCredential] | None = None,
    ) -> None:
        self._settings = settings
        self._http_client_factory = http_client_factory
        self._credential_factory = credential_factory
        self._clients: dict[str, AsyncOpenAI] = {}
        self._credentials: CredentialPool | None = None  # built on first use
        self._token_providers: dict[str | None, Callable[[], Awaitable[str]]] = {}

    def get(self, region: RegionConfig) -> AsyncOpenAI:
        client = self._clients.get(region.name)
        if client is None:
            client = self._clients[region.name] = self._build(region)
        return client

    def _build(self, region: RegionConfig) -> AsyncOpenAI:
        import httpx2
        from openai import AsyncAzureOpenAI, AsyncOpenAI

        settings = self._settings
        common: dict[str, Any] = {
            "max_retries": 0,
            "timeout": httpx2.Timeout(settings.read_timeout_s, connect=settings.connect_timeout_s),
        }
        if self._http_client_factory is not None:
            common["http_client"] = self._http_client_factory(region)
        secret = region.api_key.get_secret_value() if region.api_key is not None else None
        if region.auth == "openai":
            return AsyncOpenAI(base_url=region.endpoint, api_key=secret, **common)
        if region.api_style == "v1":
            api_key = secret if region.auth == "api_key" else self._token_provider(region.client_id)
            return AsyncOpenAI(base_url=f"{region.endpoint}/openai/v1/", api_key=api_key, **common)
        credentials = (
            {"api_key": secret}
            if region.auth == "api_key"
            else {"azure_ad_token_provider": self._token_provider(region.client_id)}
        )
        return AsyncAzureOpenAI(
            azure_endpoint=region.endpoint, api_version=region.api_version, **credentials, **common
        )

    def _token_provider(self, client_id: str | None) -> Callable[[], Awaitable[str]]:
        provider = self._token_providers.get(client_id)
        if provider is None:
            from azure.identity.aio import get_bearer_token_provider

            credential = self._pool().get(client_id)
            provider = self._token_providers[client_id] = get_bearer_token_provider(
                credential, COGNITIVE_SCOPE
            )
        return provider

    def _pool(self) -> CredentialPool:
        if self._credentials is None:
            self._credentials = CredentialPool(factory=self._credential_factory)
        return self._credentials

    async def aclose(self) -> None:
        """Close every client and credential, even when closing one of them fails."""
        clients, self._clients = self._clients, {}
        pool, self._credentials = self._credentials, None
        self._token_providers = {}
        closers = [client.close for client in clients.values()]
        if pool is not None:
            closers.append(pool.aclose)
        await close_all(closers)
