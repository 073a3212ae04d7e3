"""Start every configured region and the token endpoint in one event loop."""

from __future__ import annotations

import asyncio
import logging
import signal

from ._http import HttpServer
from ._identity import IdentityApp
from ._region import RegionApp
from .config import SimConfig

__all__ = ["Simulator", "serve_forever"]

_log = logging.getLogger(__name__)


class Simulator:
    """All servers of one config; start() binds them, stop() closes them."""

    def __init__(self, config: SimConfig) -> None:
        self.config = config
        self.regions = {r.name: RegionApp(r, config) for r in config.regions}
        self.identity = (
            IdentityApp(config.identity, config.token_secret) if config.identity else None
        )
        self._servers = [
            HttpServer(app, r.host, r.port, f"region {r.name}")
            for r, app in zip(config.regions, self.regions.values())
        ]
        if self.identity is not None and config.identity is not None:
            self._servers.append(
                HttpServer(
                    self.identity, config.identity.host, config.identity.port, "identity endpoint"
                )
            )

    async def start(self) -> None:
        """Bind every port (closing the ones already bound if one fails)."""
        started: list[HttpServer] = []
        try:
            for server in self._servers:
                await server.start()
                started.append(server)
        except BaseException:
            for server in started:
                await server.stop()
            raise

    async def stop(self) -> None:
        """Close every server and connection."""
        for server in self._servers:
            await server.stop()


async def serve_forever(config: SimConfig) -> None:
    """Run until SIGINT or SIGTERM."""
    sim = Simulator(config)
    await sim.start()
    done = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(sig, done.set)
        except (NotImplementedError, RuntimeError):
            pass
    for region in config.regions:
        print(f"aoai_sim: region {region.name} on http://{region.host}:{region.port}", flush=True)
    if config.identity is not None:
        print(f"aoai_sim: identity endpoint on {config.identity.endpoint}", flush=True)
    try:
        await done.wait()
    finally:
        _log.info("stopping")
        await sim.stop()
