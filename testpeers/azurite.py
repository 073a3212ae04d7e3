"""Azurite, the real Azure Storage emulator, as a process on free ports.

``start_azurite(location)`` starts it (blob, queue, table; in-memory) and returns a handle whose
``stop()`` ends the process. Tests share one per session (``tests/fixtures/azurite.py``).
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from .ports import STARTUP_TIMEOUT_S, free_ports, wait_for_port

__all__ = ["ACCOUNT", "ACCOUNT_KEY", "AzuriteHandle", "start_azurite"]

ROOT = Path(__file__).resolve().parents[1]
ACCOUNT = "devstoreaccount1"
# The emulator's published, well-known development key (not a secret).
ACCOUNT_KEY = (
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
)


@dataclass(frozen=True)
class AzuriteHandle:
    blob_port: int
    queue_port: int
    table_port: int
    location: Path
    _proc: subprocess.Popen[bytes] | None = field(default=None, repr=False, compare=False)
    _log: IO[bytes] | None = field(default=None, repr=False, compare=False)

    @property
    def connection_string(self) -> str:
        host = "http://127.0.0.1"
        return (
            f"DefaultEndpointsProtocol=http;AccountName={ACCOUNT};AccountKey={ACCOUNT_KEY};"
            f"BlobEndpoint={host}:{self.blob_port}/{ACCOUNT};"
            f"QueueEndpoint={host}:{self.queue_port}/{ACCOUNT};"
            f"TableEndpoint={host}:{self.table_port}/{ACCOUNT};"
        )

    def stop(self) -> None:
        proc, log = self._proc, self._log
        if proc is not None:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if log is not None:
            log.close()


def _azurite_binary() -> str:
    local = ROOT / "node_modules" / ".bin" / "azurite"
    if local.exists():
        return str(local)
    found = shutil.which("azurite")
    if found:
        return found
    raise RuntimeError(
        "azurite is not installed: run `make test` (it runs `npm install`) or `npm install` in the repo root"
    )


def start_azurite(location: Path) -> AzuriteHandle:
    """Start Azurite (blob, queue, table, in memory) on free ports; its log goes to ``location``."""
    ports = dict(zip(("blob", "queue", "table"), free_ports(3), strict=True))
    cmd = [
        _azurite_binary(),
        "--silent",
        "--skipApiVersionCheck",
        "--disableTelemetry",
        "--inMemoryPersistence",
        "--blobHost",
        "127.0.0.1",
        "--blobPort",
        str(ports["blob"]),
        "--queueHost",
        "127.0.0.1",
        "--queuePort",
        str(ports["queue"]),
        "--tableHost",
        "127.0.0.1",
        "--tablePort",
        str(ports["table"]),
    ]
    log = open(location / "azurite.log", "wb")  # noqa: SIM115 - the child process writes it; closed by stop()
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
    handle = AzuriteHandle(ports["blob"], ports["queue"], ports["table"], location, proc, log)
    try:
        for port in ports.values():
            wait_for_port(port, timeout=STARTUP_TIMEOUT_S, proc=proc)
    except BaseException:
        handle.stop()
        raise
    return handle
