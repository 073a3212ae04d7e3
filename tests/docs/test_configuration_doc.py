"""docs/configuration.md and the code agree on the settings: every app setting the gateway reads
is documented by its full name, and every GATEWAY_*/BACKLOG_* name the page documents is read.

"Read" is ``shared.settings.known_settings()`` (the settings classes' fields and host aliases, and
the few names read directly, listed in ``shared/settings/_known.py``); the test also scans the
deployed code for GATEWAY_/BACKLOG_ string literals, so a name read directly but missing from
that list fails here too."""

from __future__ import annotations

import ast
import re
from pathlib import Path

from shared.settings import known_settings
from shared.settings._known import OWN_PREFIXES, TOOLS

ROOT = Path(__file__).resolve().parents[2]
PAGE = ROOT / "docs" / "configuration.md"
# A name in backticks, or a key of the page's local.settings.json examples ("NAME": ...).
NAME = re.compile(r"`([A-Za-z][A-Za-z0-9_]*)`|\"([A-Za-z][A-Za-z0-9_]*)\"\s*:")
OWN = re.compile(r"^(?:GATEWAY|BACKLOG)_[A-Z0-9_]*[A-Z0-9]$")


def _documented() -> set[str]:
    return {a or b for a, b in NAME.findall(PAGE.read_text(encoding="utf-8"))}


def _literals() -> set[str]:
    found: set[str] = set()
    files = [*sorted((ROOT / "shared").rglob("*.py")), ROOT / "function_app.py"]
    for path in files:
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if (
                isinstance(node, ast.Constant)
                and isinstance(node.value, str)
                and OWN.match(node.value)
            ):
                found.add(node.value)
    return found


def test_every_setting_the_code_reads_is_documented() -> None:
    missing = sorted(known_settings() - _documented())
    assert not missing, f"read by the code, not in docs/configuration.md: {missing}"


def test_every_documented_gateway_or_backlog_setting_is_read() -> None:
    known = {n.upper() for n in known_settings()}
    stale = sorted(
        n
        for n in _documented()
        if n.upper().startswith(OWN_PREFIXES)
        and OWN.match(n)
        and n.upper() not in known
        and n not in TOOLS
    )
    assert not stale, f"documented in docs/configuration.md, read by nothing: {stale}"


def test_names_read_directly_are_in_the_registry() -> None:
    known = {n.upper() for n in known_settings()} | TOOLS
    unlisted = sorted(n for n in _literals() if n.upper() not in known)
    assert not unlisted, f"GATEWAY_/BACKLOG_ names in the code missing from _known.py: {unlisted}"
