"""Reply queues are allowed per caller (BACKLOG_REPLY_QUEUES): a caller cannot point its replies,
with content it controls, at another team's queue or at the backlog itself; a queue the app may
not send to drops that reply as undeliverable at once instead of retrying and dead-lettering.
Against the real broker (azure-servicebus SDK), Azurite and the simulator."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import httpx

from shared.jobs import Outgoing

from .conftest import backlog_env

ORDERS_KEY, BILLING_KEY = "orders-key", "billing-key"


def _fp(key: str) -> str:
    return "key:" + hashlib.sha256(key.encode()).hexdigest()[:12]


def _job(reply_to: str, **extra: Any) -> dict[str, Any]:
    return {
        "request": {
            "model": "gpt-4o",
            "messages": [{"role": "user", "content": "reply somewhere"}],
            "max_tokens": 8,
        },
        "reply_to": reply_to,
        **extra,
    }


async def test_submission_refuses_a_reply_queue_its_caller_may_not_use(
    e2e_sim, sb_broker, azurite, unique_name, gateway_settings_factory, app_env, devserver
) -> None:
    from tests.fixtures.devserver import settings_env

    orders_replies, billing_replies = unique_name("orders"), unique_name("billing")
    for queue in (orders_replies, billing_replies):
        sb_broker.create_queue(queue)
    env = {
        **settings_env(gateway_settings_factory(e2e_sim)),
        **backlog_env(sb_broker, azurite, unique_name),
        "BACKLOG_REPLY_QUEUES": json.dumps(
            {_fp(ORDERS_KEY): [orders_replies], _fp(BILLING_KEY): [billing_replies], "*": []}
        ),
    }
    app_env(env)
    async with httpx.AsyncClient(base_url=devserver.base_url, timeout=30) as http:

        async def post(key: str, reply_to: str) -> httpx.Response:
            return await http.post(
                "/v1/jobs", json=_job(reply_to), headers={"x-functions-key": key}
            )

        for reply_to in (billing_replies, env["BACKLOG_QUEUE"]):
            refused = await post(ORDERS_KEY, reply_to)
            assert refused.status_code == 400, refused.text
            error = refused.json()["error"]
            assert error["code"] == "reply_to_not_allowed" and error["param"] == "reply_to"
            assert "BACKLOG_REPLY_QUEUES" in error["message"]
        dead_letters = await post(ORDERS_KEY, env["BACKLOG_QUEUE"] + "/$DeadLetterQueue")
        assert dead_letters.status_code == 400  # not even a queue name
        assert dead_letters.json()["error"]["param"] == "reply_to"
        accepted = await post(ORDERS_KEY, orders_replies)
        assert accepted.status_code == 202, accepted.text
        assert (await post(BILLING_KEY, billing_replies)).status_code == 202
    assert sb_broker.queue_count(env["BACKLOG_QUEUE"]) == 2  # only the two allowed jobs


async def test_a_direct_sender_cannot_reply_into_another_queue(
    e2e_sim, sb_broker, gateway_factory, harness_factory, unique_name
) -> None:
    """A job put on the backlog directly names its caller and reply_to itself: a reply_to its
    caller may not use is a terminal failure with a reason, and nothing reaches that queue."""
    h = await harness_factory(sb_broker, gateway_factory(e2e_sim)).start(timer=False)
    victim = unique_name("billing")  # not under the harness's "replies*" allowance
    sb_broker.create_queue(victim)
    job = h.job("point it elsewhere").model_copy(update={"reply_to": victim, "caller": "key:x"})
    await h.backlog.services.bus.send(
        h.env["BACKLOG_QUEUE"], Outgoing(body=job.to_body(), message_id=job.job_id)
    )
    done = await h.wait_terminal([job.job_id])
    failed = done[job.job_id]
    assert failed.status == "failed" and failed.error["code"] == "reply_to_not_allowed"
    assert "BACKLOG_REPLY_QUEUES" in failed.error["message"]
    await h.settled()
    assert sb_broker.messages(victim) == [] and e2e_sim.region("eastus2").stats()["requests"] == 0


async def test_an_invalid_message_is_not_replied_into_another_queue(
    e2e_sim, sb_broker, gateway_factory, harness_factory, unique_name
) -> None:
    """An invalid job is failed under the id it names and replied to what could be salvaged of
    its reply_to, but only where its caller may have replies sent."""
    h = await harness_factory(sb_broker, gateway_factory(e2e_sim)).start(timer=False)
    victim = unique_name("billing")
    sb_broker.create_queue(victim)
    body = b'{"schema_version": 1, "job_id": "job-bad-2", "reply_to": "%s", "caller": "key:x"}'
    await h.backlog.services.bus.send(
        h.env["BACKLOG_QUEUE"], Outgoing(body=body % victim.encode(), message_id="job-bad-2")
    )
    done = await h.wait_terminal(["job-bad-2"])
    assert done["job-bad-2"].error["code"] == "invalid_message"
    await h.settled()
    assert sb_broker.messages(victim) == []


async def test_a_reply_queue_the_app_may_not_send_to_is_undeliverable_at_once(
    e2e_sim, sb_broker, gateway_factory, harness_factory
) -> None:
    """An authorization error on the reply is terminal for that reply: the job succeeds, the
    reply is marked undeliverable, the message completes (no retry, no dead letter)."""
    h = await harness_factory(sb_broker, gateway_factory(e2e_sim)).start(timer=False)
    sb_broker.deny_send(h.reply_queue)
    job = h.job("no rights on the reply queue")
    await h.submit(job)
    done = await h.wait_terminal([job.job_id], timeout=30)
    assert done[job.job_id].status == "succeeded"
    assert done[job.job_id].reply_state == "undeliverable"
    await h.settled()
    queue = h.env["BACKLOG_QUEUE"]
    assert sb_broker.dlq_count(queue) == 0 and h.calls["backlog_worker"] == 1
