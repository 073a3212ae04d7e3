"""Local simulator of the Azure OpenAI data plane plus an App Service managed-identity token endpoint.

Development and test tool only: never deployed. Run with ``python -m aoai_sim --config FILE``.
"""

from ._runner import Simulator
from .config import SimConfig, load_config, parse_config
from .control import ControlError, IdentityControl, RegionControl

__all__ = [
    "ControlError",
    "IdentityControl",
    "RegionControl",
    "SimConfig",
    "Simulator",
    "load_config",
    "parse_config",
]
