"""Settings, loaded once into frozen objects and validated at first use."""

from ._backlog import MAX_VISIBILITY_S, BacklogSettings, load_backlog_settings
from ._errors import SettingsError
from ._gateway import GatewaySettings, load_gateway_settings
from ._regions import ApiStyle, AuthMode, BatchDeploymentConfig, DeploymentConfig, RegionConfig

__all__ = [
    "MAX_VISIBILITY_S",
    "ApiStyle",
    "AuthMode",
    "BacklogSettings",
    "BatchDeploymentConfig",
    "DeploymentConfig",
    "GatewaySettings",
    "RegionConfig",
    "SettingsError",
    "load_backlog_settings",
    "load_gateway_settings",
]
