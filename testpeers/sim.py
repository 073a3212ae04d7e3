"""The Azure OpenAI simulator and its token endpoint as a real subprocess on free ports."""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aoai_sim.control import IdentityControl, RegionControl

from .ports import STARTUP_TIMEOUT_S, free_ports, wait_for_port

__all__ = [
    "DEFAULT_API_KEY",
    "DEFAULT_REGIONS",
    "IdentityHandle",
    "RegionHandle",
    "SimHandle",
    "start_sim",
]

_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_API_KEY = "local-dev-key"
_FILTER = {
    "prompt_triggers": ["SIM_FILTER_PROMPT"],
    "completion_triggers": ["SIM_FILTER_COMPLETION"],
    "category": "violence",
    "severity": "high",
}
DEFAULT_REGIONS: tuple[dict[str, Any], ...] = (
    {
        "name": "eastus2",
        "api_keys": [DEFAULT_API_KEY],
        "deployments": [
            {"name": "gpt-4o-prod", "model": "gpt-4o", "kind": "chat", "tpm": 450000},
            {
                "name": "embed-eastus2",
                "model": "text-embedding-3-small",
                "kind": "embeddings",
                "dimensions": 1536,
                "tpm": 350000,
            },
        ],
        "content_filter": _FILTER,
    },
    {
        "name": "swedencentral",
        "api_keys": [DEFAULT_API_KEY],
        "deployments": [
            {"name": "gpt4o-sweden", "model": "gpt-4o", "kind": "chat", "tpm": 450000},
            {
                "name": "embed-sweden",
                "model": "text-embedding-3-small",
                "kind": "embeddings",
                "dimensions": 1536,
                "tpm": 350000,
            },
        ],
        "content_filter": _FILTER,
    },
)


@dataclass
class RegionHandle:
    """One running region: where it listens and its control API."""

    name: str
    port: int
    api_key: str
    deployments: tuple[str, ...] = ()
    endpoint: str = field(init=False)
    v1_base_url: str = field(init=False)

    def __post_init__(self) -> None:
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self.v1_base_url = self.endpoint + "/openai/v1/"
        self._control = RegionControl(self.endpoint)

    def fault(self, kind: str, **params: Any) -> str:
        """POST /_sim/faults; returns the fault id."""
        return self._control.fault(kind, **params)

    def clear_fault(self, fault_id: str) -> bool:
        """DELETE /_sim/faults/{id}."""
        return self._control.clear_fault(fault_id)

    def batch_fault(self, kind: str, **params: Any) -> str:
        """POST /_sim/batch_faults; returns the fault id."""
        return self._control.batch_fault(kind, **params)

    def batches(self) -> dict[str, Any]:
        """GET /_sim/batches."""
        return self._control.batches()

    def reset(self) -> None:
        """POST /_sim/reset."""
        self._control.reset()

    def stats(self) -> dict[str, Any]:
        """GET /_sim/stats."""
        return self._control.stats()


@dataclass
class IdentityHandle:
    """The token endpoint: env for azure-identity and its control API."""

    port: int
    header: str
    path: str = "/msi/token"
    endpoint: str = field(init=False)

    def __post_init__(self) -> None:
        self.endpoint = f"http://127.0.0.1:{self.port}{self.path}"
        self._control = IdentityControl(f"http://127.0.0.1:{self.port}")

    def env(self) -> dict[str, str]:
        """IDENTITY_ENDPOINT and IDENTITY_HEADER for ManagedIdentityCredential."""
        return {"IDENTITY_ENDPOINT": self.endpoint, "IDENTITY_HEADER": self.header}

    def set_mode(
        self,
        *,
        refuse: bool = False,
        without_role: bool = False,
        ttl_s: float | None = None,
        refuse_status: int = 400,
    ) -> None:
        """Replace the endpoint's mode (omitted fields return to defaults)."""
        self._control.set_mode(
            refuse=refuse, without_role=without_role, ttl_s=ttl_s, refuse_status=refuse_status
        )

    def reset(self) -> None:
        """Default mode and zero stats."""
        self._control.reset()

    def stats(self) -> dict[str, Any]:
        """GET /_identity/stats."""
        return self._control.stats()


@dataclass
class SimHandle:
    """A running simulator process."""

    regions: dict[str, RegionHandle]
    identity: IdentityHandle | None
    config_path: Path
    log_path: Path
    _proc: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    def region(self, name: str) -> RegionHandle:
        """The region called ``name``."""
        return self.regions[name]

    @property
    def running(self) -> bool:
        """True while the process is alive."""
        return self._proc is not None and self._proc.poll() is None

    def log(self) -> str:
        """The process's stdout/stderr so far."""
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def stop(self) -> None:
        """Terminate the process (kill after 5 s); safe to call twice."""
        proc, self._proc = self._proc, None
        if proc is None:
            return
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)


def start_sim(
    regions: list[dict[str, Any]] | None = None,
    *,
    minute_seconds: float = 60,
    identity: bool = True,
    ttft_ms: float = 0,
    per_token_ms: float = 0,
    workdir: Path | None = None,
    extra: dict[str, Any] | None = None,
) -> SimHandle:
    """Write a config with free ports, start ``python -m aoai_sim``, wait until every port listens."""
    workdir = Path(workdir or tempfile.mkdtemp(prefix="aoai-sim-"))
    region_dicts = copy.deepcopy(list(regions) if regions is not None else list(DEFAULT_REGIONS))
    handles: dict[str, RegionHandle] = {}
    ports = free_ports(len(region_dicts) + 1)  # distinct: the regions' and the identity's
    for region, port in zip(region_dicts, ports, strict=False):
        region["port"] = port
        region["host"] = "127.0.0.1"
        keys = region.get("api_keys") or region.get("api_key") or [DEFAULT_API_KEY]
        keys = [keys] if isinstance(keys, str) else list(keys)
        region["api_keys"] = keys
        region.pop("api_key", None)
        deps = tuple(d["name"] for d in region.get("deployments", ()))
        handles[region["name"]] = RegionHandle(region["name"], region["port"], keys[0], deps)
    config: dict[str, Any] = {
        "minute_seconds": minute_seconds,
        "latency": {"ttft_ms": ttft_ms, "per_token_ms": per_token_ms},
        "regions": region_dicts,
        **(extra or {}),
    }
    id_handle = None
    if identity:
        id_handle = IdentityHandle(port=ports[-1], header="sim-identity-header")
        config["identity"] = {
            "host": "127.0.0.1",
            "port": id_handle.port,
            "header": id_handle.header,
        }
    config_path = workdir / "aoai_sim.json"
    config_path.write_text(json.dumps(config, indent=2))
    log_path = workdir / "aoai_sim.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith("AOAI_SIM_")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(_ROOT), env.get("PYTHONPATH")]))
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "aoai_sim", "--config", str(config_path), "--log-level", "INFO"],
            cwd=_ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
    handle = SimHandle(handles, id_handle, config_path, log_path, proc)
    try:
        for port in [h.port for h in handles.values()] + ([id_handle.port] if id_handle else []):
            wait_for_port(port, timeout=STARTUP_TIMEOUT_S, proc=proc)
    except Exception as exc:
        handle.stop()
        raise RuntimeError(f"aoai_sim did not start: {exc}\n{handle.log()}") from exc
    return handle
