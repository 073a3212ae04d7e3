"""Smoke-test a deployed gateway: health, one chat call, one streamed chat call, one backlog job.

    GATEWAY_FUNCTION_KEY=<function key> python scripts/smoke_test.py --url https://<app>.azurewebsites.net/api

The function key comes from GATEWAY_FUNCTION_KEY or a file (--key-file PATH, '-' for standard
input), never from the command line, where process lists and shell history would show it. Right after `azd up` the app's Azure
OpenAI role assignment may still be propagating (5-15 minutes): model calls then fail with 502
``upstream_auth_failed``; this script retries them until --wait-minutes have passed. Exit code 0
when every step passed, 1 otherwise. It uses the openai SDK (as callers do) and httpx, both of
which the app already depends on. See docs/deploy.md.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable
from typing import Any

import httpx
import openai

AUTH_PENDING = "upstream_auth_failed"


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    if args.key is not None:
        print(
            "--key is not accepted (a key on the command line shows in process lists and shell "
            "history): set GATEWAY_FUNCTION_KEY, or pass --key-file PATH ('-' reads stdin)",
            file=sys.stderr,
        )
        return 2
    key = _read_key(args.key_file) if args.key_file else os.environ.get("GATEWAY_FUNCTION_KEY", "")
    if not key:
        print("a function key is needed: GATEWAY_FUNCTION_KEY or --key-file", file=sys.stderr)
        return 2
    base = args.url.rstrip("/")
    headers = {"x-functions-key": key}
    deadline = time.monotonic() + args.wait_minutes * 60
    http = httpx.Client(base_url=base, headers=headers, timeout=60.0)
    client = openai.OpenAI(
        base_url=f"{base}/v1", api_key="unused", default_headers=headers, max_retries=0
    )
    steps: list[tuple[str, Callable[[], str]]] = [
        ("health", lambda: _health(http)),
        ("chat", lambda: _until_authorized(deadline, lambda: _chat(client, args.model))),
        ("stream", lambda: _until_authorized(deadline, lambda: _stream(client, args.model))),
        ("job", lambda: _job(http, args.model, args.reply_to, deadline)),
    ]
    failed = 0
    for name, step in steps:
        try:
            print(f"PASS {name}: {step()}")
        except Exception as exc:  # noqa: BLE001 - each step reports and the next one runs
            failed += 1
            print(f"FAIL {name}: {type(exc).__name__}: {exc}")
    print(f"{len(steps) - failed} passed, {failed} failed")
    return 1 if failed else 0


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--url",
        required=True,
        help="the gateway's base URL, ending in /api (azd output GATEWAY_URL)",
    )
    parser.add_argument("--key", default=None, help=argparse.SUPPRESS)  # refused: see main()
    parser.add_argument(
        "--key-file",
        default="",
        help="a file holding the function key ('-': standard input); default: $GATEWAY_FUNCTION_KEY",
    )
    parser.add_argument(
        "--model", default="gpt-4o", help="a logical model alias in GATEWAY_REGIONS"
    )
    parser.add_argument(
        "--reply-to", default="replies", help="a reply queue created by the template"
    )
    parser.add_argument(
        "--wait-minutes",
        type=float,
        default=20.0,
        help="how long to retry while role assignments propagate (default 20)",
    )
    return parser.parse_args(argv)


def _read_key(path: str) -> str:
    text = sys.stdin.read() if path == "-" else open(path, encoding="utf-8").read()  # noqa: SIM115
    return text.strip()


def _health(http: httpx.Client) -> str:
    response = http.get("/health/details")  # the region names need a function key
    body = response.json()
    if response.status_code != 200:
        raise RuntimeError(f"HTTP {response.status_code}: {body.get('error')}")
    shared = body.get("gateway", {}).get("shared_health", {})
    regions = sorted(body.get("gateway", {}).get("regions", {}))
    return (
        f"status {body['status']}, regions {regions}, down {body.get('regions_down')}, "
        f"shared health store reachable: {shared.get('available')}"
    )


def _until_authorized(deadline: float, call: Callable[[], str]) -> str:
    """Run ``call``; while the gateway answers upstream_auth_failed (roles still propagating), wait and retry."""
    while True:
        try:
            return call()
        except openai.APIStatusError as exc:
            if _error_code(exc.body) != AUTH_PENDING or time.monotonic() > deadline:
                raise
            print(
                "  ... Azure OpenAI refused the app's identity (roles propagating?); retrying in 30 s"
            )
            time.sleep(30)


def _error_code(body: Any) -> str | None:
    if isinstance(body, dict):
        inner = body.get("error", body)
        if isinstance(inner, dict):
            return inner.get("code")
    return None


def _chat(client: openai.OpenAI, model: str) -> str:
    reply = client.chat.completions.create(
        model=model,
        messages=[{"role": "user", "content": "Say 'ok'."}],
        max_tokens=5,
    )
    text = reply.choices[0].message.content or ""
    return f"{reply.model}: {text!r}"


def _stream(client: openai.OpenAI, model: str) -> str:
    chunks = 0
    text = ""
    for chunk in client.chat.completions.create(
        model=model,
        messages=[{"role": "user", "content": "Count from 1 to 5."}],
        max_tokens=20,
        stream=True,
    ):
        chunks += 1
        for choice in chunk.choices:
            text += choice.delta.content or ""
    if not text:
        raise RuntimeError(f"{chunks} chunks and no text")
    return f"{chunks} chunks: {text!r}"


def _job(http: httpx.Client, model: str, reply_to: str, deadline: float) -> str:
    request = {
        "model": model,
        "messages": [{"role": "user", "content": "Say 'ok'."}],
        "max_tokens": 5,
    }
    response = http.post("/v1/jobs", json={"request": request, "reply_to": reply_to})
    if response.status_code != 202:
        raise RuntimeError(f"submit: HTTP {response.status_code}: {response.text[:300]}")
    job_id = response.json()["id"]
    poll_until = max(deadline, time.monotonic() + 300)
    while True:
        status = http.get(f"/v1/jobs/{job_id}").json()
        if status.get("status") == "succeeded":
            return f"job {job_id} succeeded"
        if status.get("status") == "failed":
            raise RuntimeError(f"job {job_id} failed: {status.get('error') or status}")
        if time.monotonic() > poll_until:
            raise RuntimeError(f"job {job_id} still {status.get('status')}")
        time.sleep(5)


if __name__ == "__main__":
    sys.exit(main())
