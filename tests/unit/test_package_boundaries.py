"""Import boundaries, checked on the source:

* packages under ``shared/`` use each other only through their public ``__init__`` exports;
* ``function_app.py``, ``devserver/``, ``bench/``, ``scripts/`` and ``testpeers/`` use only
  public names of ``shared`` (no ``shared.<pkg>._module``, no ``_name`` imported from it);
* ``bench/`` and ``tests/`` import nothing of each other; ``testpeers/`` (the peers both start)
  imports neither;
* only ``testpeers/`` starts the simulator, the broker or Azurite (a command line running
  ``-m aoai_sim``, ``-m sbbroker`` or Azurite's ``--inMemoryPersistence``): ``bench/`` and
  ``tests/`` go through it (``tests/broker/`` tests the broker's own command line);
* ``shared/`` has no import cycle, neither between its packages (a top-level module such as
  ``storage.py`` counts as a package of its own) nor between the modules of one package (its
  ``__init__`` included). Every import statement counts, wherever it stands: at the top, inside
  a function (a lazy import), and under ``if TYPE_CHECKING:``. ``from pkg import name`` is an
  arrow to ``pkg/__init__`` and, when ``name`` is a module of ``pkg``, to that module too;
* the packages of ``shared/`` stand in the floors of ``FLOORS`` (the picture at the top of
  ``docs/architecture.md``): a package imports only packages on a lower floor, so no arrow runs
  back up (a new package must be given its floor here);
* a function-local import of a project module says why it is lazy (``# lazy: cold start``),
  outside ``runtime.py``, the composition root, which builds everything on first use.
"""

from __future__ import annotations

import ast
import itertools
from collections.abc import Iterable, Iterator, Mapping
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


# -- import cycles ---------------------------------------------------------------------------


def _module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _import_graph(root: Path) -> dict[str, set[str]]:
    """module -> the modules of ``root/shared`` it imports (every import statement counts)."""
    paths = {_module_name(p, root): p for p in sorted((root / "shared").rglob("*.py"))}
    graph: dict[str, set[str]] = {}
    for name, path in paths.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        targets: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                wanted = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                    base_name = ".".join(base + ([node.module] if node.module else []))
                else:
                    base_name = node.module or ""
                wanted = [base_name] + [f"{base_name}.{alias.name}" for alias in node.names]
            else:
                continue
            for target in wanted:
                while target and target not in paths:
                    target = target.rpartition(".")[0]
                if target and target != name:
                    targets.add(target)
        graph[name] = targets
    return graph


def _cycles(graph: Mapping[str, Iterable[str]]) -> list[list[str]]:
    """The strongly connected components of more than one node (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in graph.get(node, ()):
            if nxt not in graph:
                continue
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def _package(module: str) -> str:
    """``shared.aoai._router`` -> ``aoai``; ``shared.storage`` -> ``storage``."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else parts[0]


def _package_cycles(root: Path) -> list[list[str]]:
    packages: dict[str, set[str]] = {}
    for module, targets in _import_graph(root).items():
        mine = packages.setdefault(_package(module), set())
        mine.update(_package(t) for t in targets if _package(t) != _package(module))
    return _cycles(packages)


def _module_cycles(root: Path) -> list[list[str]]:
    graph = _import_graph(root)
    found = []
    for package in sorted({_package(m) for m in graph}):
        inside = {
            m: {t for t in targets if _package(t) == package}
            for m, targets in graph.items()
            if _package(m) == package
        }
        found.extend(_cycles(inside))
    return found


def _why(cycle: list[str], graph: Mapping[str, Iterable[str]]) -> str:
    members = set(cycle)
    arrows = [f"{a} -> {b}" for a in cycle for b in sorted(graph[a]) if b in members]
    return " | ".join(arrows)


def test_no_import_cycle_between_the_packages_of_shared():
    cycles = _package_cycles(ROOT)
    assert not cycles, "packages of shared/ import each other in a loop: " + "; ".join(
        " <-> ".join(c) for c in cycles
    )


def test_no_import_cycle_between_the_modules_of_one_package():
    graph = _import_graph(ROOT)
    cycles = _module_cycles(ROOT)
    assert not cycles, "\n".join(_why(c, graph) for c in cycles)


def test_the_cycle_checks_see_lazy_and_type_checking_imports(tmp_path):
    """The checks on a made-up tree: a loop closed only by a function-local import, and one
    closed only under ``if TYPE_CHECKING:``, are both found; a one-way tree passes."""
    files = {
        "shared/__init__.py": "",
        "shared/low.py": "def f():\n    from shared.high import g  # lazy\n",
        "shared/high.py": "from shared.low import f\n",
        "shared/pkg/__init__.py": "from ._a import A\n",
        "shared/pkg/_a.py": "from ._b import B\n",
        "shared/pkg/_b.py": (
            "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from ._a import A\n"
        ),
    }
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    assert _package_cycles(tmp_path) == [["high", "low"]]
    assert _module_cycles(tmp_path) == [["shared.pkg._a", "shared.pkg._b"]]
    (tmp_path / "shared/low.py").write_text("def f():\n    pass\n")
    (tmp_path / "shared/pkg/_b.py").write_text("B = 1\n")
    assert _package_cycles(tmp_path) == [] and _module_cycles(tmp_path) == []


def _project_module(node: ast.Import | ast.ImportFrom) -> bool:
    if isinstance(node, ast.ImportFrom):
        return bool(node.level) or (node.module or "").split(".")[0] == "shared"
    return any(alias.name.split(".")[0] == "shared" for alias in node.names)


def test_lazy_imports_of_project_modules_say_why():
    offenders = []
    for path in _files("shared"):
        if path.name == "runtime.py" and path.parent == SHARED:
            continue  # the composition root: everything is built (and imported) on first use
        text = path.read_text(encoding="utf-8")
        lines = text.splitlines()
        for function in ast.walk(ast.parse(text)):
            if not isinstance(function, ast.FunctionDef | ast.AsyncFunctionDef):
                continue
            for node in ast.walk(function):
                if isinstance(node, ast.Import | ast.ImportFrom) and _project_module(node):
                    said = " ".join(lines[node.lineno - 1 : node.end_lineno])
                    if "# lazy:" not in said:
                        offenders.append(
                            f"{_where(path, node.lineno)}: {lines[node.lineno - 1].strip()}"
                        )
    assert not offenders, "a lazy import without '# lazy: <why>':\n" + "\n".join(offenders)


# -- floors ------------------------------------------------------------------------------------

# From the top down, as docs/architecture.md draws them. A package imports only packages on a
# lower floor; two packages on one floor do not import each other.
FLOORS: tuple[tuple[str, ...], ...] = (
    ("api", "runtime"),  # the surfaces: every HTTP route; the composition root
    ("batchlane",),  # a plug-in of the backlog
    ("jobs", "ops", "callerlimits"),  # the capabilities
    ("responses", "usage", "telemetry"),  # on the access layer: its calls, or its observer seam
    ("aoai",),  # the access layer
    ("pacing",),
    ("storage", "servicebus"),
    ("_tables",),
    ("credentials", "settings"),
)


def _arrows_up(root: Path) -> list[str]:
    floor = {package: level for level, floor in enumerate(FLOORS) for package in floor}
    wrong = []
    for module, targets in sorted(_import_graph(root).items()):
        here = _package(module)
        if here == "shared":
            continue  # shared/__init__.py
        if here not in floor:
            wrong.append(f"{module}: package {here!r} has no floor in FLOORS")
            continue
        for target in sorted(targets):
            there = _package(target)
            if there != here and there != "shared" and floor.get(there, -1) <= floor[here]:
                wrong.append(f"{module} -> {target}")
    return wrong


def test_packages_import_only_packages_on_a_lower_floor():
    wrong = _arrows_up(ROOT)
    assert not wrong, "imports that do not run downwards:\n" + "\n".join(wrong)
