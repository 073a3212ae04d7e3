"""Re-driving the backlog's dead letters (``shared.ops.redrive_dead_letters``) through the real
async SDK against the test broker with Azure's queue settings (``sb_azure_broker``: duplicate
detection on, the templates' one-hour window). The job was submitted under its job id, so a copy
re-sent under that id within the hour is accepted and silently dropped, while its dead-letter copy
is completed: the job would be lost. Each re-drive must arrive, under a new message id, with the
job's identity in the body."""

from __future__ import annotations

import json
from typing import Any

from azure.servicebus import ServiceBusMessage
from azure.servicebus.aio import ServiceBusClient

from shared.jobs import JobMessage, parse_job_message
from shared.ops import redrive_dead_letters

QUEUE = "backlog"  # declared by the Azure-like broker, as infra/ names it


def _job() -> JobMessage:
    return JobMessage(
        request={"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]},
        reply_to="replies",
    )


async def _dead_letter_one(client: Any) -> int:
    """Receive the one message on the backlog and dead-letter it: its sequence number."""
    async with client.get_queue_receiver(QUEUE, max_wait_time=10) as receiver:
        (message,) = await receiver.receive_messages(max_message_count=1, max_wait_time=10)
        await receiver.dead_letter_message(message, reason="Poked", error_description="test")
        return int(message.sequence_number)


async def test_a_redriven_job_arrives_under_a_new_message_id_each_time(sb_azure_broker):
    job = _job()
    async with ServiceBusClient.from_connection_string(sb_azure_broker.connection_string) as client:
        async with client.get_queue_sender(QUEUE) as sender:
            # as the submit path sends it: message id = job id (duplicate detection's key)
            await sender.send_messages(
                ServiceBusMessage(job.to_body(), message_id=job.job_id, subject=job.kind)
            )
        seen_ids = {job.job_id}
        for attempt in (1, 2):  # dead-lettered and re-driven twice: each copy must arrive
            seq = await _dead_letter_one(client)
            result = await redrive_dead_letters(client, QUEUE, [seq])
            assert result == {"redriven": [seq], "missing": []}
            (copy,) = sb_azure_broker.messages(QUEUE)
            assert sb_azure_broker.duplicates_dropped(QUEUE) == 0, f"re-drive {attempt} dropped"
            assert sb_azure_broker.dlq_messages(QUEUE) == []
            assert copy.message_id not in seen_ids
            seen_ids.add(copy.message_id)
            assert copy.message_id.startswith(job.job_id)
            assert copy.correlation_id == job.job_id and copy.subject == job.kind
            assert parse_job_message(copy.body).job_id == job.job_id


def test_the_redrive_id_is_stable_per_dead_letter_and_new_per_copy():
    """The new id is derived from the dead-lettered message: a second send of the same one (a
    retry after a failure between send and complete) is dropped as a duplicate."""
    from shared.ops._deadletters import _redrive_message_id

    job = _job()
    assert _redrive_message_id(job.job_id, 7) == _redrive_message_id(job.job_id, 7)
    assert _redrive_message_id(job.job_id, 7) != _redrive_message_id(job.job_id, 8)
    assert len(_redrive_message_id("j" * 128, 2**63 - 1)) <= 128  # Service Bus's limit


async def test_a_body_without_a_job_id_gets_the_original_message_id(sb_azure_broker):
    async with ServiceBusClient.from_connection_string(sb_azure_broker.connection_string) as client:
        async with client.get_queue_sender(QUEUE) as sender:
            await sender.send_messages(
                ServiceBusMessage(b'{"not": "a job"}', message_id="job-x1", correlation_id="c-1")
            )
            await sender.send_messages(ServiceBusMessage(b"\xff not json", message_id="job-x2"))
        seqs = [await _dead_letter_one(client), await _dead_letter_one(client)]
        result = await redrive_dead_letters(client, QUEUE, seqs)
        assert result == {"redriven": sorted(seqs), "missing": []}
    first, second = sb_azure_broker.messages(QUEUE)
    assert json.loads(first.body) == {"not": "a job", "job_id": "job-x1"}
    assert first.correlation_id == "c-1" and first.message_id == f"job-x1.r{seqs[0]}"
    assert second.body == b"\xff not json" and second.message_id == f"job-x2.r{seqs[1]}"
    assert second.correlation_id == "job-x2"
    assert sb_azure_broker.duplicates_dropped(QUEUE) == 0
