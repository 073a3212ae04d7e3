"""Caller-supplied values in log records: escaped and truncated, so a record stays one line.

A value such as ``model: "gpt-4o\\nERROR forged line"`` would otherwise write a second, fake
record into any line-oriented log (console, file, the Functions host's stream). ``log_safe``
escapes every control or non-printable character (``\\n`` -> ``\\\\n``, others as ``\\\\xNN`` /
``\\\\uNNNN``) and cuts the result to ``limit`` characters, saying how much was cut.
"""

from __future__ import annotations

from typing import Any

__all__ = ["log_safe"]

_ESCAPES = {"\n": "\\n", "\r": "\\r", "\t": "\\t", "\\": "\\\\"}


def _escape(ch: str) -> str:
    if ch in _ESCAPES:
        return _ESCAPES[ch]
    if ch.isprintable():
        return ch
    code = ord(ch)
    return (
        f"\\x{code:02x}"
        if code < 0x100
        else f"\\u{code:04x}"
        if code < 0x10000
        else f"\\U{code:08x}"
    )


def log_safe(value: Any, limit: int = 200) -> Any:
    """``value`` fit for a log record: None stays None, anything else becomes an escaped,
    truncated string."""
    if value is None:
        return None
    text = value if isinstance(value, str) else str(value)
    if text.isprintable() and "\\" not in text and len(text) <= limit:
        return text
    out = "".join(_escape(ch) for ch in text[:limit])
    return out if len(text) <= limit else f"{out}...(+{len(text) - limit} chars)"
