"""Settlement, locks, dead-lettering and delivery counts through the real SDK (sync and async)."""

from __future__ import annotations

import asyncio
import time

import pytest
from azure.servicebus import ServiceBusMessage, ServiceBusSubQueue
from azure.servicebus.exceptions import MessageLockLostError

from .conftest import Side, body_of


async def _receive_one(receiver, wait: float = 2.0):
    got = await receiver.receive_messages(max_message_count=1, max_wait_time=wait)
    assert len(got) == 1, "expected one message"
    return got[0]


async def _timed(coro) -> float:
    started = time.monotonic()
    await coro
    return time.monotonic() - started


async def test_abandon_redelivers_with_incremented_delivery_count(sdk, sb_broker):
    async with sdk.pair("q") as (sender, receiver):
        await sender.send_messages(ServiceBusMessage("retry-me", message_id="r1"))
        first = await _receive_one(receiver)
        assert first.delivery_count == 0
        assert await _timed(receiver.abandon_message(first)) < 5.0
        second = await _receive_one(receiver)
        assert (second.message_id, second.delivery_count) == ("r1", 1)
        assert second.lock_token != first.lock_token
        assert sb_broker.messages("q")[0].delivery_count == 1
        assert await _timed(receiver.complete_message(second)) < 5.0
    assert sb_broker.queue_count("q") == 0


async def test_dead_letter_keeps_reason_and_description(sdk, sb_broker):
    async with sdk.pair("q") as (sender, receiver):
        await sender.send_messages(
            ServiceBusMessage("poison", message_id="p1", application_properties={"k": "v"})
        )
        message = await _receive_one(receiver)
        elapsed = await _timed(
            receiver.dead_letter_message(
                message, reason="BadInput", error_description="field x missing"
            )
        )
        assert elapsed < 5.0
    assert sb_broker.queue_count("q") == 0 and sb_broker.dlq_count("q") == 1
    [stored] = sb_broker.dlq_messages("q")
    assert (stored.dead_letter_reason, stored.dead_letter_description) == (
        "BadInput",
        "field x missing",
    )
    assert stored.dead_letter_source == "q" and stored.message_id == "p1"

    async with sdk.receiver("q", sub_queue=ServiceBusSubQueue.DEAD_LETTER) as dlq:
        dead = await _receive_one(dlq)
        assert body_of(dead) == b"poison"
        assert dead.dead_letter_reason == "BadInput"
        assert dead.dead_letter_error_description == "field x missing"
        assert dead.application_properties[b"DeadLetterReason"] == b"BadInput"
        assert dead.application_properties[b"k"] == b"v"
        assert dead.raw_amqp_message.annotations[b"x-opt-deadletter-source"] == b"q"
        assert await _timed(dlq.complete_message(dead)) < 5.0
    assert sb_broker.dlq_count("q") == 0


async def test_max_delivery_count_moves_message_to_dlq(sdk_kind, sb_broker_factory):
    broker = sb_broker_factory(max_delivery_count=3)
    side = Side(sdk_kind, broker.connection_string)
    try:
        async with side.pair("q") as (sender, receiver):
            await sender.send_messages(ServiceBusMessage("flaky"))
            for attempt in range(3):
                message = await _receive_one(receiver)
                assert message.delivery_count == attempt
                await receiver.abandon_message(message)
            assert await receiver.receive_messages(max_message_count=1, max_wait_time=0.5) == []
        [dead] = broker.dlq_messages("q")
        assert dead.dead_letter_reason == "MaxDeliveryCountExceeded"
        assert (
            dead.dead_letter_description
            == "Message could not be consumed after 3 delivery attempts."
        )
        assert broker.queue_count("q") == 0
    finally:
        await side.close()


async def test_lock_expiry_redelivers_and_renew_lock_extends(sdk_kind, sb_broker_factory):
    # Locks of 6 s, sleeps of 3.5 s: 2.5 s of slack either side, for a busy machine.
    broker = sb_broker_factory(lock_duration_s=6.0)
    side = Side(sdk_kind, broker.connection_string)
    try:
        async with side.pair("q") as (sender, receiver):
            await sender.send_messages(
                [ServiceBusMessage("expire-me"), ServiceBusMessage("renew-me")]
            )
            got = await receiver.receive_messages(max_message_count=2, max_wait_time=2)
            if len(got) < 2:
                got += await receiver.receive_messages(max_message_count=1, max_wait_time=2)
            expiring, renewed = got
            assert (body_of(expiring), body_of(renewed)) == (b"expire-me", b"renew-me")
            before = renewed.locked_until_utc
            await asyncio.sleep(3.5)
            after = await receiver.renew_message_lock(renewed)
            assert after > before
            await asyncio.sleep(3.5)  # past the first lock, inside the renewed one
            again = await _receive_one(receiver)
            assert body_of(again) == b"expire-me" and again.delivery_count == 1
            assert again.lock_token != expiring.lock_token
            with pytest.raises(MessageLockLostError):
                await receiver.complete_message(expiring)
            await receiver.complete_message(renewed)
            await receiver.complete_message(again)
        assert broker.queue_count("q") == 0
    finally:
        await side.close()


async def test_lock_lost_at_the_broker_is_reported(sdk, sb_broker):
    async with sdk.pair("q") as (sender, receiver):
        await sender.send_messages([ServiceBusMessage("a"), ServiceBusMessage("b")])
        got = await receiver.receive_messages(max_message_count=2, max_wait_time=2)
        if len(got) < 2:
            got += await receiver.receive_messages(max_message_count=1, max_wait_time=2)
        sb_broker.reset()  # the broker forgets every lock; the client still thinks it holds them
        with pytest.raises(
            MessageLockLostError
        ):  # settled over the receive link: rejected, message-lock-lost
            await receiver.complete_message(got[0])
        with pytest.raises(MessageLockLostError):  # renew over $management: 410, message-lock-lost
            await receiver.renew_message_lock(got[1])


async def test_defer_then_settle_through_management(sdk, sb_broker):
    async with sdk.pair("q") as (sender, receiver):
        await sender.send_messages(ServiceBusMessage("later", message_id="d1"))
        message = await _receive_one(receiver)
        seq = message.sequence_number
        await receiver.defer_message(message)
        assert sb_broker.queue_count("q") == 0 and sb_broker.deferred_count("q") == 1
        [deferred] = await receiver.receive_deferred_messages([seq])
        assert deferred.message_id == "d1"
        # Deferred messages settle over $management (com.microsoft:update-disposition).
        assert await _timed(receiver.dead_letter_message(deferred, reason="Gave up")) < 5.0
    assert sb_broker.deferred_count("q") == 0
    assert sb_broker.dlq_messages("q")[0].dead_letter_reason == "Gave up"
