"""Settings, loaded once into frozen objects and validated at first use."""

from ._backlog import MAX_VISIBILITY_S, BacklogSettings, load_backlog_settings
from ._callers import CallerLimit, CallerLimits, load_caller_limits
from ._errors import SettingsError
from ._gateway import GatewaySettings, load_gateway_settings
from ._known import Misspelling, known_settings, unknown_settings
from ._models import MODEL_LIMITS, ModelLimits, model_limits
from ._regions import ApiStyle, AuthMode, BatchDeploymentConfig, DeploymentConfig, RegionConfig
from ._storage import HOST_STORAGE_NAMES, StorageSettings, storage_endpoint
from ._telemetry import TelemetrySettings, load_telemetry_settings
from ._usage import Price, PriceTable, UsageSettings, load_usage_settings

__all__ = [
    "HOST_STORAGE_NAMES",
    "MAX_VISIBILITY_S",
    "MODEL_LIMITS",
    "ApiStyle",
    "AuthMode",
    "BacklogSettings",
    "BatchDeploymentConfig",
    "CallerLimit",
    "CallerLimits",
    "DeploymentConfig",
    "GatewaySettings",
    "Misspelling",
    "ModelLimits",
    "Price",
    "PriceTable",
    "RegionConfig",
    "SettingsError",
    "StorageSettings",
    "TelemetrySettings",
    "UsageSettings",
    "known_settings",
    "load_backlog_settings",
    "load_caller_limits",
    "load_gateway_settings",
    "load_telemetry_settings",
    "load_usage_settings",
    "model_limits",
    "storage_endpoint",
    "unknown_settings",
]
