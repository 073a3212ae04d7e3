"""Turn pydantic's validation errors into one error that names the bad app setting."""

from __future__ import annotations

from pydantic import ValidationError

__all__ = ["SettingsError", "settings_error_from"]


class SettingsError(ValueError):
    """An app setting is missing or invalid; the message names the setting and the field."""


def settings_error_from(
    exc: ValidationError, *, prefix: str, source_names: dict[str, str]
) -> SettingsError:
    """Map a ValidationError to a SettingsError naming the environment key (e.g. ``GATEWAY_REGIONS[0].endpoint``)."""
    lines = []
    for err in exc.errors():
        loc = list(err.get("loc", ()))
        message = str(err.get("msg", "")).removeprefix("Value error, ")
        if not loc:  # a check across fields: its message starts with the field it is about
            field, sep, rest = message.partition(": ")
            if sep and field.isidentifier():
                loc, message = [field], rest
        head = str(loc[0]) if loc else ""
        key = source_names.get(head, f"{prefix}{head.upper()}")
        path = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in loc[1:])
        lines.append(f"{key}{path}: {message}")
    return SettingsError("invalid app settings:\n  " + "\n  ".join(lines))
