"""Every app setting the gateway reads, in one list: for the start-up warning about misspelled
names, and for the test that keeps docs/configuration.md and the code in step.

Most names come from the settings classes themselves (``GATEWAY_<FIELD>``, ``BACKLOG_<FIELD>``,
and the host's own names given as aliases); ``DIRECT`` lists the few read without a class.
A ``GATEWAY_*`` or ``BACKLOG_*`` app setting that is not known is ignored by pydantic-settings,
so a typo (``GATEWAY_CALL_DEADLINE`` for ``GATEWAY_CALL_DEADLINE_S``) would silently do nothing:
``unknown_settings`` names it and the closest known setting, and the composition root logs that
once at start.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from pydantic.fields import FieldInfo

from ._backlog import BacklogSettings
from ._gateway import GatewaySettings
from ._source import AppSettings

__all__ = [
    "DIRECT",
    "OWN_PREFIXES",
    "TOOLS",
    "Misspelling",
    "known_settings",
    "unknown_settings",
]

OWN_PREFIXES = ("GATEWAY_", "BACKLOG_")

# Read directly from the environment (not through a settings class), by the module named.
DIRECT = frozenset(
    {
        "GATEWAY_REGIONS_FILE",  # settings/_gateway.py: the region table from a file
        "GATEWAY_CALLER_LIMITS",  # settings/_callers.py
        "GATEWAY_CALLER_WINDOW_S",
        "GATEWAY_CALLER_TABLE",
        "GATEWAY_CALLER_CACHE_S",
        "GATEWAY_USAGE",  # settings/_usage.py
        "GATEWAY_USAGE_TABLE",
        "GATEWAY_USAGE_FLUSH_S",
        "GATEWAY_PRICES",
        "GATEWAY_TELEMETRY",  # settings/_telemetry.py
        "GATEWAY_TELEMETRY_CAPTURE_CONTENT",
        "AZURE_CREDENTIAL_MODE",  # credentials.py
        "AZURE_CLIENT_ID",
        "APPLICATIONINSIGHTS_CONNECTION_STRING",  # settings/_telemetry.py
        "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT",
        "WEBSITE_INSTANCE_ID",  # runtime: this instance's name in shared state
    }
)

# Read by the project's own tools on a developer's or operator's machine, never by the app: not
# app settings, but they share the prefix and may well be in the environment of `make run`.
TOOLS = frozenset(
    {"GATEWAY_URL", "GATEWAY_MASTER_KEY", "GATEWAY_MASTER_KEY_FILE", "GATEWAY_FUNCTION_KEY"}
)


def _aliases(field: FieldInfo) -> list[str]:
    alias = field.validation_alias
    if alias is None:
        return []
    if isinstance(alias, str):
        return [alias]
    return [c for c in getattr(alias, "choices", ()) if isinstance(c, str)]


def _class_names(cls: type[AppSettings], prefix: str) -> set[str]:
    names: set[str] = set()
    for name, field in cls.model_fields.items():
        aliases = [a for a in _aliases(field) if not a.islower()]  # not the field's own name
        names.update(aliases or [f"{prefix}{name.upper()}"])
    return names


def known_settings() -> frozenset[str]:
    """Every setting name the gateway reads (case as documented)."""
    return frozenset(
        _class_names(GatewaySettings, "GATEWAY_")
        | _class_names(BacklogSettings, "BACKLOG_")
        | DIRECT
    )


@dataclass(frozen=True, slots=True)
class Misspelling:
    """An app setting with one of our prefixes that nothing reads, and the known name closest to it."""

    name: str
    closest: str | None

    def message(self) -> str:
        hint = f"; did you mean {self.closest}?" if self.closest else ""
        return f"app setting {self.name} is not a setting this gateway reads (ignored){hint}"


def unknown_settings(
    environ: Mapping[str, str], known: Iterable[str] | None = None
) -> list[Misspelling]:
    """The ``GATEWAY_*``/``BACKLOG_*`` names in ``environ`` that nothing reads, sorted, each with
    the closest known name (names are matched case-insensitively, as the host's are)."""
    names = sorted(known if known is not None else known_settings())
    by_upper = {n.upper(): n for n in names}
    out: list[Misspelling] = []
    for name in sorted(environ):
        upper = name.upper()
        if not upper.startswith(OWN_PREFIXES) or upper in by_upper or upper in TOOLS:
            continue
        close = difflib.get_close_matches(upper, list(by_upper), n=1, cutoff=0.7)
        out.append(Misspelling(name, by_upper[close[0]] if close else None))
    return out
