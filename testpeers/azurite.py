"""Azurite, the real Azure Storage emulator, as a process on free ports.

``start_azurite(location)`` starts it (blob, queue, table; in-memory) and returns a handle whose
``stop()`` ends the process. Tests share one per session (``tests/fixtures/azurite.py``).

``start_azurite(location, oauth=self_signed_cert(location))`` starts one that takes Entra ID
bearer tokens (``--oauth basic``: Azurite checks the token's issuer, audience and lifetime, not
its signature) over HTTPS, as identity-based storage in Azure is reached.
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from .ports import STARTUP_TIMEOUT_S, free_ports, wait_for_port

__all__ = ["ACCOUNT", "ACCOUNT_KEY", "AzuriteHandle", "self_signed_cert", "start_azurite"]

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
    scheme: str = "http"

    def service_uri(self, kind: str) -> str:
        """``<scheme>://127.0.0.1:<port>/devstoreaccount1`` of ``kind`` (blob, queue, table)."""
        port = {"blob": self.blob_port, "queue": self.queue_port, "table": self.table_port}[kind]
        return f"{self.scheme}://127.0.0.1:{port}/{ACCOUNT}"

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


def self_signed_cert(location: Path) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 and its key (``cert.pem``, ``key.pem`` in
    ``location``): Azurite's HTTPS; a client trusts it through ``SSL_CERT_FILE``."""
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = location / "cert.pem", location / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


def start_azurite(location: Path, *, oauth: tuple[Path, Path] | None = None) -> AzuriteHandle:
    """Start Azurite (blob, queue, table, in memory) on free ports; its log goes to ``location``.
    ``oauth``: (certificate, key): HTTPS, and Entra ID bearer tokens accepted (``--oauth basic``)."""
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
    if oauth is not None:
        cmd += ["--oauth", "basic", "--cert", str(oauth[0]), "--key", str(oauth[1])]
    log = open(location / "azurite.log", "wb")  # noqa: SIM115 - the child process writes it; closed by stop()
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
    handle = AzuriteHandle(
        ports["blob"],
        ports["queue"],
        ports["table"],
        location,
        proc,
        log,
        scheme="https" if oauth is not None else "http",
    )
    try:
        for port in ports.values():
            wait_for_port(port, timeout=STARTUP_TIMEOUT_S, proc=proc)
    except BaseException:
        handle.stop()
        raise
    return handle
