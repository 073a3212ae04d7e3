"""The host double (``funchost``) in .venv-host (Python 3.13, ``azure-functions-runtime``), started
once for this folder against the simulator, Azurite and the test broker; tests talk to it over
HTTP (its front door and its ``/_host`` API) and to the broker with the real azure-servicebus SDK,
moving messages between the broker and the double's trigger invocations the way the host's
Service Bus listener does (peek-lock, invoke, complete on success, abandon on failure)."""

from __future__ import annotations

import json
import os
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from azure.servicebus import ServiceBusClient, ServiceBusReceivedMessage, ServiceBusSubQueue

from testpeers.broker import Broker, start_broker
from testpeers.devserver import settings_env
from testpeers.gateway import settings_for_sim, unique_ledger_table
from testpeers.ports import free_port, wait_for_port
from testpeers.sim import SimHandle, start_sim

ROOT = Path(__file__).resolve().parents[2]
PYTHON = ROOT / ".venv-host" / "bin" / "python"


@dataclass
class Host:
    """A running host double and the peers it was started against."""

    port: int
    env: dict[str, str]
    sim: SimHandle
    broker: Broker
    log: Path

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/api"

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=f"http://127.0.0.1:{self.port}", timeout=120)

    def functions(self) -> dict[str, Any]:
        with self.client() as c:
            return c.get("/_host/functions").raise_for_status().json()

    def invoke(self, function: str, spec: dict[str, Any]) -> dict[str, Any]:
        with self.client() as c:
            return c.post(f"/_host/invoke/{function}", json=spec).raise_for_status().json()

    def invocations(self) -> list[dict[str, Any]]:
        with self.client() as c:
            return c.get("/_host/invocations").raise_for_status().json()

    def logs(self) -> list[dict[str, Any]]:
        with self.client() as c:
            return c.get("/_host/logs").raise_for_status().json()

    def deliver(
        self,
        function: str,
        queue: str,
        *,
        dead_letter: bool = False,
        max_wait_s: float = 30,
        properties: dict[str, Any] | None = None,
    ) -> tuple[dict[str, Any], ServiceBusReceivedMessage]:
        """One message from ``queue`` (or its dead-letter queue) to ``function``, as the host's
        Service Bus listener does: receive in peek-lock, invoke, complete on success, abandon
        on failure. Answers the invocation and the message as received. ``properties`` are
        added to the message's application properties in the invocation (a message as a
        sender could have sent it)."""
        with ServiceBusClient.from_connection_string(self.env["ServiceBusConnection"]) as sb:
            sub_queue = ServiceBusSubQueue.DEAD_LETTER if dead_letter else None
            with sb.get_queue_receiver(queue, sub_queue=sub_queue) as receiver:
                received = receiver.receive_messages(max_message_count=1, max_wait_time=max_wait_s)
                assert received, f"no message on {queue} (dead_letter={dead_letter})"
                message = received[0]
                spec = message_spec(message)
                spec["application_properties"].update(properties or {})
                result = self.invoke(function, spec)
                if result["status"] == "Success":
                    receiver.complete_message(message)
                else:
                    receiver.abandon_message(message)
                return result, message


def message_spec(message: ServiceBusReceivedMessage) -> dict[str, Any]:
    """What the host's Service Bus extension reads off a received message. Its DeliveryCount
    counts this delivery (the AMQP header counts earlier ones: the Python SDK shows that)."""
    props = {
        (k.decode() if isinstance(k, bytes) else k): (v.decode() if isinstance(v, bytes) else v)
        for k, v in (message.application_properties or {}).items()
    }
    return {
        "body": b"".join(message.body).decode("utf-8"),
        "message_id": message.message_id,
        "delivery_count": (message.delivery_count or 0) + 1,
        "sequence_number": message.sequence_number,
        "correlation_id": message.correlation_id,
        "reply_to": message.reply_to,
        "content_type": message.content_type,
        "application_properties": props,
        "dead_letter_reason": message.dead_letter_reason,
        "dead_letter_error_description": message.dead_letter_error_description,
        "dead_letter_source": message.dead_letter_source,
    }


def _unique(prefix: str) -> str:
    return f"{prefix}{uuid.uuid4().hex[:12]}"


@pytest.fixture(scope="package")
def host(tmp_path_factory: pytest.TempPathFactory, azurite: Any) -> Iterator[Host]:
    if not PYTHON.exists():
        pytest.fail(f"{PYTHON} is missing: run `make deps` (requirements-host.txt, Python 3.13)")
    workdir = tmp_path_factory.mktemp("host-double")
    sim = start_sim(per_token_ms=20, workdir=tmp_path_factory.mktemp("host-sim"))
    broker = start_broker()
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GATEWAY_", "BACKLOG_"))}
    env.update(settings_env(settings_for_sim(sim)))
    env.update(
        {
            "BACKLOG_QUEUE": _unique("backlog"),
            "PARKING_QUEUE": _unique("parked"),
            "RETRY_TIMER_SCHEDULE": "*/30 * * * * *",
            "BACKLOG_JOBS_TABLE": _unique("jobs"),
            "BACKLOG_RESULTS_CONTAINER": _unique("results"),
            "ServiceBusConnection": broker.connection_string,
            "AzureWebJobsStorage": azurite.connection_string,
            "GATEWAY_LEDGER_TABLE": unique_ledger_table(),
            # Tables of its own: the tests open circuits and throttle cooldowns on the regions,
            # which must not reach other tests' apps through the shared Azurite.
            "GATEWAY_HEALTH_TABLE": _unique("health"),
            "GATEWAY_USAGE_TABLE": _unique("usage"),
            "BACKLOG_DLQ_REDRIVE_DELAY_S": "0",
        }
    )
    log = workdir / "funchost.log"
    out = open(log, "wb")  # noqa: SIM115 - the double writes it; closed after it stops
    proc = subprocess.Popen(
        [str(PYTHON), "-m", "funchost", "--port", str(port), "--app-dir", str(ROOT)],
        env=env,
        cwd=ROOT,
        stdout=out,
        stderr=subprocess.STDOUT,
    )
    try:
        try:
            wait_for_port(port, timeout=180, proc=proc)
        except (RuntimeError, TimeoutError) as exc:
            raise AssertionError(f"{exc}\n{log.read_text()[-4000:]}") from exc
        yield Host(port, env, sim, broker, log)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
        out.close()
        broker.stop()
        sim.stop()


def sse_events(lines: Iterator[str]) -> list[dict[str, Any] | str]:
    events: list[dict[str, Any] | str] = []
    for line in lines:
        if line.startswith("data: "):
            data = line[len("data: ") :]
            events.append(data if data == "[DONE]" else json.loads(data))
    return events
