"""Per-caller limits (GATEWAY_CALLER_LIMITS) through the real function_app handlers and the
backlog: the limited caller gets 429s with its own x-ratelimit-* headers before any upstream
call, its jobs are parked (TPM) or failed (monthly budget); another caller is not affected.
The windows live in Azurite, so a second instance sees the same limits."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import function_app
from shared import runtime
from shared.callerlimits import (
    CallerLimiter,
    CallerRateLimited,
    TableWindowStore,
    load_caller_limits,
)
from shared.storage import TableTarget
from tests.fixtures.devserver import settings_env
from tests.fixtures.gateway import settings_for_sim
from tests.functional.api._asgi import body_of, make_request

from .conftest import REGIONS
from .quota_clock import pin_caller_windows

LIMITED, OTHER, THRIFTY = "limited-key", "other-key", "thrifty-key"


def _fp(key: str) -> str:
    return "key:" + hashlib.sha256(key.encode()).hexdigest()[:12]


def _configure(app_env, sim, azurite, unique_name, limits: dict[str, Any], **extra: str) -> str:
    table = unique_name("callers").replace("-", "")
    settings = settings_for_sim(
        sim, regions=list(REGIONS), storage_connection=azurite.connection_string
    )
    app_env(
        {
            **settings_env(settings),
            "GATEWAY_CALLER_LIMITS": json.dumps(limits),
            "GATEWAY_CALLER_TABLE": table,
            "GATEWAY_USAGE": "off",
            **extra,
        }
    )
    return table


async def _call(key: str) -> Any:
    body = {
        "model": "gpt-4o",
        "messages": [{"role": "user", "content": "limit me"}],
        "max_tokens": 80,
    }
    return await function_app.chat_completions(
        make_request("POST", "/api/v1/chat/completions", body, {"x-functions-key": key})
    )


def _requests(sim) -> int:
    return sum(sim.region(name).stats()["requests"] for name in REGIONS)


async def test_two_callers_the_limited_one_gets_429_with_its_headers_the_other_is_unaffected(
    app_env, e2e_sim, azurite, unique_name, monkeypatch
):
    table = _configure(
        app_env,
        e2e_sim,
        azurite,
        unique_name,
        {"default": {"tpm": 100000}, "callers": {_fp(LIMITED): {"tpm": 200}}},
    )
    # One window for the whole test, however slow the machine (both instances read this clock).
    clock = pin_caller_windows(monkeypatch)
    refused = None
    for _ in range(8):  # ~83 tokens each against 200 per minute: the third is refused
        response = await _call(LIMITED)
        if response.status_code == 429:
            refused = response
            break
        assert response.status_code == 200
    assert refused is not None, "the limited caller was never refused"
    served_before = _requests(e2e_sim)
    body = json.loads(await body_of(refused))
    assert body["error"]["code"] == "caller_rate_limited"
    assert _fp(LIMITED) in body["error"]["message"]
    headers = refused.headers
    assert headers["x-ratelimit-limit-tokens"] == "200"
    assert 0 <= int(headers["x-ratelimit-remaining-tokens"]) < 83
    assert headers["x-ratelimit-reset-tokens"].endswith("s")
    assert int(headers["retry-after"]) == 59  # the window's end, on the pinned clock

    # Refused before any upstream call; still refused on its next try.
    again = await _call(LIMITED)
    assert again.status_code == 429
    assert _requests(e2e_sim) == served_before

    # The other caller is not affected.
    for _ in range(4):
        assert (await _call(OTHER)).status_code == 200
    assert _requests(e2e_sim) == served_before + 4

    # A second instance, sharing only the table, refuses the limited caller too.
    limits = load_caller_limits()
    other_instance = CallerLimiter(
        limits,
        TableWindowStore(TableTarget(table, connection=azurite.connection_string).client()),
        now=clock.now,
    )
    try:
        try:
            await other_instance.admit(_fp(LIMITED), 83, "gpt-4o")
        except CallerRateLimited as exc:
            assert exc.limit == 200
        else:
            raise AssertionError("the second instance admitted the limited caller")
        await other_instance.admit(_fp(OTHER), 83, "gpt-4o")  # fine
        report = {row["caller"]: row for row in await other_instance.report()}
        assert report[_fp(LIMITED)]["tpm"] == 200 and report[_fp(LIMITED)]["window_tokens"] > 0
    finally:
        await other_instance.aclose()


async def _call_claiming(key: str, principal: str) -> Any:
    """A function-key caller that also sends the principal headers only Easy Auth may set."""
    body = {
        "model": "gpt-4o",
        "messages": [{"role": "user", "content": "limit me"}],
        "max_tokens": 80,
    }
    headers = {
        "x-functions-key": key,
        "x-ms-client-principal-name": principal,
        "x-ms-client-principal-id": principal,
    }
    return await function_app.chat_completions(
        make_request("POST", "/api/v1/chat/completions", body, headers)
    )


async def test_principal_headers_neither_escape_a_key_s_limit_nor_claim_another_s(
    app_env, e2e_sim, azurite, unique_name, monkeypatch
):
    """With function keys (the default mode) the key is the identity: a caller that sends a new
    principal name on every request, or a configured principal's name, is still its key."""
    _configure(
        app_env,
        e2e_sim,
        azurite,
        unique_name,
        {
            "default": {"tpm": 100000},
            "callers": {_fp(LIMITED): {"tpm": 200}, "principal:vip": {"tpm": 1000000}},
        },
    )
    pin_caller_windows(monkeypatch)
    statuses = []
    for i in range(8):  # ~83 tokens each against the key's 200 per minute
        claimed = "vip" if i % 2 else f"fresh-{i}"
        statuses.append((await _call_claiming(LIMITED, claimed)).status_code)
    first_refusal = statuses.index(429)  # raises if the key was never limited
    assert 1 <= first_refusal <= 2 and set(statuses[first_refusal:]) == {429}, statuses
    refused = await _call_claiming(LIMITED, "vip")
    body = json.loads(await body_of(refused))
    assert (
        body["error"]["code"] == "caller_rate_limited" and _fp(LIMITED) in body["error"]["message"]
    )
    assert "vip" not in body["error"]["message"]


async def test_monthly_budget_refuses_http_and_fails_jobs_naming_the_reset_date(
    app_env, e2e_sim, azurite, unique_name, sb_broker, harness_factory
):
    _configure(
        app_env,
        e2e_sim,
        azurite,
        unique_name,
        {
            "callers": {
                _fp(THRIFTY): {"monthly_tokens": 30},
                "principal:thrifty-jobs": {"monthly_tokens": 10},
            }
        },
    )
    assert (await _call(THRIFTY)).status_code == 200  # under budget when it started
    assert (await _call(OTHER)).status_code == 200
    await runtime.caller_limiter().flush()  # the used tokens reach the month row
    refused = await _call(THRIFTY)
    assert refused.status_code == 429
    error = json.loads(await body_of(refused))["error"]
    assert error["code"] == "caller_budget_exhausted" and error["reset_date"].endswith("-01")
    assert error["reset_date"] in error["message"]
    assert (await _call(OTHER)).status_code == 200

    harness = await harness_factory(sb_broker, runtime.gateway()).start(timer=False)
    first = harness.job("spend it").model_copy(update={"caller": "principal:thrifty-jobs"})
    await harness.submit(first)
    await harness.wait_terminal([first.job_id], timeout=60)
    await runtime.caller_limiter().flush()
    second = harness.job("over budget").model_copy(update={"caller": "principal:thrifty-jobs"})
    await harness.submit(second)
    done = await harness.wait_terminal([second.job_id], timeout=60)
    record = done[second.job_id]
    assert record.status == "failed"
    status = await harness.backlog.status(second.job_id, owner=None)
    assert status["error"]["code"] == "caller_budget_exhausted", status


async def test_jobs_over_their_callers_tpm_are_parked_until_the_window_frees_not_failed(
    app_env, e2e_sim, azurite, unique_name, sb_broker, harness_factory
):
    _configure(
        app_env,
        e2e_sim,
        azurite,
        unique_name,
        {"callers": {"principal:busy-jobs": {"tpm": 20}}},
        # Fixed windows aligned to the wall clock: long enough that the three jobs' first
        # attempts (a burst) cross at most one window boundary however slow the machine, so
        # at least two share a window and one is parked.
        GATEWAY_CALLER_WINDOW_S="10",
    )
    harness = await harness_factory(sb_broker, runtime.gateway()).start(timer=True)
    jobs = [
        harness.job(f"job {i}").model_copy(update={"caller": "principal:busy-jobs"})
        for i in range(3)
    ]  # 16 output + a few prompt tokens each: one per 10 s window
    await harness.submit(*jobs)
    done = await harness.wait_terminal([j.job_id for j in jobs], timeout=120)
    assert all(r.status == "succeeded" for r in done.values()), {
        k: r.status for k, r in done.items()
    }
    assert sum(r.parks for r in done.values()) >= 1
