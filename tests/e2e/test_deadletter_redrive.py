"""An operator's dead-letter re-drive, end to end, on a broker with Azure's queue settings
(``sb_azure_broker``: duplicate detection with the templates' one-hour window): a job submitted
under its job id, dead-lettered, then re-driven by ``shared.ops.redrive_dead_letters`` within the
window, runs once and replies once. Re-sent under the job id, the copy was accepted and dropped by
duplicate detection while its dead-letter copy was completed: the job stayed queued forever."""

from __future__ import annotations

import pytest
from azure.servicebus.aio import ServiceBusClient

from shared.ops import redrive_dead_letters

pytestmark = pytest.mark.timeout(90)


async def test_a_job_redriven_from_the_dead_letter_queue_runs_once_and_replies(
    e2e_sim, sb_azure_broker, gateway_factory, harness_factory
):
    # Not started yet: the message must stay where the test puts it.
    h = harness_factory(sb_azure_broker, gateway_factory(e2e_sim))
    job = h.job("re-driven by hand")
    await h.submit(job)  # recorded as queued, sent with message id = job id
    queue = h.env["BACKLOG_QUEUE"]
    async with ServiceBusClient.from_connection_string(sb_azure_broker.connection_string) as client:
        async with client.get_queue_receiver(queue, max_wait_time=10) as receiver:
            (message,) = await receiver.receive_messages(max_message_count=1, max_wait_time=10)
            assert message.message_id == job.job_id
            await receiver.dead_letter_message(message, reason="Poked", error_description="test")
        result = await redrive_dead_letters(client, queue, [message.sequence_number])
    assert result == {"redriven": [message.sequence_number], "missing": []}
    assert sb_azure_broker.dlq_messages(queue) == []

    await h.start(timer=False)
    record = (await h.wait_terminal([job.job_id], timeout=30))[job.job_id]
    assert record.status == "succeeded"
    assert [r["job_id"] for r in h.replies()] == [job.job_id]
    assert sb_azure_broker.duplicates_dropped(queue) == 0
