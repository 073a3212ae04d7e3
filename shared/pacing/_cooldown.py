"""How long a deployment must rest after a 429, read from the response's headers.

Order (first usable value wins): ``retry-after-ms`` -> ``retry-after`` (seconds or an HTTP
date) -> ``x-ratelimit-reset-requests`` / ``x-ratelimit-reset-tokens`` (the longer of the two;
plain seconds or OpenAI's ``1m30s`` / ``250ms`` form) -> the configured default. Zero,
negative and unparsable values are skipped. The caller decides what an absurd value means
(the deployment is marked exhausted until then; nobody sleeps).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from email.utils import parsedate_to_datetime

__all__ = ["cooldown_from_headers", "parse_duration"]

_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)")


def parse_duration(text: str) -> float | None:
    """Seconds from ``"1.5"``, ``"1.5s"``, ``"250ms"`` or ``"6m0s"``; None if unreadable."""
    text = text.strip().lower()
    try:
        return float(text)
    except ValueError:
        pass
    parts = _PART.findall(text)
    if not parts or "".join(n + u for n, u in parts) != text:
        return None
    return sum(float(number) * _UNITS[unit] for number, unit in parts)


def _millis(text: str) -> float | None:
    try:
        return float(text) / 1000.0
    except ValueError:
        return None


def _seconds_or_date(text: str, now: float) -> float | None:
    try:
        return float(text)
    except ValueError:
        pass
    try:
        return parsedate_to_datetime(text).timestamp() - now
    except (TypeError, ValueError, IndexError):
        return None


# (header names, parser) in precedence order; several names in one row: the longest wins.
_SOURCES: tuple[tuple[tuple[str, ...], Callable[[str, float], float | None]], ...] = (
    (("retry-after-ms",), lambda text, now: _millis(text)),
    (("retry-after",), _seconds_or_date),
    (
        ("x-ratelimit-reset-requests", "x-ratelimit-reset-tokens"),
        lambda text, now: parse_duration(text),
    ),
)


def cooldown_from_headers(
    headers: Mapping[str, str] | None, *, now: float, default_s: float
) -> tuple[float, str]:
    """(seconds to wait, the header it came from or ``"default"``)."""
    if headers:
        for names, parse in _SOURCES:
            best: tuple[float, str] | None = None
            for name in names:
                text = headers.get(name)
                value = parse(text, now) if text else None
                if (
                    value is not None
                    and value > 0
                    and math.isfinite(value)
                    and (best is None or value > best[0])
                ):
                    best = (value, name)
            if best is not None:
                return best
    return default_s, "default"
