"""Sending, receiving and value fidelity through the real SDK (sync and async)."""

from __future__ import annotations

import datetime as dt
import time
import uuid

from azure.servicebus import ServiceBusMessage, ServiceBusReceiveMode

from .conftest import body_of


async def test_single_message_round_trips_every_field(sdk, sb_broker):
    sent = ServiceBusMessage(
        "hello",
        message_id="m-1",
        correlation_id="c-1",
        reply_to="replies",
        subject="greeting",
        content_type="text/plain",
        time_to_live=dt.timedelta(minutes=5),
        application_properties={
            "kind": "job",
            "attempt": 3,
            "ok": True,
            "ratio": 0.5,
            "raw": b"\x00\x01",
        },
    )
    async with sdk.pair("q", max_wait_time=2) as (sender, receiver):
        await sender.send_messages(sent)
        [stored] = sb_broker.messages("q")
        assert (
            stored.body == b"hello"
            and stored.message_id == "m-1"
            and stored.correlation_id == "c-1"
        )
        # The broker reports wire types; this SDK sends a bytes property value as an AMQP string.
        assert stored.application_properties == {
            "kind": "job",
            "attempt": 3,
            "ok": True,
            "ratio": 0.5,
            "raw": "\x00\x01",
        }
        assert (
            stored.delivery_count == 0
            and stored.sequence_number == 1
            and stored.reply_to == "replies"
        )

        [got] = await receiver.receive_messages(max_message_count=1, max_wait_time=2)
        # What the real service hands back through this SDK: keys and string values as bytes.
        assert got.application_properties == {
            b"kind": b"job",
            b"attempt": 3,
            b"ok": True,
            b"ratio": 0.5,
            b"raw": b"\x00\x01",
        }
        assert body_of(got) == b"hello"
        assert (
            got.message_id,
            got.correlation_id,
            got.reply_to,
            got.subject,
            got.content_type,
        ) == ("m-1", "c-1", "replies", "greeting", "text/plain")
        assert got.time_to_live == dt.timedelta(minutes=5)
        assert got.delivery_count == 0
        assert got.sequence_number == 1
        now = dt.datetime.now(dt.UTC)
        assert abs((got.enqueued_time_utc - now).total_seconds()) < 5
        assert 25 < (got.locked_until_utc - now).total_seconds() <= 31
        assert isinstance(got.lock_token, uuid.UUID)
        assert sb_broker.messages("q")[0].lock_token == got.lock_token
        started = time.monotonic()
        await receiver.complete_message(got)
        assert time.monotonic() - started < 5.0  # no wait for a timeout (generous: busy machines)
    assert sb_broker.queue_count("q") == 0


async def test_batch_send_is_one_transfer_of_many_messages(sdk, sb_broker):
    async with sdk.pair("q") as (sender, receiver):
        await sender.send_messages(
            [ServiceBusMessage(f"m{i}", message_id=f"id-{i}") for i in range(3)]
        )
        batch = await sender.create_message_batch()
        for i in range(3, 5):
            batch.add_message(ServiceBusMessage(f"m{i}", application_properties={"i": i}))
        await sender.send_messages(batch)
        stored = sb_broker.messages("q")
        assert [m.body for m in stored] == [b"m0", b"m1", b"m2", b"m3", b"m4"]
        assert [m.sequence_number for m in stored] == [1, 2, 3, 4, 5]
        assert stored[4].application_properties == {"i": 4}

        got = []
        while len(got) < 5:
            batch_got = await receiver.receive_messages(max_message_count=5, max_wait_time=2)
            assert batch_got
            got += batch_got
        assert [body_of(m) for m in got] == [b"m0", b"m1", b"m2", b"m3", b"m4"]
        assert got[0].message_id == "id-0"
        for message in got:
            await receiver.complete_message(message)
    assert sb_broker.queue_count("q") == 0


async def test_receive_and_delete_removes_on_delivery(sdk, sb_broker):
    async with sdk.pair("q", receive_mode=ServiceBusReceiveMode.RECEIVE_AND_DELETE) as (
        sender,
        receiver,
    ):
        await sender.send_messages([ServiceBusMessage("a"), ServiceBusMessage("b")])
        got = await receiver.receive_messages(max_message_count=2, max_wait_time=2)
        if len(got) < 2:
            got += await receiver.receive_messages(max_message_count=1, max_wait_time=2)
        assert sorted(body_of(m) for m in got) == [b"a", b"b"]
        assert all(m.delivery_count == 0 for m in got)
    assert sb_broker.queue_count("q") == 0


async def test_receiver_link_credit_is_honoured(sdk, sb_broker):
    async with sdk.pair("q") as (sender, receiver):
        await sender.send_messages([ServiceBusMessage(str(i)) for i in range(5)])
        got = await receiver.receive_messages(max_message_count=2, max_wait_time=2)
        assert 1 <= len(got) <= 2
        locked = [m for m in sb_broker.messages("q") if m.state == "locked"]
        assert len(locked) == len(got)
        for message in got:
            await receiver.complete_message(message)
    assert sb_broker.queue_count("q") == 3


async def test_large_messages_are_split_across_frames_both_ways(sdk_kind, sb_broker_factory):
    from .conftest import Side

    broker = sb_broker_factory(max_frame_size=4096)
    side = Side(sdk_kind, broker.connection_string)
    payload = bytes(range(256)) * 800  # 200 KiB
    try:
        async with side.pair("big") as (sender, receiver):
            await sender.send_messages(ServiceBusMessage(payload, message_id="big"))
            await sender.send_messages(
                [ServiceBusMessage(payload[:50_000]), ServiceBusMessage(b"small")]
            )
            assert broker.counters["split_deliveries_in"] == 2
            assert [len(m.body) for m in broker.messages("big")] == [len(payload), 50_000, 5]
            got = []
            while len(got) < 3:
                got += await receiver.receive_messages(max_message_count=3, max_wait_time=2)
            assert body_of(got[0]) == payload and got[0].message_id == "big"
            assert body_of(got[1]) == payload[:50_000] and body_of(got[2]) == b"small"
            for message in got:
                await receiver.complete_message(message)
        assert broker.counters["split_deliveries_out"] == 2
    finally:
        await side.close()


async def test_peek_returns_messages_without_locking(sdk, sb_broker):
    async with sdk.pair("q") as (sender, receiver):
        assert await receiver.peek_messages(max_message_count=5) == []  # 204 from the broker
        await sender.send_messages(
            [ServiceBusMessage(f"p{i}", application_properties={"i": i}) for i in range(3)]
        )
        peeked = await receiver.peek_messages(max_message_count=10)
        assert [body_of(m) for m in peeked] == [b"p0", b"p1", b"p2"]
        assert [m.sequence_number for m in peeked] == [1, 2, 3]
        assert peeked[1].application_properties == {b"i": 1}
        more = await receiver.peek_messages(max_message_count=10, sequence_number=3)
        assert [m.sequence_number for m in more] == [3]
    assert all(m.state == "active" for m in sb_broker.messages("q"))
    assert sb_broker.queue_count("q") == 3
