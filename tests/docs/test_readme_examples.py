"""The README's client examples run as written: each python block under a
``<!-- readme-example: NAME -->`` marker is extracted, its local endpoint
(``http://127.0.0.1:7071/api``, what ``make run`` serves) replaced by a dev server's on a free port,
and run as a script against that dev server and the Azure OpenAI simulator. The LlamaIndex example
runs in ``.venv-llamaindex`` (LlamaIndex pins ``openai<3``). Every example runs with non-loopback
connections sent to a dead proxy, so nothing it does needs the internet."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.frontdoor.conftest import FrontDoor, start_frontdoor

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
LOCAL_GATEWAY = "http://127.0.0.1:7071/api"
EXAMPLE = re.compile(r"<!-- readme-example: ([\w-]+) -->\n```python\n(.*?)\n```", re.S)
EXPECTED = {"openai", "azure-openai", "responses", "langchain", "llamaindex"}
PYTHONS = {"llamaindex": ROOT / ".venv-llamaindex" / "bin" / "python"}

pytestmark = pytest.mark.timeout(600)  # a busy machine imports LangChain and LlamaIndex slowly


def examples() -> dict[str, str]:
    return dict(EXAMPLE.findall(README.read_text(encoding="utf-8")))


def test_every_client_has_an_example_that_fits_a_screen() -> None:
    found = examples()
    assert set(found) == EXPECTED
    for name, code in found.items():
        assert LOCAL_GATEWAY in code, f"{name}: not against make run's local gateway"
        assert code.lstrip().startswith(("from ", "import ")), f"{name}: imports first"
        wide = [line for line in code.splitlines() if len(line) > 100]
        assert not wide, f"{name}: lines over 100 characters: {wide}"
        compile(code, f"README.md:{name}", "exec")


@pytest.fixture(scope="module")
def door(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FrontDoor]:
    with pytest.MonkeyPatch.context() as monkeypatch:
        front = start_frontdoor(tmp_path_factory.mktemp("readme"), monkeypatch)
        try:
            yield front
        finally:
            front.server.stop()
            front.sim.stop()


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_readme_example_runs(door: FrontDoor, name: str, tmp_path: Path) -> None:
    for region in door.sim.regions.values():
        region.reset()
    python = PYTHONS.get(name, Path(sys.executable))
    if not python.exists():
        pytest.fail(f"{python} is missing: run `make deps`")
    script = tmp_path / f"readme_example_{name.replace('-', '_')}.py"
    script.write_text(examples()[name].replace(LOCAL_GATEWAY, door.server.base_url))
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("NLTK_", "TIKTOKEN_", "OPENAI_", "AZURE_OPENAI_"))
    }
    dead = "http://127.0.0.1:9"  # discard port: any download attempt fails at once
    env.update(HTTP_PROXY=dead, HTTPS_PROXY=dead, ALL_PROXY=dead, NO_PROXY="127.0.0.1,localhost")
    done = subprocess.run(
        [str(python), str(script)],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
        cwd=tmp_path,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    assert done.stdout.strip(), "the example printed nothing"
