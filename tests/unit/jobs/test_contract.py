"""The job message contract, the backlog settings and the Functions adapter."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from azure.functions.queue import QueueMessage
from azure.functions.servicebus import ServiceBusMessage

from shared.aoai import ChatRequest, EmbeddingsRequest
from shared.jobs import (
    InvalidJobMessage,
    JobMessage,
    delivery_from_servicebus,
    parse_job_message,
    text_from_queue_message,
)
from shared.settings import SettingsError, load_backlog_settings

CHAT = {"model": "gpt-4o", "messages": [{"role": "user", "content": "SECRET-PROMPT"}]}


def test_round_trip_and_kind_inference():
    job = JobMessage(
        request=CHAT, reply_to="replies", priority=7, deadline=datetime(2030, 1, 1, tzinfo=UTC)
    )
    parsed = parse_job_message(job.to_body())
    assert parsed == job and parsed.kind == "chat" and isinstance(parsed.request, ChatRequest)
    embed = parse_job_message(JobMessage(request={"model": "e", "input": ["a"]}).to_body())
    assert (
        embed.kind == "embeddings"
        and isinstance(embed.request, EmbeddingsRequest)
        and embed.model == "e"
    )


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"not json", "not JSON"),
        (b"[1]", "not a JSON object"),
        (
            json.dumps({"schema_version": 2, "job_id": "j1", "request": CHAT}).encode(),
            "schema_version",
        ),
        (json.dumps({"schema_version": 1, "request": CHAT}).encode(), "job_id"),
        (
            json.dumps(
                {"schema_version": 1, "job_id": "j1", "request": {"model": "gpt-4o"}}
            ).encode(),
            "messages",
        ),
        (
            json.dumps(
                {"schema_version": 1, "job_id": "j1", "request": {**CHAT, "stream": True}}
            ).encode(),
            "stream",
        ),
        (
            json.dumps(
                {"schema_version": 1, "job_id": "j1", "model": "other", "request": CHAT}
            ).encode(),
            "model",
        ),
        (
            json.dumps(
                {"schema_version": 1, "job_id": "j1", "request": CHAT, "priority": 99}
            ).encode(),
            "priority",
        ),
    ],
)
def test_invalid_messages_are_permanent_and_salvage_the_job(body, reason):
    with pytest.raises(InvalidJobMessage) as caught:
        parse_job_message(body, fallback_job_id="msg-1")
    assert reason in caught.value.message
    assert caught.value.job_id in ("j1", "msg-1")
    assert "SECRET-PROMPT" not in caught.value.message  # never echoes prompt text


def test_backlog_settings_read_host_names_and_name_missing_connections():
    settings = load_backlog_settings(
        {
            "BACKLOG_QUEUE": "work",
            "PARKING_QUEUE": "parked",
            "RETRY_TIMER_SCHEDULE": "*/10 * * * * *",
            "ServiceBusConnection__fullyQualifiedNamespace": "ns.servicebus.windows.net",
            "ServiceBusConnection__clientId": "cid",
            "AzureWebJobsStorage__accountName": "acct",
            "BACKLOG_MAX_PARKS": "3",
        }
    )
    assert (settings.queue, settings.parking_poison_queue, settings.dead_letter_queue) == (
        "work",
        "parked-poison",
        "work/$DeadLetterQueue",
    )
    assert (
        settings.servicebus_namespace == "ns.servicebus.windows.net"
        and settings.storage_account == "acct"
        and settings.max_parks == 3
    )
    with pytest.raises(SettingsError, match="ServiceBusConnection"):
        load_backlog_settings({"AzureWebJobsStorage": "UseDevelopmentStorage=true"})
    with pytest.raises(SettingsError, match="PARKING_QUEUE"):
        load_backlog_settings(
            {"ServiceBusConnection": "x", "AzureWebJobsStorage": "y", "PARKING_QUEUE": "Bad_Name"}
        )


def test_adapter_reads_the_real_trigger_types():
    msg = ServiceBusMessage(
        body=b"{}",
        message_id="m1",
        delivery_count=3,
        sequence_number=42,
        dead_letter_reason="MaxDeliveryCountExceeded",
        application_properties={"backlog_redrives": 1},
        user_properties={"priority": 5},
    )
    delivery = delivery_from_servicebus(msg)
    assert (delivery.message_id, delivery.delivery_count, delivery.sequence_number) == ("m1", 3, 42)
    assert delivery.dead_letter_reason == "MaxDeliveryCountExceeded"
    assert delivery.int_property("backlog_redrives") == 1 and delivery.int_property("priority") == 5
    text, count = text_from_queue_message(QueueMessage(id="q1", body=b'{"v": 1}', dequeue_count=2))
    assert (text, count) == ('{"v": 1}', 2)


def test_the_alias_may_be_given_only_at_the_top():
    from shared.jobs import JobMessage

    job = JobMessage.model_validate(
        {"model": "gpt-4o", "request": {"messages": [{"role": "user", "content": "x"}]}}
    )
    assert job.request.model == "gpt-4o" and job.kind == "chat"


def test_a_top_level_alias_that_disagrees_with_the_request_is_refused():
    import pytest
    from pydantic import ValidationError

    from shared.jobs import JobMessage

    with pytest.raises(ValidationError, match=r"model: must equal request\.model"):
        JobMessage.model_validate(
            {
                "model": "gpt-4o",
                "request": {"model": "other", "messages": [{"role": "user", "content": "x"}]},
            }
        )
