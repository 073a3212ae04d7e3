"""``python -m sbbroker --port N [--queue NAME ...]``: run the test broker in the foreground."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
from collections.abc import Sequence

from ._admin_http import serve_admin
from ._broker import LOOPBACK_HOSTS, Broker

__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m sbbroker", description="Service Bus test broker (AMQP 1.0, no TLS)."
    )
    p.add_argument(
        "--host", default="127.0.0.1", choices=LOOPBACK_HOSTS, help="loopback address to bind"
    )
    p.add_argument("--port", type=int, default=5672, help="AMQP port (0 picks a free one)")
    p.add_argument("--queue", action="append", default=[], help="declare a queue (repeatable)")
    p.add_argument(
        "--no-auto-create", action="store_true", help="unknown queues are amqp:not-found"
    )
    p.add_argument("--max-delivery-count", type=int, default=10)
    p.add_argument("--lock-duration-s", type=float, default=30.0)
    p.add_argument(
        "--dead-letter-on-expiration", action="store_true", help="expired messages go to the DLQ"
    )
    p.add_argument(
        "--default-ttl-s", type=float, default=None, help="TTL for messages that set none"
    )
    p.add_argument(
        "--duplicate-detection-window-s",
        type=float,
        default=None,
        help="RequiresDuplicateDetection on every queue, with this history window",
    )
    p.add_argument("--max-frame-size", type=int, default=65536)
    p.add_argument("--max-message-size", type=int, default=256 * 1024)
    p.add_argument(
        "--admin-port", type=int, default=None, help="serve JSON queue state over HTTP on this port"
    )
    p.add_argument("-v", "--verbose", action="store_true")
    return p


async def _run(args: argparse.Namespace) -> None:
    broker = Broker(
        host=args.host,
        port=args.port,
        queues=args.queue,
        max_delivery_count=args.max_delivery_count,
        lock_duration_s=args.lock_duration_s,
        auto_create=not args.no_auto_create,
        dead_lettering_on_expiration=args.dead_letter_on_expiration,
        default_ttl_s=args.default_ttl_s,
        max_frame_size=args.max_frame_size,
        max_message_size=args.max_message_size,
        duplicate_detection_window_s=args.duplicate_detection_window_s,
    )
    await broker.start()
    admin = (
        await serve_admin(broker, args.host, args.admin_port)
        if args.admin_port is not None
        else None
    )
    print(f"sbbroker listening on {args.host}:{broker.port}", flush=True)
    print(f"connection string: {broker.connection_string}", flush=True)
    if admin is not None:
        print(f"admin: http://{args.host}:{admin.sockets[0].getsockname()[1]}/queues", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    if admin is not None:
        admin.close()
    await broker.aclose()


def main(argv: Sequence[str] | None = None) -> None:
    args = _parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(name)s %(message)s",
    )
    asyncio.run(_run(args))


if __name__ == "__main__":
    main()
