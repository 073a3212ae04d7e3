"""Free loopback ports and waiting for a server to listen."""

from __future__ import annotations

import socket
import subprocess
import time

__all__ = ["STARTUP_TIMEOUT_S", "free_port", "free_ports", "wait_for_port"]

# How long a peer may take to listen: generous, because a busy CI machine starts node and Python slowly.
STARTUP_TIMEOUT_S = 120.0


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nobody listens on right now."""
    return free_ports(1)[0]


def free_ports(count: int) -> list[int]:
    """``count`` distinct TCP ports on 127.0.0.1 that nobody listens on right now. The sockets
    stay bound until all are chosen: one at a time, the OS may hand the same port out twice
    (a simulator with two regions, or Azurite's three services, then fails to bind)."""
    sockets = []
    try:
        for _ in range(count):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sockets.append(sock)
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def wait_for_port(
    port: int, *, timeout: float = 20.0, proc: subprocess.Popen[bytes] | None = None
) -> None:
    """Block until something accepts on 127.0.0.1:port; fail early if ``proc`` died."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode} before listening on {port}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing listened on 127.0.0.1:{port} within {timeout}s")
