"""Import boundaries, checked on the source:

* packages under ``shared/`` use each other only through their public ``__init__`` exports;
* ``function_app.py``, ``devserver/``, ``bench/``, ``scripts/`` and ``testpeers/`` use only
  public names of ``shared`` (no ``shared.<pkg>._module``, no ``_name`` imported from it);
* ``bench/`` and ``tests/`` import nothing of each other; ``testpeers/`` (the peers both start)
  imports neither;
* only ``testpeers/`` starts the simulator, the broker or Azurite (a command line running
  ``-m aoai_sim``, ``-m sbbroker`` or Azurite's ``--inMemoryPersistence``): ``bench/`` and
  ``tests/`` go through it (``tests/broker/`` tests the broker's own command line).
"""

from __future__ import annotations

import ast
import itertools
from collections.abc import Iterator
from pathlib import Path

import shared.api

SHARED = Path(shared.api.__file__).resolve().parents[1]
ROOT = SHARED.parent


def _absolute(module: Path, node: ast.ImportFrom) -> str:
    if node.level == 0:
        return node.module or ""
    package = list(module.relative_to(ROOT).with_suffix("").parts[:-1])
    base = package[: len(package) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def _imports(path: Path) -> Iterator[tuple[int, str, list[str]]]:
    """(line, module, names imported from it) for every import in ``path``."""
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom):
            yield node.lineno, _absolute(path, node), [a.name for a in node.names]
        elif isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name, []


def _files(*places: str) -> list[Path]:
    out: list[Path] = []
    for place in places:
        target = ROOT / place
        out.extend([target] if target.is_file() else sorted(target.rglob("*.py")))
    return out


def _where(path: Path, line: int) -> str:
    return f"{path.relative_to(ROOT)}:{line}"


def test_no_package_imports_another_packages_private_modules():
    offenders = []
    for path in _files("shared"):
        own = path.relative_to(SHARED).parts[0]
        for line, name, _ in _imports(path):
            parts = name.split(".")
            if (
                len(parts) >= 3
                and parts[0] == "shared"
                and parts[1] != own
                and any(p.startswith("_") for p in parts[2:])
            ):
                offenders.append(f"{_where(path, line)} imports {name}")
    assert not offenders, "\n".join(offenders)


def test_callers_outside_shared_use_only_its_public_names():
    offenders = []
    for path in _files("function_app.py", "devserver", "bench", "scripts", "testpeers"):
        for line, name, names in _imports(path):
            parts = name.split(".")
            if parts[0] != "shared":
                continue
            private = [p for p in parts[1:] if p.startswith("_")]
            private += [n for n in names if n.startswith("_")]
            if private:
                offenders.append(f"{_where(path, line)} imports {name} {names or ''}".strip())
    assert not offenders, "\n".join(offenders)


def test_bench_and_tests_do_not_import_each_other():
    rules = {"bench": ("tests",), "tests": ("bench",), "testpeers": ("tests", "bench")}
    offenders = []
    for place, forbidden in rules.items():
        for path in _files(place):
            for line, name, _ in _imports(path):
                if name.split(".")[0] in forbidden:
                    offenders.append(f"{_where(path, line)} imports {name}")
    assert not offenders, "\n".join(offenders)


_AZURITE = "--inMemoryPersistence"
_PEERS = {"aoai_sim", "sbbroker"}


def _peer_command_lines(path: Path) -> Iterator[int]:
    """Lines of ``path`` with a literal command line that starts the simulator or Azurite."""
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.List | ast.Tuple):
            words = [e.value for e in node.elts if isinstance(e, ast.Constant)]
            pairs = itertools.pairwise(words)
            if any(a == "-m" and b in _PEERS for a, b in pairs) or _AZURITE in words:
                yield node.lineno


def test_only_testpeers_starts_the_simulator_the_broker_and_azurite():
    offenders = [
        f"{_where(path, line)} starts a peer itself (use testpeers)"
        for path in _files("bench", "tests")
        if "broker" not in path.relative_to(ROOT).parts[1:2]  # the broker's own CLI tests
        for line in _peer_command_lines(path)
    ]
    assert not offenders, "\n".join(offenders)
    assert list(_peer_command_lines(ROOT / "testpeers" / "processes.py"))  # the check sees them
    assert list(_peer_command_lines(ROOT / "testpeers" / "azurite.py"))


def test_body_helpers_are_public():
    from shared.api import _parse

    assert {"parse_body", "read_body"} <= set(shared.api.__all__)
    assert shared.api.parse_body is _parse.parse_body and shared.api.read_body is _parse.read_body
