"""The standalone process: ``python -m sbbroker`` with declared queues and the HTTP admin endpoint."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path

from azure.servicebus import ServiceBusClient, ServiceBusMessage

from sbbroker import start_in_thread
from tests.fixtures.ports import free_ports, wait_for_port

ROOT = Path(__file__).resolve().parents[2]


def _get(port: int, path: str):
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as response:
        return json.loads(response.read())


def test_cli_serves_sdk_and_admin_http():
    port, admin = free_ports(2)
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "sbbroker",
            "--port",
            str(port),
            "--queue",
            "jobs",
            "--no-auto-create",
            "--admin-port",
            str(admin),
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        wait_for_port(port, proc=proc)
        wait_for_port(admin, proc=proc)
        conn = f"Endpoint=sb://127.0.0.1:{port};SharedAccessKeyName=k;SharedAccessKey=v;UseDevelopmentEmulator=true"
        with (
            ServiceBusClient.from_connection_string(conn) as client,
            client.get_queue_sender("jobs", keep_alive=0) as sender,
        ):
            sender.send_messages(
                ServiceBusMessage("job-1", message_id="j1", application_properties={"a": 1})
            )
        assert _get(admin, "/queues")["jobs"]["active"] == 1
        [message] = _get(admin, "/queues/jobs")
        assert (message["body"], message["message_id"], message["application_properties"]) == (
            "job-1",
            "j1",
            {"a": 1},
        )
        assert _get(admin, "/queues/jobs/dlq") == []
        request = urllib.request.Request(f"http://127.0.0.1:{admin}/reset", method="POST")
        urllib.request.urlopen(request, timeout=5).close()
        assert _get(admin, "/queues")["jobs"]["active"] == 0
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()


def test_plain_python_starter_and_handle_admin():
    broker = start_in_thread(queues=("a",), lock_duration_s=5)
    try:
        assert broker.port > 0 and f":{broker.port};" in broker.connection_string
        with (
            ServiceBusClient.from_connection_string(broker.connection_string) as client,
            client.get_queue_sender("a", keep_alive=0) as sender,
        ):
            sender.send_messages([ServiceBusMessage("x"), ServiceBusMessage("y")])
        assert broker.queue_count("a") == 2 and broker.stats()["a"]["active"] == 2
        broker.reset()
        assert broker.queue_count("a") == 0 and broker.queue_names() == ["a"]
    finally:
        broker.stop()
    broker.stop()  # idempotent
