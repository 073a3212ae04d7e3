"""Scheduled messages, TTL and error mapping through the real SDK (sync and async)."""

from __future__ import annotations

import asyncio
import datetime as dt

import pytest
from azure.servicebus import ServiceBusMessage
from azure.servicebus.exceptions import MessagingEntityNotFoundError, ServiceBusError

from .conftest import Side, body_of

DUE_S = 3.0  # long enough for the checks before it on a busy machine


def _utc_in(seconds: float) -> dt.datetime:
    return dt.datetime.now(dt.UTC) + dt.timedelta(seconds=seconds)


async def test_scheduled_messages_stay_hidden_until_due_and_can_be_cancelled(sdk, sb_broker):
    async with sdk.pair("q") as (sender, receiver):
        [seq] = await sender.schedule_messages(
            ServiceBusMessage("due", message_id="s1"), _utc_in(DUE_S)
        )
        [cancel_seq] = await sender.schedule_messages(ServiceBusMessage("never"), _utc_in(DUE_S))
        await sender.send_messages(
            ServiceBusMessage("annotated", scheduled_enqueue_time_utc=_utc_in(DUE_S))
        )
        assert (seq, cancel_seq) == (1, 2)
        assert sb_broker.scheduled_count("q") == 3 and sb_broker.queue_count("q") == 0
        await sender.cancel_scheduled_messages(cancel_seq)
        assert sb_broker.scheduled_count("q") == 2
        assert sb_broker.scheduled_messages("q")[0].scheduled_enqueue_time is not None

        assert await receiver.receive_messages(max_message_count=1, max_wait_time=0.3) == []
        peeked = await receiver.peek_messages(max_message_count=5)
        assert [m.sequence_number for m in peeked] == [1, 3]
        got = []
        deadline = asyncio.get_running_loop().time() + DUE_S + 30
        while len(got) < 2:  # they become visible when due
            assert asyncio.get_running_loop().time() < deadline, got
            got += await receiver.receive_messages(max_message_count=2, max_wait_time=2)
        assert sorted(body_of(m) for m in got) == [b"annotated", b"due"]
        due = next(m for m in got if body_of(m) == b"due")
        assert due.message_id == "s1" and due.sequence_number == seq and due.delivery_count == 0
        assert due.scheduled_enqueue_time_utc is not None
        for message in got:
            await receiver.complete_message(message)
    assert sb_broker.queue_count("q") == 0 and sb_broker.scheduled_count("q") == 0


@pytest.mark.parametrize("dead_letter", [False, True], ids=["dropped", "dead-lettered"])
async def test_expired_messages_are_dropped_or_dead_lettered(
    sdk_kind, sb_broker_factory, dead_letter
):
    broker = sb_broker_factory(dead_lettering_on_expiration=dead_letter)
    side = Side(sdk_kind, broker.connection_string)
    try:
        async with side.pair("q") as (sender, receiver):
            await sender.send_messages(
                [
                    ServiceBusMessage("short", time_to_live=dt.timedelta(seconds=1)),
                    ServiceBusMessage("long"),
                ]
            )
            await asyncio.sleep(1.1)
            assert [m.body for m in broker.messages("q")] == [b"long"]
            [message] = await receiver.receive_messages(max_message_count=2, max_wait_time=1)
            assert body_of(message) == b"long"
            await receiver.complete_message(message)
        if dead_letter:
            [dead] = broker.dlq_messages("q")
            assert (dead.body, dead.dead_letter_reason) == (b"short", "TTLExpiredException")
        else:
            assert broker.dlq_count("q") == 0
    finally:
        await side.close()


async def test_unknown_entity_is_not_found_when_auto_create_is_off(sdk_kind, sb_broker_factory):
    broker = sb_broker_factory(queues=("known",), auto_create=False)
    side = Side(sdk_kind, broker.connection_string)
    try:
        with pytest.raises(MessagingEntityNotFoundError) as caught:
            async with side.sender("missing") as sender:
                await sender.send_messages(ServiceBusMessage("x"))
        assert isinstance(caught.value, ServiceBusError)
        with pytest.raises(MessagingEntityNotFoundError):
            async with side.receiver("missing") as receiver:
                await receiver.receive_messages(max_message_count=1, max_wait_time=0.5)
        async with side.sender("known") as sender:
            await sender.send_messages(ServiceBusMessage("fine"))
        assert broker.queue_count("known") == 1
        assert broker.queue_names() == ["known"]
    finally:
        await side.close()
