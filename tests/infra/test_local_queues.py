"""The local broker's queues behave as the ones infra/ creates: one declaration
(``testpeers/servicebus_queues.json``) is read by ``make run`` (``scripts/run_local.py``) and by the
``sb_azure_broker`` fixture, and is checked here against the templates as evaluated offline
(``checks.evaluate``: main.bicep with main.parameters.json). A template change to a queue's
duplicate detection, delivery count, lock duration or dead-lettering fails this test until the
declaration follows, so behaviour that depends on them is exercised locally."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from typing import Any

import pytest

from testpeers.queues import QueueSettings, broker_args, broker_settings, declared_queues

from . import checks

REPO = checks.REPO
INFRA = REPO / "infra"
pytestmark = pytest.mark.timeout(120)

# What Service Bus applies when a queue's template leaves a property out.
_AZURE_DEFAULTS = {
    "maxDeliveryCount": 10,
    "lockDuration": "PT1M",
    "deadLetteringOnMessageExpiration": False,
    "requiresDuplicateDetection": False,
    "duplicateDetectionHistoryTimeWindow": "PT10M",
}


def _as_settings(properties: dict[str, Any]) -> QueueSettings:
    props = {**_AZURE_DEFAULTS, **properties}
    return QueueSettings(
        max_delivery_count=int(props["maxDeliveryCount"]),
        lock_duration_s=checks._iso_seconds(props["lockDuration"]),
        dead_lettering_on_expiration=bool(props["deadLetteringOnMessageExpiration"]),
        duplicate_detection_window_s=(
            checks._iso_seconds(props["duplicateDetectionHistoryTimeWindow"])
            if props["requiresDuplicateDetection"]
            else None
        ),
    )


def _template_queues() -> dict[str, QueueSettings]:
    return {
        name: _as_settings(props) for name, props in checks._queues(checks.evaluate(INFRA)).items()
    }


def _differences(declared: dict[str, QueueSettings]) -> list[str]:
    azure = _template_queues()
    problems = [
        f"queue '{n}' is created by infra/ but not declared" for n in azure.keys() - declared
    ]
    problems += [
        f"queue '{n}' is declared but infra/ does not create it" for n in declared.keys() - azure
    ]
    for name in sorted(azure.keys() & declared.keys()):
        if azure[name] != declared[name]:
            problems.append(f"queue '{name}': infra/ {azure[name]} != declared {declared[name]}")
    return problems


def test_the_declaration_matches_the_queues_infra_creates() -> None:
    assert _template_queues(), "no Service Bus queue found in infra/"
    assert _differences(declared_queues()) == []


def test_the_backlog_and_reply_queues_detect_duplicates_locally_as_in_azure() -> None:
    queues = declared_queues()
    assert {"backlog", "replies"} <= queues.keys()
    assert all(q.duplicate_detection_window_s for q in queues.values())


def test_a_drifted_declaration_is_caught(tmp_path: Path) -> None:
    raw = json.loads(Path(checks.REPO / "testpeers" / "servicebus_queues.json").read_text())
    raw["queues"]["backlog"]["duplicate_detection_window_s"] = None  # the old `make run` broker
    drifted = tmp_path / "queues.json"
    drifted.write_text(json.dumps(raw))
    problems = _differences(declared_queues(drifted))
    assert len(problems) == 1 and "backlog" in problems[0]
    with pytest.raises(ValueError, match="one configuration"):
        broker_settings(drifted)  # the broker could not mirror both queues: refused, not guessed


def _run_local() -> Any:
    spec = importlib.util.spec_from_file_location("run_local", REPO / "scripts" / "run_local.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_make_run_starts_the_broker_with_the_declared_queues() -> None:
    from sbbroker.__main__ import _parser

    (broker_cmd,) = [
        cmd for name, _, cmd in _run_local().service_specs(sys.executable) if "bus" in name
    ]
    assert broker_cmd[1] == "-m" and broker_cmd[2] == "sbbroker"
    args = _parser().parse_args(broker_cmd[3:])
    names, settings = broker_settings()
    assert args.queue == list(names)
    assert args.duplicate_detection_window_s == settings.duplicate_detection_window_s
    assert args.max_delivery_count == settings.max_delivery_count
    assert args.lock_duration_s == settings.lock_duration_s
    assert args.dead_letter_on_expiration is settings.dead_lettering_on_expiration
    assert broker_cmd[3:] == ["--port", broker_cmd[4], *broker_args()]


def test_the_azure_fixture_broker_has_the_declared_settings(sb_azure_broker) -> None:
    names, settings = broker_settings()
    config = sb_azure_broker.config
    assert set(names) <= set(sb_azure_broker.queue_names())
    assert (
        config.max_delivery_count,
        config.lock_duration_s,
        config.dead_lettering_on_expiration,
        config.duplicate_detection_window_s,
    ) == (
        settings.max_delivery_count,
        settings.lock_duration_s,
        settings.dead_lettering_on_expiration,
        settings.duplicate_detection_window_s,
    )


def test_make_run_starts_the_dev_server_unless_func_is_asked_for(monkeypatch, tmp_path) -> None:
    run_local = _run_local()
    fake_func = tmp_path / "func"
    fake_func.write_text("#!/bin/sh\n")
    fake_func.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}:{Path(sys.executable).parent}")
    # Core Tools on the PATH do not change the default.
    assert run_local.parse_args([]).host == "devserver"
    assert run_local.app_command("devserver", "py")[:3] == ["py", "-m", "devserver"]
    assert run_local.app_command("func", "py") == [str(fake_func), "start", "--python"]
    monkeypatch.setenv("PATH", str(Path(sys.executable).parent))
    with pytest.raises(SystemExit, match="HOST=func needs"):
        run_local.app_command("func", "py")
