"""Settings load once into a frozen object, and a bad value names its app setting."""

import json

import pytest
from pydantic import ValidationError

from shared.settings import GatewaySettings, SettingsError, load_gateway_settings


def region(**overrides):
    base = {
        "name": "eastus2",
        "endpoint": "https://contoso-eus2.openai.azure.com/",
        "models": {"gpt-4o": {"deployment": "gpt-4o-prod", "tpm": 30000}},
    }
    base.update(overrides)
    return base


def env_with(*regions, **extra):
    env = {"GATEWAY_REGIONS": json.dumps(list(regions))}
    env.update(extra)
    return env


def test_two_region_table_loads_with_defaults():
    settings = load_gateway_settings(
        env_with(
            region(),
            region(
                name="swedencentral",
                priority=2,
                client_id="1111-2222",
                models={"gpt-4o": {"deployment": "gpt4o-sweden", "tpm": 10000}},
            ),
        )
    )
    assert [r.name for r in settings.regions] == ["eastus2", "swedencentral"]
    assert settings.regions[0].endpoint == "https://contoso-eus2.openai.azure.com"
    assert settings.regions[0].auth == "managed_identity"
    assert settings.regions[1].identity_label == "user-assigned managed identity 1111-2222"
    assert settings.regions[1].models["gpt-4o"].effective_rpm == 60  # 6 per 1,000 TPM
    assert settings.aliases == ("gpt-4o",)


def test_settings_are_frozen():
    settings = load_gateway_settings(env_with(region()))
    with pytest.raises(ValidationError):
        settings.circuit_cooloff_s = 1  # type: ignore[misc]  # the point: a frozen model refuses it


def test_scalar_settings_come_from_prefixed_keys():
    settings = load_gateway_settings(
        env_with(region(), GATEWAY_CIRCUIT_COOLOFF_S="7.5", GATEWAY_MAX_BODY_BYTES="1000")
    )
    assert settings.circuit_cooloff_s == 7.5
    assert settings.max_body_bytes == 1000


def test_storage_connection_falls_back_to_the_host_setting():
    settings = load_gateway_settings(
        env_with(region(), AzureWebJobsStorage="UseDevelopmentStorage=true")
    )
    assert settings.storage_connection == "UseDevelopmentStorage=true"


def test_regions_from_a_file(tmp_path):
    path = tmp_path / "regions.json"
    path.write_text(json.dumps([region()]))
    settings = load_gateway_settings({"GATEWAY_REGIONS_FILE": str(path)})
    assert settings.regions[0].name == "eastus2"


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({}, "GATEWAY_REGIONS: missing"),
        ({"GATEWAY_REGIONS": "[{not json"}, "GATEWAY_REGIONS: not valid JSON"),
        ({"GATEWAY_REGIONS": "[]"}, "GATEWAY_REGIONS"),
        (env_with(region(endpoint="ftp://x")), "GATEWAY_REGIONS[0].endpoint"),
        (env_with(region(auth="api_key")), "GATEWAY_REGIONS[0]"),
        (
            env_with(region(models={"gpt-4o": {"deployment": "d", "tpm": 0}})),
            "GATEWAY_REGIONS[0].models.gpt-4o.tpm",
        ),
        (env_with(region(), region()), "repeated: eastus2"),
        (env_with(region(), GATEWAY_CONNECT_TIMEOUT_S="-1"), "GATEWAY_CONNECT_TIMEOUT_S"),
        ({"GATEWAY_REGIONS_FILE": "/nonexistent/regions.json"}, "GATEWAY_REGIONS_FILE"),
    ],
)
def test_a_bad_setting_is_named(env, named):
    with pytest.raises(SettingsError) as info:
        load_gateway_settings(env)
    assert named in str(info.value)


def test_api_key_is_never_shown():
    settings = load_gateway_settings(env_with(region(auth="api_key", api_key="sk-very-secret")))
    assert "sk-very-secret" not in repr(settings)
    assert settings.regions[0].api_key.get_secret_value() == "sk-very-secret"


def test_plain_openai_region_must_use_v1():
    with pytest.raises(SettingsError, match="api_style 'v1'"):
        load_gateway_settings(env_with(region(auth="openai", api_key="k", api_style="dated")))


def test_model_validate_accepts_the_table_as_objects():
    settings = GatewaySettings.model_validate({"regions": [region()]})
    assert settings.regions[0].models["gpt-4o"].deployment == "gpt-4o-prod"


def test_the_prefixed_name_wins_over_the_host_name():
    settings = load_gateway_settings(
        env_with(
            region(), AzureWebJobsStorage="host-storage", GATEWAY_STORAGE_CONNECTION="own-storage"
        )
    )
    assert settings.storage_connection == "own-storage"


def test_building_settings_by_hand_reads_no_environment(monkeypatch):
    monkeypatch.setenv("GATEWAY_CALL_DEADLINE_S", "5")
    monkeypatch.setenv("AzureWebJobsStorage", "UseDevelopmentStorage=true")
    by_hand = GatewaySettings(regions=[region()])
    assert by_hand.call_deadline_s == 200.0 and by_hand.storage_connection is None
    monkeypatch.setenv("GATEWAY_REGIONS", json.dumps([region()]))
    loaded = load_gateway_settings()  # os.environ
    assert loaded.call_deadline_s == 5.0
    assert loaded.storage_connection == "UseDevelopmentStorage=true"


def test_an_explicit_mapping_is_the_only_source(monkeypatch):
    monkeypatch.setenv("GATEWAY_CALL_DEADLINE_S", "5")
    assert load_gateway_settings(env_with(region())).call_deadline_s == 200.0
