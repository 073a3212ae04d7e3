"""The dependency locks: requirements.txt (what the deployment installs: the remote build runs
``pip install -r requirements.txt``) and requirements-dev.txt (what ``make deps`` installs), both
made by ``make lock`` from requirements.in / requirements-dev.in.

Checked here, offline: every deployed package is pinned exactly with hashes; the lock honours
every range in requirements.in; requirements.in names every third-party package the deployed code
imports; the dev lock carries the app's pins unchanged; and the virtualenv running these tests has
exactly the locked versions, so CI tests what deploys."""

from __future__ import annotations

import ast
import importlib.metadata as md
import re
import sys
from pathlib import Path

import pytest
from packaging.markers import Marker
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[2]
_PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;\\]+)\s*(?:;\s*([^\\]+?))?\s*\\?$")


def _pins(path: Path) -> dict[tuple[str, str], str]:
    """(package, marker or "") -> version, for every pinned line; each must carry hashes."""
    pins: dict[tuple[str, str], str] = {}
    lines = path.read_text().splitlines()
    for i, line in enumerate(lines):
        if not line or line[0] in " #-":
            continue
        m = _PIN.match(line)
        assert m, f"{path.name}: not an exact pin: {line!r}"
        assert i + 1 < len(lines) and "--hash=sha256:" in lines[i + 1], (
            f"{path.name}: {line!r} has no hash"
        )
        pins[(canonicalize_name(m.group(1)), (m.group(3) or "").strip())] = m.group(2)
    return pins


def _applies(marker: str) -> bool:
    return not marker or Marker(marker).evaluate()


def _declared(path: Path) -> list[Requirement]:
    out = []
    for raw in path.read_text().splitlines():
        line = raw.split("#", 1)[0].strip()
        if line and not line.startswith("-"):
            out.append(Requirement(line))
    return out


APP = _pins(ROOT / "requirements.txt")
DEV = _pins(ROOT / "requirements-dev.txt")


def test_every_deployed_package_is_pinned_with_hashes_and_honours_its_range() -> None:
    assert len(APP) > 20
    for req in _declared(ROOT / "requirements.in"):
        found = {m: v for (name, m), v in APP.items() if name == canonicalize_name(req.name)}
        assert found, f"{req.name} is in requirements.in but not in the lock: run `make lock`"
        for marker, version in found.items():
            assert req.specifier.contains(version, prereleases=True), (
                f"lock pins {req.name}=={version} ({marker or 'all'}) outside {req.specifier}"
            )


def test_azure_functions_is_locked_per_python_as_the_worker_needs() -> None:
    """1.x on Python 3.11-3.12 (2.x does not install there), 2.x on 3.13+ (1.x does not install
    there): one lock serves every supported deploy Python, by marker."""
    versions = {m: v for (name, m), v in APP.items() if name == "azure-functions"}
    env = {"python_full_version": "", "python_version": ""}
    for py, major in (("3.11.9", "1"), ("3.12.8", "1"), ("3.13.1", "2")):
        env = {"python_full_version": py, "python_version": py.rsplit(".", 1)[0]}
        chosen = [v for m, v in versions.items() if not m or Marker(m).evaluate(env)]
        assert len(chosen) == 1 and chosen[0].split(".")[0] == major, (py, versions)


def test_the_dev_lock_carries_the_apps_pins_unchanged() -> None:
    changed = {key: (v, DEV.get(key)) for key, v in APP.items() if DEV.get(key) != v}
    assert changed == {}, "requirements-dev.txt moved the app's pins: run `make lock`"


def test_this_virtualenv_runs_the_locked_versions() -> None:
    """What CI tests is what deploys: every package of requirements.txt that applies to this
    Python is installed at its pinned version."""
    wrong = {}
    for (name, marker), version in APP.items():
        if not _applies(marker):
            continue
        try:
            installed = md.version(name)
        except md.PackageNotFoundError:
            installed = None
        if installed is None or canonicalize_name(installed) != canonicalize_name(version):
            wrong[name] = (version, installed)
    assert wrong == {}, f"(locked, installed) differ: run `make deps` ({sys.executable})"


def test_the_test_broker_sdk_pin_is_the_deployed_one() -> None:
    from sbbroker._sdk import SDK_VERSION

    assert APP[("azure-servicebus", "")] == SDK_VERSION


def _third_party_imports() -> set[str]:
    stdlib = set(sys.stdlib_module_names)
    names: set[str] = set()
    for path in [ROOT / "function_app.py", *sorted((ROOT / "shared").rglob("*.py"))]:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                # module.name: `from opentelemetry import trace` is opentelemetry.trace (a namespace)
                names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return {n for n in names if n.split(".")[0] not in stdlib | {"shared", "__future__"}}


def _providers() -> dict[str, str]:
    """Dotted module path -> the distribution that ships it (namespace packages such as
    ``azure`` and ``opentelemetry`` resolved to the module)."""
    out: dict[str, str] = {}
    for dist in md.distributions():
        for file in dist.files or ():
            parts = file.parts
            if not parts or not parts[-1].endswith(".py") or ".." in parts:
                continue
            module = parts[:-1] if parts[-1] == "__init__.py" else (*parts[:-1], parts[-1][:-3])
            out.setdefault(".".join(module), canonicalize_name(dist.metadata["Name"]))
    return out


@pytest.mark.timeout(60)
def test_requirements_in_declares_every_package_the_deployed_code_imports() -> None:
    providers = _providers()
    declared = {canonicalize_name(r.name) for r in _declared(ROOT / "requirements.in")}
    missing = {}
    for module in sorted(_third_party_imports()):
        parts = module.split(".")
        dist = next(
            (
                providers[".".join(parts[:n])]
                for n in range(len(parts), 0, -1)
                if ".".join(parts[:n]) in providers
            ),
            None,
        )
        assert dist, f"no installed distribution provides {module}"
        if dist not in declared:
            missing[module] = dist
    assert missing == {}, "imported directly but not declared in requirements.in"
