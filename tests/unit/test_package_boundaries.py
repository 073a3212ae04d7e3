"""Packages under ``shared/`` use each other only through their public ``__init__`` exports."""

from __future__ import annotations

import ast
from pathlib import Path

import shared.api

SHARED = Path(shared.api.__file__).resolve().parents[1]


def _absolute(module: Path, node: ast.ImportFrom) -> str:
    if node.level == 0:
        return node.module or ""
    package = list(module.relative_to(SHARED.parent).with_suffix("").parts[:-1])
    base = package[: len(package) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def test_no_package_imports_another_packages_private_modules():
    offenders = []
    for path in sorted(SHARED.rglob("*.py")):
        own = path.relative_to(SHARED).parts[0]
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom):
                names = [_absolute(path, node)]
            elif isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            else:
                continue
            for name in names:
                parts = name.split(".")
                if (
                    len(parts) >= 3
                    and parts[0] == "shared"
                    and parts[1] != own
                    and any(p.startswith("_") for p in parts[2:])
                ):
                    offenders.append(
                        f"{path.relative_to(SHARED.parent)}:{node.lineno} imports {name}"
                    )
    assert not offenders, "\n".join(offenders)


def test_body_helpers_are_public():
    from shared.api import _parse

    assert {"parse_body", "read_body"} <= set(shared.api.__all__)
    assert shared.api.parse_body is _parse.parse_body and shared.api.read_body is _parse.read_body
