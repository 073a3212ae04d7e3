"""The gateway's frozen settings, from app settings (the environment) or local.settings.json Values.

Loaded through pydantic-settings (``AppSettings``): ``GATEWAY_<FIELD>``, and for storage the
host's own names (``AzureWebJobsStorage``, ``AzureWebJobsStorage__accountName``) as
``AliasChoices``.
"""

from __future__ import annotations

import json
import logging
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Literal

from pydantic import AliasChoices, Field, ValidationError, field_validator, model_validator
from pydantic_settings import NoDecode, SettingsConfigDict

from ._errors import SettingsError, settings_error_from
from ._regions import RegionConfig
from ._source import AppSettings, env_names, json_object, load_from
from ._storage import StorageSettings, storage_field

__all__ = ["GatewaySettings", "load_gateway_settings"]

_log = logging.getLogger(__name__)

_PREFIX = "GATEWAY_"
_KEY_NAME = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
_FINGERPRINT = re.compile(r"^[0-9a-f]{12}$")


class GatewaySettings(AppSettings):
    """Everything the access layer and the HTTP API need. App setting keys are ``GATEWAY_<FIELD>``."""

    model_config = SettingsConfigDict(
        frozen=True,
        extra="forbid",
        env_prefix=_PREFIX,
        case_sensitive=False,
        populate_by_name=True,
    )

    # NoDecode: the JSON is parsed by ``_regions_from_json`` below, so a bad table names itself.
    regions: Annotated[tuple[RegionConfig, ...], NoDecode] = Field(
        description="The region table, as JSON (GATEWAY_REGIONS) or a file (GATEWAY_REGIONS_FILE)."
    )
    connect_timeout_s: float = Field(default=3.0, gt=0)
    read_timeout_s: float = Field(
        default=60.0,
        gt=0,
        description="Longest silence from upstream before an attempt is abandoned.",
    )
    first_byte_timeout_s: float = Field(
        default=10.0,
        gt=0,
        description="Longest wait for an attempt's first chunk (streams, and non-streaming chats sent as streams).",
    )
    idle_timeout_s: float = Field(
        default=30.0, gt=0, description="Longest silence between two chunks of a stream."
    )
    hedge_enabled: bool = Field(
        default=True,
        description="Send a request whose first byte is late to the next eligible region too, and keep whichever answers first.",
    )
    hedge_floor_s: float = Field(
        default=1.0,
        gt=0,
        description="Earliest a request is hedged: the adaptive first-byte threshold is never below this.",
    )
    hedge_ceiling_s: float = Field(
        default=5.0,
        gt=0,
        description="Latest a request is hedged (also the threshold before a deployment has enough "
        "samples); capped at first_byte_timeout_s. No hedging when the floor is not below first_byte_timeout_s.",
    )
    hedge_quantile: float = Field(
        default=0.95,
        gt=0,
        lt=1,
        description="The quantile of a deployment's recent times to first byte that sets its hedge threshold.",
    )
    hedge_max_share: float = Field(
        default=0.05,
        ge=0,
        le=1,
        description="Most hedges per deployment, as a share of its calls in the window (at least one per window).",
    )
    hedge_window_s: float = Field(
        default=60.0, gt=0, description="The window the hedge share is counted over."
    )
    stream_upstream: bool = Field(
        default=True,
        description="Send non-streaming chats upstream as streams and assemble the body, so the deadlines above apply.",
    )
    call_deadline_s: float = Field(
        default=200.0, gt=0, description="Total budget of one call, under the 230 s HTTP cap."
    )
    circuit_failure_threshold: int = Field(
        default=3, ge=1, description="Consecutive transient failures that open a region's circuit."
    )
    circuit_cooloff_s: float = Field(default=30.0, gt=0)
    default_throttle_cooldown_s: float = Field(
        default=10.0, gt=0, description="Cooldown after a 429 that carries no usable header."
    )
    absurd_retry_after_s: float = Field(
        default=300.0,
        gt=0,
        description="A retry-after beyond this marks the deployment exhausted, for at most this long.",
    )
    exhaustion_probe_interval_s: float = Field(
        default=60.0,
        gt=0,
        description="How often an exhausted deployment is verified with a minimal real call.",
    )
    default_max_tokens: int = Field(
        default=4096, gt=0, description="Charged to the budget when a request sends no max_tokens."
    )
    quota_minute_s: float = Field(
        default=60.0,
        gt=0,
        description="Length of Azure's quota minute (TPM/RPM window; RPM uses a sixth of it). Tests shorten it.",
    )
    missing_deployment_s: float = Field(
        default=300.0, gt=0, description="How long a deployment that answered 404 is skipped."
    )
    health_degraded_after_s: float = Field(
        default=60.0,
        ge=0,
        description="GET /api/health says degraded while a deployment cools down longer than this (or is exhausted).",
    )
    max_response_bytes: int = Field(
        default=128 * 1024 * 1024,
        ge=1024,
        description="Largest upstream answer read (bytes received, a stream's in total); a larger "
        "one is the region's fault: the attempt fails over.",
    )
    max_embedding_inputs: int = Field(
        default=2048,
        ge=1,
        description="Most inputs one embeddings request may carry (OpenAI's own cap); more get 400.",
    )
    health_table: str = "gatewayhealth"
    health_cache_s: float = Field(default=2.0, ge=0)
    storage_connection: str | None = storage_field(
        "storage_connection",
        own="GATEWAY_STORAGE_CONNECTION",
        description="Storage for shared region health; None keeps health per instance.",
    )
    storage_account: str | None = storage_field(
        "storage_account",
        own="GATEWAY_STORAGE_ACCOUNT",
        description="Storage account name for identity-based access.",
    )
    storage_client_id: str | None = storage_field(
        "storage_client_id",
        own="GATEWAY_STORAGE_CLIENT_ID",
        description="User-assigned identity for identity-based storage.",
    )
    storage_table_uri: str | None = storage_field(
        "storage_table_uri",
        own="GATEWAY_STORAGE_TABLE_URI",
        description="Identity-based storage by service URI (table, or the queue's).",
    )
    storage_queue_uri: str | None = storage_field(
        "storage_queue_uri", own="GATEWAY_STORAGE_QUEUE_URI"
    )
    storage_blob_uri: str | None = storage_field("storage_blob_uri")
    ledger_enabled: bool = Field(
        default=True,
        description="Share each deployment's quota across instances through the ledger table "
        "(needs storage_connection); false: per-instance pacing.",
    )
    ledger_table: str = "gatewayledger"
    backlog_reserve: float = Field(
        default=0.2,
        ge=0,
        lt=1,
        description="Share of each deployment's TPM and RPM per window kept for interactive "
        "calls; released to the backlog as the window runs out.",
    )
    ledger_slice_fraction: float = Field(
        default=0.05,
        gt=0,
        le=1,
        description="A lease is sized to the instance's rate over this fraction of a quota minute.",
    )
    ledger_request_horizon: int = Field(
        default=6,
        ge=1,
        le=12,
        description="Request windows (a sixth of a minute each) a lease's requests may cover: the "
        "current one and the next ones before the token window ends; 1: the current only.",
    )
    ledger_fair_share: float = Field(
        default=2.0,
        ge=0,
        description="A backlog lease leaves its instance holding at most this many times an "
        "equal split of a window among the instances active in the last minute; 0: no cap.",
    )
    ledger_fallback_share: float = Field(
        default=0.1,
        gt=0,
        lt=1,
        description="Share of each deployment's quota one instance uses while the ledger table "
        "is unreachable (lower still when more instances were seen).",
    )
    ledger_timeout_s: float = Field(default=2.0, gt=0)
    ledger_retry_s: float = Field(
        default=10.0, gt=0, description="How long an unreachable ledger is left alone."
    )
    throttle_wait_s: float = Field(
        default=2.0,
        ge=0,
        description="Longest one interactive call waits in total for the gateway's own "
        "pacing (budget, ledger lease) before answering 429; never for Azure's 429s.",
    )
    backlog_throttle_wait_s: float = Field(
        default=60.0,
        ge=0,
        description="Longest one backlog job waits in total for the gateway's own pacing before "
        "it is parked (within the job's deadline); never for Azure's 429s.",
    )
    max_body_bytes: int = Field(
        default=4_000_000, gt=0, description="Larger HTTP request bodies get 413."
    )
    http_auth: Literal["function_key", "easy_auth"] = Field(
        default="function_key",
        description="How model-route callers authenticate: function keys (auth level function), or "
        "Entra ID tokens validated by App Service Authentication (auth level anonymous; the "
        "gateway then refuses requests without x-ms-client-principal). Read at indexing too.",
    )

    website_auth_enabled: bool = Field(
        default=False,
        validation_alias=AliasChoices("WEBSITE_AUTH_ENABLED"),
        description="Set by App Service (True) while App Service Authentication is on for the app. "
        "easy_auth mode serves the model routes only while it is true: only then are the "
        "x-ms-client-principal headers the platform's, never the client's.",
    )
    key_names: Annotated[dict[str, str], NoDecode] = Field(
        default_factory=dict,
        description="Names for function keys (JSON: name -> the key's 12-hex SHA-256 "
        "fingerprint): a caller with that key is key:<name> instead of key:<fingerprint>.",
    )
    routing_headers: Literal["auto", "true", "false"] = Field(
        default="auto",
        description="Send x-gateway-region / x-gateway-deployment (internal names) to callers: "
        "auto = only outside Azure (WEBSITE_SITE_NAME unset).",
    )
    website_site_name: str | None = Field(
        default=None,
        validation_alias=AliasChoices("WEBSITE_SITE_NAME"),
        description="Set by App Service: the app's name (tells Azure from a local run).",
    )

    @field_validator("key_names", mode="before")
    @classmethod
    def _key_names_from_json(cls, value: object) -> object:
        found = json_object(value, '{"<name>": "<12-hex key fingerprint>"}')
        names: dict[str, str] = {}
        for name, fingerprint in found.items():
            if not isinstance(name, str) or not _KEY_NAME.match(name):
                raise ValueError(f"{name!r}: a name is 1-64 letters, digits, '.', '_' or '-'")
            if not isinstance(fingerprint, str) or not _FINGERPRINT.match(fingerprint.lower()):
                raise ValueError(
                    f"{name}: the fingerprint is the first 12 hex digits of the key's SHA-256"
                )
            names[name] = fingerprint.lower()
        repeated = sorted({f for f in names.values() if list(names.values()).count(f) > 1})
        if repeated:
            raise ValueError(f"a fingerprint may be named once; repeated: {', '.join(repeated)}")
        return names

    @property
    def expose_routing_headers(self) -> bool:
        """Whether answers name the region and deployment (``routing_headers``)."""
        if self.routing_headers == "auto":
            return self.website_site_name is None
        return self.routing_headers == "true"

    @field_validator("regions", mode="before")
    @classmethod
    def _regions_from_json(cls, value: object) -> object:
        if not isinstance(value, str):
            return value
        try:
            return json.loads(value)
        except json.JSONDecodeError as exc:
            raise ValueError(f"not valid JSON: {exc}") from None

    @model_validator(mode="after")
    def _hedge_bounds(self) -> GatewaySettings:
        if self.hedge_floor_s > self.hedge_ceiling_s:
            raise ValueError("hedge_floor_s must not exceed hedge_ceiling_s")
        return self

    @field_validator("regions", mode="after")
    @classmethod
    def _table_ok(cls, regions: tuple[RegionConfig, ...]) -> tuple[RegionConfig, ...]:
        if not regions:
            raise ValueError("the table is empty; configure at least one region")
        names = [r.name for r in regions]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"region names must be unique; repeated: {', '.join(dupes)}")
        return regions

    @property
    def storage(self) -> StorageSettings:
        """The storage these settings name (the app's one storage settings model)."""
        return StorageSettings.of(self)

    @property
    def aliases(self) -> tuple[str, ...]:
        """Every logical model alias that some region serves, sorted."""
        return tuple(sorted({alias for region in self.regions for alias in region.models}))


def load_gateway_settings(environ: Mapping[str, str] | None = None) -> GatewaySettings:
    """Validate settings from ``environ`` (default ``os.environ``); raise SettingsError naming the bad key."""
    env = os.environ if environ is None else environ
    init: dict[str, object] = {}
    if not any(key.upper() == f"{_PREFIX}REGIONS" for key in env):
        init["regions"] = _regions_from_file(env)
    try:
        settings = load_from(GatewaySettings, env, **init)
    except ValidationError as exc:
        raise settings_error_from(
            exc, prefix=_PREFIX, source_names=env_names(GatewaySettings, _PREFIX)
        ) from exc
    if settings.http_auth == "easy_auth" and not settings.website_auth_enabled:
        # Settings load once per process: this is said once, and every model call answers 503.
        _log.error(
            "GATEWAY_HTTP_AUTH=easy_auth but App Service Authentication is off "
            "(WEBSITE_AUTH_ENABLED is not true): the model routes refuse every request"
        )
    return settings


def _regions_from_file(env: Mapping[str, str]) -> object:
    path = env.get(f"{_PREFIX}REGIONS_FILE")
    if not path:
        raise SettingsError(
            f"{_PREFIX}REGIONS: missing; set it to the region table as JSON, or {_PREFIX}REGIONS_FILE to a JSON file "
            "(see docs/configuration.md)"
        )
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise SettingsError(f"{_PREFIX}REGIONS_FILE: cannot read {path}: {exc}") from exc
