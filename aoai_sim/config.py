"""Frozen configuration of the simulator, read from a JSON file plus environment overrides."""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

__all__ = [
    "AUDIENCE",
    "DEFAULT_CONFIG_PATH",
    "BatchConfig",
    "ConfigError",
    "ContentFilterConfig",
    "DeploymentConfig",
    "IdentityConfig",
    "LatencyConfig",
    "RegionConfig",
    "SimConfig",
    "apply_env",
    "load_config",
    "parse_config",
]

_log = logging.getLogger(__name__)

AUDIENCE = "https://cognitiveservices.azure.com"
DEFAULT_CONFIG_PATH = Path(__file__).with_name("local.json")
_LOOPBACK = frozenset({"127.0.0.1", "localhost", "::1"})
_CATEGORIES = ("hate", "sexual", "violence", "self_harm")
_SEVERITIES = ("safe", "low", "medium", "high")
_DEFAULT_SECRET = "aoai-sim-local-signing-secret"


class ConfigError(ValueError):
    """The configuration is malformed."""


@dataclass(frozen=True)
class LatencyConfig:
    """Time to first token and time per further token, in real milliseconds."""

    ttft_ms: float = 0.0
    per_token_ms: float = 0.0


@dataclass(frozen=True)
class ContentFilterConfig:
    """Trigger words (case-insensitive substrings) mapped to the category they trip."""

    prompt_triggers: tuple[tuple[str, str], ...] = ()
    completion_triggers: tuple[tuple[str, str], ...] = ()
    severity: str = "high"


@dataclass(frozen=True)
class BatchConfig:
    """The Batch API's clock, in real seconds: how long each phase lasts and what stands for "24h"."""

    validating_s: float = 1.0
    in_progress_s: float = 3.0
    per_line_ms: float = 0.0
    finalizing_s: float = 1.0
    cancelling_s: float = 0.5
    window_s: float = 120.0  # the completion window ("24h") on the scaled clock

    @property
    def hour_seconds(self) -> float:
        """Real seconds standing for one hour of the batch clock."""
        return self.window_s / 24


@dataclass(frozen=True)
class DeploymentConfig:
    """One deployment: a chat or embeddings model with its quota (a Global Batch one: its enqueued tokens)."""

    name: str
    model: str
    kind: str  # "chat" | "embeddings"
    tpm: int
    rpm: int | None = None
    dimensions: int = 1536
    default_max_tokens: int = 4096
    model_version: str | None = None
    sku: str = "standard"  # "standard" | "global_batch"
    enqueued_tokens: int = 0  # Global Batch: the enqueued-token quota
    limit_window: str = "fixed"  # "fixed" | "rolling": how the rate limiter counts (``_limits``)

    @property
    def batch(self) -> bool:
        """A Global Batch deployment: reachable only through the Batch API."""
        return self.sku == "global_batch"

    @property
    def effective_rpm(self) -> int:
        """Explicit rpm, else Azure's ratio: 6 RPM per 1,000 TPM."""
        return self.rpm if self.rpm is not None else max(1, (self.tpm * 6) // 1000)


@dataclass(frozen=True)
class RegionConfig:
    """One simulated Azure OpenAI resource, served on its own port."""

    name: str
    port: int
    deployments: tuple[DeploymentConfig, ...]
    host: str = "127.0.0.1"
    api_keys: tuple[str, ...] = ("local-dev-key",)
    authorized_client_ids: tuple[str, ...] | None = None
    content_filter: ContentFilterConfig = field(default_factory=ContentFilterConfig)
    latency: LatencyConfig | None = None
    extra_api_versions: tuple[str, ...] = ()
    finish_in_delta: bool = False  # streams carry finish_reason inside the final delta

    def deployment(self, name: str) -> DeploymentConfig | None:
        """The deployment called ``name``, or None."""
        for dep in self.deployments:
            if dep.name == name:
                return dep
        return None


@dataclass(frozen=True)
class IdentityConfig:
    """The local App Service managed-identity token endpoint."""

    port: int
    host: str = "127.0.0.1"
    path: str = "/msi/token"
    header: str = "local-identity-header"
    client_id: str = "11111111-1111-4111-8111-111111111111"
    principal_id: str = "22222222-2222-4222-8222-222222222222"
    tenant_id: str = "33333333-3333-4333-8333-333333333333"
    ttl_s: float = 3600.0

    @property
    def endpoint(self) -> str:
        """The value for IDENTITY_ENDPOINT."""
        return f"http://{self.host}:{self.port}{self.path}"


@dataclass(frozen=True)
class SimConfig:
    """The whole simulator: regions, the token endpoint and shared settings."""

    regions: tuple[RegionConfig, ...]
    identity: IdentityConfig | None = None
    minute_seconds: float = 60.0
    latency: LatencyConfig = field(default_factory=LatencyConfig)
    token_secret: str = _DEFAULT_SECRET
    batch: BatchConfig = field(default_factory=BatchConfig)

    def latency_for(self, region: RegionConfig) -> LatencyConfig:
        """The region's latency, else the global one."""
        return region.latency or self.latency


def load_config(path: str | Path | None = None, env: Mapping[str, str] | None = None) -> SimConfig:
    """Read ``path`` (default: AOAI_SIM_CONFIG, else local.json) and apply ``env`` overrides."""
    env = env or {}
    chosen = Path(path or env.get("AOAI_SIM_CONFIG") or DEFAULT_CONFIG_PATH)
    try:
        raw = json.loads(chosen.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise ConfigError(f"cannot read config {chosen}: {exc}") from exc
    return apply_env(parse_config(raw), env)


def parse_config(raw: Mapping[str, Any]) -> SimConfig:
    """Build a SimConfig from the JSON document's dict."""
    if not isinstance(raw, Mapping):
        raise ConfigError("config must be a JSON object")
    minute_seconds = _positive(raw.get("minute_seconds", 60), "minute_seconds")
    default_keys = _keys(raw.get("api_keys", raw.get("api_key", "local-dev-key")), "api_key")
    latency = _latency(raw.get("latency") or {}, "latency") or LatencyConfig()
    regions_raw = raw.get("regions")
    if not isinstance(regions_raw, list) or not regions_raw:
        raise ConfigError("config needs a non-empty 'regions' list")
    regions = tuple(_region(r, default_keys) for r in regions_raw)
    names = [r.name for r in regions]
    if len(set(names)) != len(names):
        raise ConfigError(f"duplicate region names: {names}")
    identity = _identity(raw["identity"]) if raw.get("identity") else None
    return SimConfig(
        regions=regions,
        identity=identity,
        minute_seconds=minute_seconds,
        latency=latency,
        token_secret=str(raw.get("token_secret") or _DEFAULT_SECRET),
        batch=_batch(raw.get("batch") or {}),
    )


def _batch(raw: Mapping[str, Any]) -> BatchConfig:
    if not isinstance(raw, Mapping):
        raise ConfigError("'batch' must be an object")
    defaults = BatchConfig()
    values = {}
    for name in ("validating_s", "in_progress_s", "per_line_ms", "finalizing_s", "cancelling_s"):
        value = float(raw.get(name, getattr(defaults, name)))
        if value < 0:
            raise ConfigError(f"batch.{name} must not be negative")
        values[name] = value
    values["window_s"] = _positive(raw.get("window_s", defaults.window_s), "batch.window_s")
    return BatchConfig(**values)


def apply_env(config: SimConfig, env: Mapping[str, str]) -> SimConfig:
    """Return ``config`` with the AOAI_SIM_* environment overrides applied."""
    minute_seconds = config.minute_seconds
    if env.get("AOAI_SIM_MINUTE_SECONDS"):
        minute_seconds = _positive(float(env["AOAI_SIM_MINUTE_SECONDS"]), "AOAI_SIM_MINUTE_SECONDS")
    latency_override = any(env.get(k) for k in ("AOAI_SIM_TTFT_MS", "AOAI_SIM_PER_TOKEN_MS"))
    latency = config.latency
    if latency_override:
        latency = LatencyConfig(
            ttft_ms=float(env.get("AOAI_SIM_TTFT_MS") or latency.ttft_ms),
            per_token_ms=float(env.get("AOAI_SIM_PER_TOKEN_MS") or latency.per_token_ms),
        )
    regions = []
    for region in config.regions:
        suffix = _env_suffix(region.name)
        changes: dict[str, Any] = {}
        if env.get(f"AOAI_SIM_PORT_{suffix}"):
            changes["port"] = int(env[f"AOAI_SIM_PORT_{suffix}"])
        key = env.get(f"AOAI_SIM_API_KEY_{suffix}") or env.get("AOAI_SIM_API_KEY")
        if key:
            changes["api_keys"] = (key,)
        if latency_override:
            changes["latency"] = None
        deps = list(region.deployments)
        for kind, var in (("chat", "CHAT"), ("embeddings", "EMBEDDINGS")):
            new_name = env.get(f"AOAI_SIM_{var}_DEPLOYMENT_{suffix}")
            idx = next((i for i, d in enumerate(deps) if d.kind == kind), None)
            if new_name and idx is not None:
                deps[idx] = replace(deps[idx], name=new_name)
        if env.get("AOAI_SIM_TPM"):
            deps = [replace(d, tpm=int(env["AOAI_SIM_TPM"])) for d in deps]
        changes["deployments"] = tuple(deps)
        regions.append(replace(region, **changes))
    identity = config.identity
    if identity is not None:
        id_changes: dict[str, Any] = {}
        if env.get("AOAI_SIM_IDENTITY_PORT"):
            id_changes["port"] = int(env["AOAI_SIM_IDENTITY_PORT"])
        if env.get("AOAI_SIM_IDENTITY_HEADER"):
            id_changes["header"] = env["AOAI_SIM_IDENTITY_HEADER"]
        identity = replace(identity, **id_changes)
    if env.get("AOAI_SIM_IDENTITY", "").lower() in ("0", "false", "off", "no"):
        identity = None
    return replace(
        config,
        regions=tuple(regions),
        identity=identity,
        minute_seconds=minute_seconds,
        latency=latency,
        token_secret=env.get("AOAI_SIM_TOKEN_SECRET") or config.token_secret,
    )


def _env_suffix(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9]", "_", name).upper()


def _positive(value: Any, what: str) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{what} must be a number") from exc
    if number <= 0:
        raise ConfigError(f"{what} must be positive")
    return number


def _host(value: Any, what: str) -> str:
    host = str(value or "127.0.0.1")
    if host not in _LOOPBACK:
        raise ConfigError(f"{what}: only loopback hosts are allowed, got {host!r}")
    return host


def _port(value: Any, what: str) -> int:
    if not isinstance(value, int) or not 0 < value < 65536:
        raise ConfigError(f"{what}.port must be an integer port, got {value!r}")
    return value


def _keys(value: Any, what: str) -> tuple[str, ...]:
    keys = (value,) if isinstance(value, str) else tuple(value or ())
    if not keys or not all(isinstance(k, str) and k for k in keys):
        raise ConfigError(f"{what} must be a non-empty string or list of strings")
    return keys


def _latency(raw: Mapping[str, Any], what: str) -> LatencyConfig | None:
    if not raw:
        return None
    return LatencyConfig(
        ttft_ms=float(raw.get("ttft_ms", 0) or 0),
        per_token_ms=float(raw.get("per_token_ms", 0) or 0),
    )


def _triggers(raw: Any, default_category: str, what: str) -> tuple[tuple[str, str], ...]:
    if raw is None:
        return ()
    pairs = raw.items() if isinstance(raw, Mapping) else ((w, default_category) for w in raw)
    out = []
    for word, category in pairs:
        if category not in _CATEGORIES:
            raise ConfigError(f"{what}: category {category!r} not in {_CATEGORIES}")
        out.append((str(word).lower(), category))
    return tuple(out)


def _content_filter(raw: Mapping[str, Any] | None) -> ContentFilterConfig:
    raw = raw or {}
    category = raw.get("category", "violence")
    severity = raw.get("severity", "high")
    if severity not in _SEVERITIES[1:]:
        raise ConfigError(f"content_filter.severity must be one of {_SEVERITIES[1:]}")
    return ContentFilterConfig(
        prompt_triggers=_triggers(raw.get("prompt_triggers"), category, "prompt_triggers"),
        completion_triggers=_triggers(
            raw.get("completion_triggers"), category, "completion_triggers"
        ),
        severity=severity,
    )


_LIMIT_WINDOWS = ("fixed", "rolling")


def _limit_window(value: Any, where: str) -> str:
    window = str(value)
    if window not in _LIMIT_WINDOWS:
        raise ConfigError(f"{where}: limit_window must be one of {_LIMIT_WINDOWS}")
    return window


def _deployment(
    raw: Mapping[str, Any], where: str, limit_window: str = "fixed"
) -> DeploymentConfig:
    try:
        name, model = str(raw["name"]), str(raw["model"])
    except (KeyError, TypeError) as exc:
        raise ConfigError(f"{where}: each deployment needs 'name' and 'model'") from exc
    kind = raw.get("kind") or ("embeddings" if "embedding" in model else "chat")
    if kind not in ("chat", "embeddings"):
        raise ConfigError(f"{where}/{name}: kind must be 'chat' or 'embeddings'")
    default_tpm = 350_000 if kind == "embeddings" else 450_000
    rpm = raw.get("rpm")
    sku = str(raw.get("sku", "standard"))
    if sku not in ("standard", "global_batch"):
        raise ConfigError(f"{where}/{name}: sku must be 'standard' or 'global_batch'")
    if sku == "global_batch" and kind != "chat":
        raise ConfigError(f"{where}/{name}: a global_batch deployment must be a chat model")
    return DeploymentConfig(
        name=name,
        model=model,
        kind=kind,
        tpm=int(raw.get("tpm", default_tpm)),
        rpm=int(rpm) if rpm is not None else None,
        dimensions=int(raw.get("dimensions", 1536)),
        default_max_tokens=int(raw.get("default_max_tokens", 4096)),
        model_version=raw.get("model_version"),
        sku=sku,
        enqueued_tokens=int(raw.get("enqueued_tokens", 5_000_000 if sku == "global_batch" else 0)),
        limit_window=_limit_window(raw.get("limit_window", limit_window), f"{where}/{name}"),
    )


def _region(raw: Mapping[str, Any], default_keys: tuple[str, ...]) -> RegionConfig:
    if not isinstance(raw, Mapping) or not raw.get("name"):
        raise ConfigError("each region needs a 'name'")
    name = str(raw["name"])
    deps_raw = raw.get("deployments")
    if not isinstance(deps_raw, list) or not deps_raw:
        raise ConfigError(f"region {name}: needs a non-empty 'deployments' list")
    window = _limit_window(raw.get("limit_window", "fixed"), f"region {name}")
    deployments = tuple(_deployment(d, name, window) for d in deps_raw)
    if len({d.name for d in deployments}) != len(deployments):
        raise ConfigError(f"region {name}: duplicate deployment names")
    keys_raw = raw.get("api_keys", raw.get("api_key"))
    authorized = raw.get("authorized_client_ids")
    return RegionConfig(
        name=name,
        port=_port(raw.get("port"), f"region {name}"),
        host=_host(raw.get("host"), f"region {name}"),
        deployments=deployments,
        api_keys=_keys(keys_raw, f"region {name}.api_keys") if keys_raw else default_keys,
        authorized_client_ids=tuple(authorized) if authorized is not None else None,
        content_filter=_content_filter(raw.get("content_filter")),
        latency=_latency(raw.get("latency") or {}, f"region {name}.latency"),
        extra_api_versions=tuple(raw.get("api_versions") or ()),
        finish_in_delta=bool(raw.get("finish_in_delta", False)),
    )


def _identity(raw: Mapping[str, Any]) -> IdentityConfig:
    if not isinstance(raw, Mapping):
        raise ConfigError("'identity' must be an object")
    defaults = IdentityConfig(port=1)
    path = str(raw.get("path", defaults.path))
    return IdentityConfig(
        port=_port(raw.get("port"), "identity"),
        host=_host(raw.get("host"), "identity"),
        path=path if path.startswith("/") else "/" + path,
        header=str(raw.get("header", defaults.header)),
        client_id=str(raw.get("client_id", defaults.client_id)),
        principal_id=str(raw.get("principal_id", defaults.principal_id)),
        tenant_id=str(raw.get("tenant_id", defaults.tenant_id)),
        ttl_s=_positive(raw.get("ttl_s", defaults.ttl_s), "identity.ttl_s"),
    )
