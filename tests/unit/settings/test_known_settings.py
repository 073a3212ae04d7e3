"""Misspelled app settings are named at start, with the closest setting the gateway reads."""

from __future__ import annotations

from shared.settings._known import known_settings, unknown_settings


def test_a_typo_is_named_with_the_closest_known_setting() -> None:
    found = unknown_settings(
        {
            "GATEWAY_CALL_DEADLINE": "30",  # the real one ends in _S
            "backlog_max_parks": "3",  # case does not matter, as for the host
            "GATEWAY_REGIONS": "[]",
            "BACKLOG_QUEUE": "backlog",
            "AzureWebJobsStorage": "UseDevelopmentStorage=true",
            "SOMETHING_ELSE": "x",  # not ours to judge
            "GATEWAY_URL": "http://127.0.0.1:7071/api",  # gatewayctl's, not an app setting
        }
    )
    assert [(m.name, m.closest) for m in found] == [
        ("GATEWAY_CALL_DEADLINE", "GATEWAY_CALL_DEADLINE_S"),
    ]
    assert "did you mean GATEWAY_CALL_DEADLINE_S?" in found[0].message()


def test_a_name_far_from_every_setting_gets_no_guess() -> None:
    (only,) = unknown_settings({"GATEWAY_ZZZZZZZZZZZZZZZZ": "1"})
    assert only.closest is None and "did you mean" not in only.message()


def test_every_class_field_and_host_alias_is_known() -> None:
    known = known_settings()
    for name in (
        "GATEWAY_FIRST_BYTE_TIMEOUT_S",
        "GATEWAY_KEY_NAMES",
        "BACKLOG_REPLY_QUEUES",
        "BACKLOG_BATCH_TABLE",
        "PARKING_QUEUE",
        "RETRY_TIMER_SCHEDULE",
        "ServiceBusConnection__fullyQualifiedNamespace",
        "GATEWAY_CALLER_LIMITS",
        "GATEWAY_REGIONS_FILE",
    ):
        assert name in known, name
