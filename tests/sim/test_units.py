"""In-process checks of the limiter, config parsing and tokens (no server)."""

from __future__ import annotations

import pytest

from aoai_sim._auth import OPENAI_USER_ROLE, TokenError, issue_token, verify_token
from aoai_sim._limits import DeploymentLimiter
from aoai_sim._text import generate
from aoai_sim.config import DEFAULT_CONFIG_PATH, ConfigError, apply_env, load_config, parse_config


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_limiter_windows_scale_with_the_minute() -> None:
    clock = FakeClock()
    lim = DeploymentLimiter(tpm=1000, rpm=12, minute_seconds=6, clock=clock)
    assert lim.req_limit == 2 and lim.req_window == 1 and lim.tok_window == 6
    assert lim.try_acquire(100).allowed and lim.try_acquire(100).allowed
    refused = lim.try_acquire(100)
    assert (
        not refused.allowed and refused.calls_exceeded and refused.retry_after_s == pytest.approx(1)
    )
    clock.now += 1.0
    ok = lim.try_acquire(700)
    assert ok.allowed and ok.remaining_tokens == 100 and ok.reset_tokens_s == pytest.approx(5)
    clock.now += 0.5
    over = lim.try_acquire(200)
    assert not over.allowed and not over.calls_exceeded and over.retry_after_s == pytest.approx(4.5)
    headers = dict(over.headers())
    assert headers["retry-after"] == "5" and headers["retry-after-ms"] == "4500"
    clock.now += 4.5
    assert lim.try_acquire(900).allowed


def test_local_config_matches_make_run() -> None:
    cfg = load_config(DEFAULT_CONFIG_PATH)
    assert [(r.name, r.port) for r in cfg.regions] == [("eastus2", 8081), ("swedencentral", 8082)]
    assert [d.name for d in cfg.regions[0].deployments] == [
        "gpt-4o-prod",
        "embed-eastus2",
        "gpt-4o-batch",
    ]
    assert cfg.regions[0].deployments[2].batch and cfg.batch.window_s <= 900  # minutes locally
    assert [d.name for d in cfg.regions[1].deployments] == ["gpt4o-sweden", "embed-sweden"]
    assert cfg.regions[0].deployments[1].dimensions == 1536
    assert all(r.api_keys == ("local-dev-key",) for r in cfg.regions)
    assert cfg.identity is not None and cfg.identity.port == 8091


def test_env_overrides() -> None:
    cfg = load_config(DEFAULT_CONFIG_PATH)
    env = {
        "AOAI_SIM_API_KEY": "k2",
        "AOAI_SIM_MINUTE_SECONDS": "6",
        "AOAI_SIM_TTFT_MS": "50",
        "AOAI_SIM_PER_TOKEN_MS": "5",
        "AOAI_SIM_PORT_EASTUS2": "9001",
        "AOAI_SIM_CHAT_DEPLOYMENT_SWEDENCENTRAL": "renamed",
        "AOAI_SIM_IDENTITY_PORT": "9002",
        "AOAI_SIM_TPM": "1000",
    }
    out = apply_env(cfg, env)
    assert out.minute_seconds == 6 and out.latency.ttft_ms == 50 and out.latency.per_token_ms == 5
    assert out.regions[0].port == 9001 and out.regions[0].api_keys == ("k2",)
    assert out.regions[1].deployments[0].name == "renamed"
    assert out.identity.port == 9002
    assert {d.tpm for r in out.regions for d in r.deployments} == {1000}


def test_config_rejects_non_loopback_and_bad_regions() -> None:
    base = {"name": "r", "port": 1234, "deployments": [{"name": "d", "model": "gpt-4o"}]}
    with pytest.raises(ConfigError):
        parse_config({"regions": [{**base, "host": "0.0.0.0"}]})
    with pytest.raises(ConfigError):
        parse_config({"regions": [base, base]})
    with pytest.raises(ConfigError):
        parse_config({"regions": []})
    assert parse_config({"regions": [base]}).regions[0].deployments[0].effective_rpm == 2700


def test_tokens_verify_and_reject() -> None:
    token, _ = issue_token(
        "s",
        audience="https://cognitiveservices.azure.com",
        client_id="c",
        principal_id="p",
        tenant_id="t",
        roles=(OPENAI_USER_ROLE,),
        ttl_s=60,
        now=1000,
    )
    claims = verify_token("s", token, "https://cognitiveservices.azure.com/", now=1010)
    assert (
        claims.client_id == "c" and claims.principal_id == "p" and OPENAI_USER_ROLE in claims.roles
    )
    for secret, now, aud in (
        ("other", 1010, "https://cognitiveservices.azure.com"),
        ("s", 1061, "https://cognitiveservices.azure.com"),
        ("s", 1010, "https://management.azure.com"),
    ):
        with pytest.raises(TokenError):
            verify_token(secret, token, aud, now=now)


def test_generation_honours_limits() -> None:
    tokens, natural = generate(b"seed", None)
    assert natural and tokens[-1] == "." and 16 <= len(tokens) < 128
    cut, natural_cut = generate(b"seed", 5)
    assert cut == tokens[:5] and not natural_cut
