"""The timer's NCRONTAB schedule: when it fires, and how far apart its runs are.

One parser for both users: the dev server fires the timer with it (``devserver.queues``), and the
re-drive plans over the time until the next run (``redrive_horizon_s``). Six fields
``{second} {minute} {hour} {day} {month} {day-of-week}``, restricted to what "every N seconds /
minutes / hours" needs: each of the first three is ``*``, ``*/N`` or a number; the last three
must be ``*``. Anything else is refused with a clear error (ValueError).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import lru_cache
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..settings import BacklogSettings

__all__ = ["DEFAULT_HORIZON_S", "TimerSchedule", "redrive_horizon_s"]

DEFAULT_HORIZON_S = (
    30.0  # the default schedule's period; used when the schedule says nothing simpler
)


@dataclass(frozen=True, slots=True)
class TimerSchedule:
    seconds: tuple[int, ...]
    minutes: tuple[int, ...]
    hours: tuple[int, ...]

    @classmethod
    def parse(cls, expression: str) -> TimerSchedule:
        fields = expression.split()
        if len(fields) != 6:
            raise ValueError(
                f"timer schedule {expression!r}: NCRONTAB needs six fields (second minute hour day month day-of-week)"
            )
        if any(f != "*" for f in fields[3:]):
            raise ValueError(
                f"timer schedule {expression!r}: only '*' is supported for day, month and day-of-week"
            )
        return cls(
            _field(fields[0], 60, expression),
            _field(fields[1], 60, expression),
            _field(fields[2], 24, expression),
        )

    def next_after(self, moment: datetime) -> datetime:
        candidate = moment.replace(microsecond=0) + timedelta(seconds=1)
        for _ in range(3 * 24 * 3600):
            if (
                candidate.second in self.seconds
                and candidate.minute in self.minutes
                and candidate.hour in self.hours
            ):
                return candidate
            candidate += timedelta(seconds=1)
        raise ValueError("timer schedule never fires")

    def period_s(self) -> float | None:
        """Seconds between runs when they are evenly spaced over the day (``*/30 * * * * *`` -> 30,
        ``0 */5 * * * *`` -> 300, ``0 0 * * * *`` -> 3600), else None (``*/7 * * * * *``)."""
        fires = [
            h * 3600 + m * 60 + s for h in self.hours for m in self.minutes for s in self.seconds
        ]
        gaps = {b - a for a, b in itertools.pairwise(fires)}
        gaps.add(fires[0] + 24 * 3600 - fires[-1])  # across midnight
        return float(gaps.pop()) if len(gaps) == 1 else None


def _field(text: str, size: int, expression: str) -> tuple[int, ...]:
    if text == "*":
        return tuple(range(size))
    if text.startswith("*/") and text[2:].isdigit() and int(text[2:]) > 0:
        return tuple(range(0, size, int(text[2:])))
    if text.isdigit() and int(text) < size:
        return (int(text),)
    raise ValueError(f"timer schedule {expression!r}: field {text!r} is not '*', '*/N' or a number")


def redrive_horizon_s(settings: BacklogSettings) -> float:
    """How far ahead one timer run plans re-drives: ``redrive_horizon_s`` when set, else the
    schedule's period when it is evenly spaced, else ``DEFAULT_HORIZON_S``."""
    if settings.redrive_horizon_s is not None:
        return settings.redrive_horizon_s
    period = _period_of(settings.timer_schedule)
    return period if period is not None else DEFAULT_HORIZON_S


@lru_cache(maxsize=8)
def _period_of(expression: str) -> float | None:
    try:
        return TimerSchedule.parse(expression).period_s()
    except ValueError:
        return None
