"""BacklogSettings through pydantic-settings: the host's names, empty values unset, errors naming
the app setting."""

import pytest

from shared.settings import BacklogSettings, SettingsError, load_backlog_settings

BASE = {
    "ServiceBusConnection": "Endpoint=sb://x",
    "AzureWebJobsStorage": "UseDevelopmentStorage=true",
}


def test_host_names_and_prefixed_names():
    settings = load_backlog_settings(
        {
            **BASE,
            "PARKING_QUEUE": "parked-jobs",
            "BACKLOG_JOBS_TABLE": "jobsTable",
            "BACKLOG_MAX_PARKS": "4",
        }
    )
    assert (settings.parking_queue, settings.jobs_table, settings.max_parks) == (
        "parked-jobs",
        "jobsTable",
        4,
    )
    assert settings.servicebus_connection == "Endpoint=sb://x"


def test_an_empty_value_counts_as_unset():
    settings = load_backlog_settings({**BASE, "BACKLOG_QUEUE": "", "BACKLOG_MAX_PARKS": ""})
    assert settings.queue == "backlog" and settings.max_parks == 20


@pytest.mark.parametrize(
    ("extra", "named"),
    [
        ({"PARKING_QUEUE": "Bad_Name"}, "PARKING_QUEUE: must be"),
        ({"BACKLOG_MAX_PARKS": "0"}, "BACKLOG_MAX_PARKS: "),
    ],
)
def test_a_bad_value_names_its_app_setting(extra, named):
    with pytest.raises(SettingsError) as info:
        load_backlog_settings({**BASE, **extra})
    assert named in str(info.value)


def test_building_by_hand_reads_no_environment(monkeypatch):
    monkeypatch.setenv("BACKLOG_MAX_PARKS", "3")
    settings = BacklogSettings(servicebus_connection="x", storage_connection="y")
    assert settings.max_parks == 20
