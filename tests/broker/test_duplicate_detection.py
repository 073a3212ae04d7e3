"""RequiresDuplicateDetection through the real SDK: a second message with the same MessageId inside
the queue's window is accepted by the sender and silently dropped, as Service Bus does."""

from __future__ import annotations

import datetime as dt

from azure.servicebus import ServiceBusMessage

from .conftest import body_of


async def test_same_message_id_inside_the_window_is_accepted_and_dropped(sdk, sb_broker):
    sb_broker.create_queue("replies", duplicate_detection_window_s=600)
    async with sdk.pair("replies", max_wait_time=2) as (sender, receiver):
        await sender.send_messages(ServiceBusMessage(b"first", message_id="job-1:reply"))
        # accepted (no error), but dropped: the queue keeps the first copy only
        await sender.send_messages(ServiceBusMessage(b"second", message_id="job-1:reply"))
        await sender.send_messages(
            [
                ServiceBusMessage(b"batched dup", message_id="job-1:reply"),
                ServiceBusMessage(b"other", message_id="job-2:reply"),
            ]
        )
        assert [m.body for m in sb_broker.messages("replies")] == [b"first", b"other"]
        assert sb_broker.duplicates_dropped("replies") == 2
        got = await receiver.receive_messages(max_message_count=5, max_wait_time=2)
        assert sorted(body_of(m) for m in got) == [b"first", b"other"]
        for message in got:
            await receiver.complete_message(message)
        # completing the first copy does not end the window: a late re-send is still dropped
        await sender.send_messages(ServiceBusMessage(b"late", message_id="job-1:reply"))
        assert sb_broker.messages("replies") == [] and sb_broker.duplicates_dropped("replies") == 3


async def test_scheduled_duplicates_are_dropped_too(sdk, sb_broker):
    sb_broker.create_queue("backlog", duplicate_detection_window_s=600)
    async with sdk.sender("backlog") as sender:
        when = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=30)
        await sender.schedule_messages(ServiceBusMessage(b"a", message_id="job-9.p1"), when)
        await sender.schedule_messages(ServiceBusMessage(b"b", message_id="job-9.p1"), when)
        await sender.send_messages(ServiceBusMessage(b"c", message_id="job-9.p1"))
    assert [m.body for m in sb_broker.scheduled_messages("backlog")] == [b"a"]
    assert sb_broker.queue_count("backlog") == 0
    assert sb_broker.duplicates_dropped("backlog") == 2


async def test_the_window_ends_and_queues_without_detection_keep_every_copy(sdk, sb_broker_factory):
    broker = sb_broker_factory()
    broker.create_queue("short", duplicate_detection_window_s=0.3)
    broker.create_queue("plain")
    side = type(sdk)(sdk.kind, broker.connection_string)
    try:
        async with side.sender("short") as short, side.sender("plain") as plain:
            await short.send_messages(ServiceBusMessage(b"1", message_id="m"))
            await plain.send_messages(ServiceBusMessage(b"1", message_id="m"))
            await plain.send_messages(ServiceBusMessage(b"2", message_id="m"))
            assert len(broker.messages("plain")) == 2 and broker.duplicates_dropped("plain") == 0
            # Absence of a drop needs the window to have passed: wait for it by the clock, then send.
            import asyncio
            import time

            ends = time.monotonic() + 0.3
            while time.monotonic() < ends + 0.2:
                await asyncio.sleep(0.1)
            await short.send_messages(ServiceBusMessage(b"2", message_id="m"))
            assert [m.body for m in broker.messages("short")] == [b"1", b"2"]
    finally:
        await side.close()


async def test_a_broker_wide_window_applies_to_auto_created_queues(sdk_kind, sb_broker_factory):
    from .conftest import Side

    broker = sb_broker_factory(duplicate_detection_window_s=600)
    side = Side(sdk_kind, broker.connection_string)
    try:
        async with side.sender("anyqueue") as sender:
            for body in (b"x", b"y"):
                await sender.send_messages(ServiceBusMessage(body, message_id="same"))
    finally:
        await side.close()
    assert [m.body for m in broker.messages("anyqueue")] == [b"x"]
    assert broker.stats()["anyqueue"]["duplicates_dropped"] == 1
