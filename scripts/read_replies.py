"""Read job replies from a Service Bus queue and print each one as a line of JSON (docs/jobs.md).

    python scripts/read_replies.py                       # the local broker's `replies` queue
    python scripts/read_replies.py --job-id job-123      # wait for that job's reply (either id form)
    python scripts/read_replies.py --queue replies --wait 60 --peek

The connection string comes from --connection, else the environment variable
ServiceBusConnection, else ``local.settings.json`` (what `make run` uses), else
``local.settings.example.json``. Replies read are completed (removed from the queue) unless
--peek; with --job-id, other jobs' replies are left on the queue. It stops after --wait seconds
without a new message, when --max replies were printed, or when the --job-id reply came. Exit
code 0 when at least one reply (or the --job-id reply) was printed, 1 otherwise. It uses the
azure-servicebus SDK, which the app already depends on.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]


def connection_string(given: str | None) -> str:
    """--connection, else ServiceBusConnection, else the local settings file's value."""
    if given:
        return given
    from_env = os.environ.get("ServiceBusConnection")  # noqa: SIM112 - the host's setting name
    if from_env:
        return from_env
    for name in ("local.settings.json", "local.settings.example.json"):
        path = ROOT / name
        if path.exists():
            value = (
                json.loads(path.read_text("utf-8")).get("Values", {}).get("ServiceBusConnection")
            )
            if value:
                return str(value)
    sys.exit("read_replies: no connection string: --connection or ServiceBusConnection")


def describe(message: Any) -> dict[str, Any]:
    """A reply message as a plain dict: its identifiers, properties and parsed body."""
    raw = b"".join(message.body)
    try:
        body: Any = json.loads(raw)
    except ValueError:
        body = raw.decode("utf-8", "replace")
    props = {
        (k.decode() if isinstance(k, bytes) else str(k)): (
            v.decode() if isinstance(v, bytes) else v
        )
        for k, v in (message.application_properties or {}).items()
    }
    return {
        "message_id": message.message_id,
        "correlation_id": message.correlation_id,
        "subject": message.subject,
        "content_type": message.content_type,
        "application_properties": props,
        "body": body,
    }


def _is_job(correlation_id: str, job_id: str) -> bool:
    """The reply of ``job_id``: its full id (``<scope>~<id>``, as a 202 returns it and replies
    carry it) or the id you chose (the part after the ``~``)."""
    return correlation_id == job_id or correlation_id.endswith("~" + job_id)


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    from azure.servicebus import ServiceBusClient

    client = ServiceBusClient.from_connection_string(connection_string(args.connection))
    with client, client.get_queue_receiver(args.queue) as receiver:
        printed, found = read(receiver, args)
    return 0 if (found if args.job_id else printed) else 1


def read(receiver: Any, args: argparse.Namespace) -> tuple[int, bool]:
    """Print replies until idle for --wait seconds, --max printed, or the --job-id reply came."""
    printed, found = 0, False
    idle_until = time.monotonic() + args.wait
    while time.monotonic() < idle_until and printed < args.max and not found:
        if args.peek:
            batch = receiver.peek_messages(max_message_count=args.max)
        else:
            batch = receiver.receive_messages(max_message_count=10, max_wait_time=5)
        if not batch:
            if args.peek:
                time.sleep(1)
            continue
        idle_until = time.monotonic() + args.wait
        for message in batch:
            reply = describe(message)
            mine = args.job_id is None or _is_job(str(reply["correlation_id"]), args.job_id)
            if not args.peek:
                if mine:
                    receiver.complete_message(message)
                else:
                    receiver.abandon_message(message)  # another job's reply stays on the queue
            if mine and printed < args.max:
                print(json.dumps(reply), flush=True)
                printed += 1
                found = args.job_id is not None
        if args.peek:
            break  # a peek shows what is there now; it does not wait for more
    return printed, found


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="scripts/read_replies.py", description="Print job replies from a Service Bus queue."
    )
    parser.add_argument("--queue", default="replies", help="the reply queue (default: replies)")
    parser.add_argument("--connection", help="Service Bus connection string")
    parser.add_argument("--job-id", help="wait for this job's reply; leave the others")
    parser.add_argument(
        "--wait", type=float, default=30.0, help="stop after this many idle seconds (default 30)"
    )
    parser.add_argument("--max", type=int, default=100, help="stop after this many replies")
    parser.add_argument(
        "--peek", action="store_true", help="look without removing (what is there now)"
    )
    return parser.parse_args(argv)


if __name__ == "__main__":
    sys.exit(main())
