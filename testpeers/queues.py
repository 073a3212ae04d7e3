"""The Service Bus queue settings the local stack shares with Azure: one declaration,
``testpeers/servicebus_queues.json``, read by ``make run`` (``scripts/run_local.py``) and by the
test fixtures' ``sb_azure_broker``; ``tests/infra/test_local_queues.py`` checks it against what
``infra/`` creates. Standard library only, so ``scripts/run_local.py`` can read it before any
peer starts.

The test broker applies one queue configuration broker-wide (declared and auto-created queues
alike), so every declared queue must have the same settings; ``broker_settings`` refuses a
declaration where they differ instead of silently mirroring only one of them.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

__all__ = ["DECLARATION", "QueueSettings", "broker_args", "broker_settings", "declared_queues"]

DECLARATION = Path(__file__).resolve().with_name("servicebus_queues.json")


@dataclass(frozen=True, slots=True)
class QueueSettings:
    """One queue's settings, in the broker's terms (seconds)."""

    max_delivery_count: int
    lock_duration_s: float
    dead_lettering_on_expiration: bool
    duplicate_detection_window_s: float | None


def declared_queues(path: Path = DECLARATION) -> dict[str, QueueSettings]:
    """Queue name -> its settings, as declared."""
    raw = json.loads(path.read_text())["queues"]
    return {
        name: QueueSettings(
            max_delivery_count=int(spec["max_delivery_count"]),
            lock_duration_s=float(spec["lock_duration_s"]),
            dead_lettering_on_expiration=bool(spec["dead_lettering_on_expiration"]),
            duplicate_detection_window_s=(
                None
                if spec.get("duplicate_detection_window_s") is None
                else float(spec["duplicate_detection_window_s"])
            ),
        )
        for name, spec in raw.items()
    }


def broker_settings(path: Path = DECLARATION) -> tuple[tuple[str, ...], QueueSettings]:
    """(queue names, their one shared configuration); ValueError when the queues differ."""
    queues = declared_queues(path)
    distinct = set(queues.values())
    if len(distinct) != 1:
        raise ValueError(
            f"{path.name}: the test broker applies one configuration to every queue; "
            f"the declared queues differ: {queues}"
        )
    return tuple(queues), distinct.pop()


def broker_args(path: Path = DECLARATION) -> list[str]:
    """``python -m sbbroker`` flags that declare the queues with their settings."""
    names, settings = broker_settings(path)
    args = [f"--queue={name}" for name in names]
    args += [
        f"--max-delivery-count={settings.max_delivery_count}",
        f"--lock-duration-s={settings.lock_duration_s:g}",
    ]
    if settings.dead_lettering_on_expiration:
        args.append("--dead-letter-on-expiration")
    if settings.duplicate_detection_window_s is not None:
        args.append(f"--duplicate-detection-window-s={settings.duplicate_detection_window_s:g}")
    return args
