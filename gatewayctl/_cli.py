"""The command line: one sub-command per ops route, tables by default, ``--json`` for scripts."""

from __future__ import annotations

import argparse
import json
import os
import sys
import urllib.parse
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ._client import Client, OpsError
from ._tables import table

__all__ = ["main"]

DESCRIPTION = """\
Operate an Azure OpenAI gateway: region and deployment state across instances, clearing a
stuck region or deployment, parked jobs, cancelling waiting jobs, the backlog's dead letters,
caller limits and usage.

Point it at the app with --url (the API base, e.g. https://<app>.azurewebsites.net/api; a URL
without a scheme is https) or GATEWAY_URL. The host's master key (the ops routes take nothing
less) comes from the environment, GATEWAY_MASTER_KEY, or from a file, --key-file PATH (or
GATEWAY_MASTER_KEY_FILE; '-' reads it from stdin): never from the command line, where process
lists and shell history would show it. It is sent to that URL's host only (not along a redirect
to another host). http:// is refused for hosts other than localhost / 127.0.0.1 / ::1 unless
--allow-http. Locally: --url http://127.0.0.1:7071/api (keys are not checked).

Options may come before or after the command: 'gatewayctl state --json'.
"""

_LOCAL_HOSTS = frozenset({"localhost", "127.0.0.1", "::1"})
_KEY_ON_COMMAND_LINE = (
    "--key is not accepted: a key on the command line shows in process lists and shell history. "
    "Set GATEWAY_MASTER_KEY, or pass --key-file PATH (or GATEWAY_MASTER_KEY_FILE; '-' for stdin)."
)


class UsageError(Exception):
    """A command line or environment that cannot be used (exit status 2)."""


def base_url(url: str, *, allow_http: bool = False) -> str:
    """The API base to call: https when no scheme is given; http only to a local host (or with
    ``allow_http``): the master key must not cross a network in clear text."""
    url = url.strip()
    if "://" not in url:
        url = f"https://{url}"
    parts = urllib.parse.urlsplit(url)
    scheme, host = parts.scheme.lower(), (parts.hostname or "").lower()
    if scheme not in ("http", "https") or not host:
        raise UsageError(f"--url must be an http(s) URL with a host, e.g. https://<app>/api: {url}")
    if scheme == "http" and host not in _LOCAL_HOSTS and not allow_http:
        raise UsageError(
            f"refusing http:// to {host}: the master key would travel in clear text. Use "
            "https:// (the default), or --allow-http for a network you trust."
        )
    return url


def master_key(key_file: str | None, env: Mapping[str, str]) -> str | None:
    """The key from ``key_file`` ('-': stdin), else GATEWAY_MASTER_KEY_FILE, else
    GATEWAY_MASTER_KEY; None when none is set (a local dev server checks no key)."""
    path = key_file or env.get("GATEWAY_MASTER_KEY_FILE")
    if path:
        try:
            text = sys.stdin.read() if path == "-" else Path(path).expanduser().read_text("utf-8")
        except OSError as exc:
            raise UsageError(f"cannot read the key file {path}: {exc.strerror}") from None
        key = text.strip()
        if not key:
            raise UsageError(f"the key file {path} is empty")
        return key
    return env.get("GATEWAY_MASTER_KEY") or None


def _when(epoch: Any) -> str | None:
    if not epoch:
        return None
    return datetime.fromtimestamp(float(epoch), UTC).strftime("%Y-%m-%d %H:%M:%SZ")


def _state(client: Client, args: argparse.Namespace) -> tuple[Any, str]:
    data = client.request("GET", "ops/state")
    rows = []
    for name, region in data["instance"]["regions"].items():
        circuit = region["circuit"]["state"]
        for dep, info in region["deployments"].items():
            until = (
                info.get("exhausted_until")
                or info.get("cooling_until")
                or info.get("missing_until")
            )
            rows.append(
                {
                    "region": name,
                    "circuit": circuit,
                    "deployment": dep,
                    "state": info.get("state"),
                    "until": _when(until),
                }
            )
    shared = [
        dict(r, until=_when(r.get("until")), updated=_when(r.get("updated")))
        for r in data["shared"]
    ]
    text = (
        f"This instance ({data['instance'].get('instance', '?')}):\n"
        + table(rows, ["region", "circuit", "deployment", "state", "until"])
        + "\n\nShared health table (every instance's latest verdicts):\n"
        + table(shared, ["key", "state", "in_force", "until", "seconds_left", "writer", "updated"])
    )
    return data, text


def _clear(client: Client, args: argparse.Namespace) -> tuple[Any, str]:
    body = {"region": args.region} if args.region else {"deployment": args.deployment}
    data = client.request("POST", "ops/clear", body=body)
    return (
        data,
        f"cleared {', '.join(data['cleared'])}; every instance adopts it within {data['effective_within_s']}s",
    )


def _parked(client: Client, args: argparse.Namespace) -> tuple[Any, str]:
    data = client.request("GET", "ops/parked")
    rows = [dict(j, retry_at=_when(j.get("retry_at"))) for j in data["data"]]
    return data, table(
        rows, ["job_id", "caller", "model", "priority", "parks", "retry_at", "deadline"]
    )


def _unpark(client: Client, args: argparse.Namespace) -> tuple[Any, str]:
    body: dict[str, Any] = (
        {"all": True, "limit": args.limit} if args.all else {"job_ids": args.job_ids}
    )
    data = client.request("POST", "ops/parked/redrive", body=body)
    return data, f"re-driven now: {data['redriven']}\n" + table(
        data["data"], ["job_id", "redriven", "status", "error"]
    )


def _cancel(client: Client, args: argparse.Namespace) -> tuple[Any, str]:
    rows: list[dict[str, Any]] = []
    for job_id in args.job_ids:
        path = f"ops/jobs/{urllib.parse.quote(job_id, safe='')}/cancel"  # any caller's job
        try:
            job = client.request("POST", path)
            rows.append({"job_id": job_id, "status": job["status"], "error": None})
        except OpsError as exc:  # one job's refusal (409 running/finished, 404) is a row
            rows.append({"job_id": job_id, "status": None, "error": str(exc)})
    return {"object": "list", "data": rows}, table(rows, ["job_id", "status", "error"])


def _dead(client: Client, args: argparse.Namespace) -> tuple[Any, str]:
    data = client.request("GET", "ops/deadletters", query={"limit": args.limit})
    return data, table(
        data["data"],
        ["sequence_number", "message_id", "reason", "delivery_count", "enqueued_at", "description"],
    )


def _redrive(client: Client, args: argparse.Namespace) -> tuple[Any, str]:
    data = client.request(
        "POST", "ops/deadletters/redrive", body={"sequence_numbers": args.sequence_numbers}
    )
    text = f"re-driven: {data['redriven'] or 'none'}"
    if data["missing"]:
        text += f"\nnot found in the dead-letter queue: {data['missing']}"
    return data, text


def _callers(client: Client, args: argparse.Namespace) -> tuple[Any, str]:
    data = client.request("GET", "ops/callers")
    if data["limits"] is None:
        return data, "no caller limits configured (GATEWAY_CALLER_LIMITS)"
    head = f"default: {data['limits']['default']}  window: {data['limits']['window_s']}s\n"
    return data, head + table(
        data["data"],
        [
            "caller",
            "configured",
            "tpm",
            "window_tokens",
            "monthly_tokens",
            "month_tokens",
            "priority",
        ],
    )


def _usage(client: Client, args: argparse.Namespace) -> tuple[Any, str]:
    query = {"from": args.start, "to": args.end, "group_by": args.group_by}
    if args.csv:
        text = client.request("GET", "ops/usage", query=query, accept="text/csv")
        return text, text.rstrip("\n")
    data = client.request("GET", "ops/usage", query=query)
    groups = data["group_by"]
    columns = [*groups, "requests", "input_tokens", "cached_input_tokens", "output_tokens", "cost"]
    total = {groups[0]: "TOTAL", **data["total"]}
    return data, (
        f"{data['from']} .. {data['to']} ({data['currency']})\n"
        + table([*data["data"], total], columns)
    )


def _global_options(parser: argparse.ArgumentParser, *, defaults: bool) -> None:
    """The options every command takes, before or after it. On the sub-commands they default to
    SUPPRESS, so an option given before the command is not reset by the sub-command's parser."""

    def default(value: Any) -> Any:
        return value if defaults else argparse.SUPPRESS

    parser.add_argument(
        "--url",
        default=default(os.environ.get("GATEWAY_URL", "http://127.0.0.1:7071/api")),
        help="the app's API base URL (env GATEWAY_URL; https unless given; "
        "default http://127.0.0.1:7071/api)",
    )
    parser.add_argument(
        "--key-file",
        default=default(None),
        metavar="PATH",
        help="read the master key from this file ('-': stdin); else env GATEWAY_MASTER_KEY_FILE, "
        "else env GATEWAY_MASTER_KEY",
    )
    parser.add_argument(
        "--allow-http",
        action="store_true",
        default=default(False),
        help="allow http:// to a host other than localhost (the key travels in clear text)",
    )
    parser.add_argument(
        "--json", action="store_true", default=default(False), help="print the raw JSON answer"
    )
    # refused with a clear message (never the key's value), not "unrecognized arguments"
    parser.add_argument("--key", default=default(None), help=argparse.SUPPRESS)


class _SubParsers:
    """``add_parser`` with the global options added to each sub-command."""

    def __init__(self, action: Any) -> None:
        self._action = action

    def add_parser(self, name: str, **kwargs: Any) -> argparse.ArgumentParser:
        parser: argparse.ArgumentParser = self._action.add_parser(
            name, allow_abbrev=False, **kwargs
        )
        _global_options(parser, defaults=False)
        return parser


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m gatewayctl",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        allow_abbrev=False,
    )
    _global_options(parser, defaults=True)
    sub = _SubParsers(parser.add_subparsers(dest="command", required=True, metavar="command"))
    sub.add_parser(
        "state", help="regions, circuits, deployments; every instance's shared verdicts"
    ).set_defaults(run=_state)
    clear = sub.add_parser(
        "clear", help="clear a region's or a deployment's state on every instance"
    )
    target = clear.add_mutually_exclusive_group(required=True)
    target.add_argument("--region", help="a region name: its circuit and all its deployments")
    target.add_argument("--deployment", help="<region>/<deployment>")
    clear.set_defaults(run=_clear)
    sub.add_parser("parked", help="parked jobs and when they are due").set_defaults(run=_parked)
    unpark = sub.add_parser(
        "unpark", help="send parked jobs to the backlog now, before their retry time"
    )
    which = unpark.add_mutually_exclusive_group(required=True)
    which.add_argument("job_ids", nargs="*", default=[], metavar="JOB_ID", help="from 'parked'")
    which.add_argument("--all", action="store_true", help="every parked job (up to --limit)")
    unpark.add_argument("--limit", type=int, default=200, help="with --all (default %(default)s)")
    unpark.set_defaults(run=_unpark)
    cancel = sub.add_parser(
        "cancel", help="cancel waiting jobs (queued, parked, in the batch lane)"
    )
    cancel.add_argument("job_ids", nargs="+", metavar="JOB_ID")
    cancel.set_defaults(run=_cancel)
    dead = sub.add_parser("deadletters", help="peek at the backlog's dead-letter queue")
    dead.add_argument("--limit", type=int, default=50)
    dead.set_defaults(run=_dead)
    redrive = sub.add_parser("redrive", help="send dead-lettered messages back to the backlog")
    redrive.add_argument(
        "sequence_numbers",
        type=int,
        nargs="+",
        metavar="SEQ",
        help="sequence numbers from 'deadletters'",
    )
    redrive.set_defaults(run=_redrive)
    sub.add_parser("callers", help="caller limits in force and each caller's use").set_defaults(
        run=_callers
    )
    usage = sub.add_parser("usage", help="token use and cost, every caller")
    usage.add_argument(
        "--from", dest="start", help="ISO date or date-time (default: start of this month)"
    )
    usage.add_argument("--to", dest="end", help="ISO date or date-time (default: now)")
    usage.add_argument(
        "--group-by",
        default="caller",
        help="caller, alias, deployment, hour, lane (comma-separated)",
    )
    usage.add_argument("--csv", action="store_true", help="CSV instead of a table")
    usage.set_defaults(run=_usage)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if args.key is not None:
        parser.error(_KEY_ON_COMMAND_LINE)
    try:
        client = Client(
            base_url(args.url, allow_http=args.allow_http), master_key(args.key_file, os.environ)
        )
    except UsageError as exc:
        parser.error(str(exc))
    try:
        data, text = args.run(client, args)
    except OpsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(data, indent=2) if args.json and not isinstance(data, str) else text)
    return 0
