"""A backlog process with the batch lane (worker, timer and poison pumps), for crash tests.

Reads GATEWAY_* and BACKLOG_* settings from the environment like the app. ``LANE_CRASH_AT=<stage>``
makes the process SIGKILL itself the first time it reaches that step (a lane checkpoint such as
``after_upload``, or the job checkpoint ``after_finish``). Runs until SIGTERM.
"""

from __future__ import annotations

import asyncio
import os
import signal


async def main() -> None:
    from shared.runtime import build_backlog, build_gateway
    from shared.settings import load_backlog_settings, load_gateway_settings
    from tests.e2e.conftest import Harness

    crash_at = os.environ.get("LANE_CRASH_AT", "")

    async def checkpoint(stage: str, ref: str) -> None:
        if stage == crash_at:
            print(f"lane_process: SIGKILL at {stage} ({ref})", flush=True)
            os.kill(os.getpid(), signal.SIGKILL)

    gateway_settings = load_gateway_settings()
    gateway = build_gateway(gateway_settings)
    backlog = build_backlog(
        load_backlog_settings(),
        gateway,
        gateway_settings=gateway_settings,
        checkpoint=checkpoint,
        lane_checkpoint=checkpoint,
    )
    harness = await Harness(backlog, None, dict(os.environ), reply_queue="-").start()
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    print("lane_process: running", flush=True)
    await stop.wait()
    await harness.aclose()
    await gateway.aclose()


if __name__ == "__main__":
    asyncio.run(main())
