"""checkov (static policy analysis for Bicep) over infra/ passes, offline. It runs from its own
virtualenv (.venv-infra, made by `make deps` from requirements-infra.txt) as a subprocess, so its
dependencies never touch the app's. Skipped checks are listed, each with a reason, in
infra/.checkov.yaml."""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
CHECKOV = Path(os.environ.get("CHECKOV", REPO / ".venv-infra" / "bin" / "checkov"))
CONFIG = REPO / "infra" / ".checkov.yaml"

pytestmark = pytest.mark.timeout(600)


def _checkov(directory: Path, tmp_path: Path) -> dict:
    if not CHECKOV.exists():
        pytest.fail(
            f"{CHECKOV} is missing: run `make deps` (it builds .venv-infra from requirements-infra.txt)"
        )
    env = {**os.environ, "BC_SKIP_MAPPING": "TRUE", "HOME": str(tmp_path), "LOG_LEVEL": "WARNING"}
    proc = subprocess.run(
        [str(CHECKOV), "--config-file", str(CONFIG), "-d", str(directory), "-o", "json"],
        capture_output=True,
        text=True,
        timeout=540,
        env=env,
        cwd=tmp_path,
    )
    try:
        report = json.loads(proc.stdout)
    except json.JSONDecodeError:
        pytest.fail(
            f"checkov exit {proc.returncode}, no JSON report:\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}"
        )
    return report


def _failed(report: dict) -> list[str]:
    return [
        f"{c['check_id']} {c['resource']} ({c['file_path']})"
        for c in report["results"].get("failed_checks", [])
    ]


def test_every_skipped_check_has_a_reason() -> None:
    lines = [line for line in CONFIG.read_text().splitlines() if re.match(r"\s*-\s*CKV", line)]
    assert lines, "no skip list"
    for line in lines:
        reason = line.partition("#")[2].strip()
        assert len(reason) > 20, f"skipped without a reason: {line.strip()}"


def test_checkov_passes_over_infra_and_fails_an_insecure_change(tmp_path: Path) -> None:
    report = _checkov(REPO / "infra", tmp_path)
    summary = report["summary"]
    bicep_files = len(list((REPO / "infra").rglob("*.bicep")))
    assert summary["parsing_errors"] == 0, summary
    assert summary["resource_count"] >= bicep_files and summary["passed"] > 20, summary
    assert _failed(report) == []
    # The same run over a copy with shared keys re-enabled on storage must fail: checkov really
    # reads our files (a file it cannot parse would pass silently).
    copy = tmp_path / "infra"
    import shutil

    shutil.copytree(REPO / "infra", copy)
    storage = copy / "modules" / "storage.bicep"
    storage.write_text(
        storage.read_text().replace("minimumTlsVersion: 'TLS1_2'", "minimumTlsVersion: 'TLS1_0'")
    )
    (tmp_path / "run2").mkdir()
    broken = _failed(_checkov(copy, tmp_path / "run2"))
    assert any("CKV_AZURE_44" in f and "storage" in f for f in broken), broken
