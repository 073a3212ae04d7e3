"""One table helper: only ``shared/_tables.py`` (``EtagTable``) creates a table; every store
that needs its table created on first use goes through it."""

from __future__ import annotations

import ast
from pathlib import Path

import shared

SHARED = Path(shared.__file__).resolve().parent


def test_only_the_table_helper_creates_tables():
    offenders = []
    for path in sorted(SHARED.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if (
                isinstance(node, ast.Attribute)
                and node.attr in ("create_table", "create_table_if_not_exists")
                and path.name != "_tables.py"
            ):
                offenders.append(f"{path.relative_to(SHARED.parent)}:{node.lineno}")
    assert not offenders, "create the table through shared.storage.EtagTable:\n" + "\n".join(
        offenders
    )
