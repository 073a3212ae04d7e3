"""LlamaIndex's Azure OpenAI LLM and embedding packages (complete, chat, stream, async chat,
embed) against the gateway and the simulator, in .venv-llamaindex (see llamaindex_client.py),
with every outbound connection except loopback sent to a dead proxy: it works offline."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from tests.frontdoor.conftest import API_VERSION, CHAT, EMBED, Target

_ROOT = Path(__file__).resolve().parents[2]
_PYTHON = _ROOT / ".venv-llamaindex" / "bin" / "python"


def _run(target: Target) -> dict:
    if not _PYTHON.exists():
        pytest.fail(f"{_PYTHON} is missing: run `make deps` (requirements-llamaindex.txt)")
    cfg = {
        "azure_endpoint": target.azure_endpoint,
        "api_key": target.api_key,
        "api_version": API_VERSION,
        "headers": target.headers,
        "chat": CHAT,
        "embed": EMBED,
    }
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("NLTK_", "TIKTOKEN_", "OPENAI_", "AZURE_OPENAI_"))
    }
    dead = "http://127.0.0.1:9"  # discard port: any download attempt fails at once
    env.update(HTTP_PROXY=dead, HTTPS_PROXY=dead, ALL_PROXY=dead, NO_PROXY="127.0.0.1,localhost")
    done = subprocess.run(
        [str(_PYTHON), str(Path(__file__).with_name("llamaindex_client.py")), json.dumps(cfg)],
        capture_output=True,
        text=True,
        timeout=180,
        env=env,
        cwd=_ROOT,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_llamaindex_azure_llm_and_embeddings(target: Target) -> None:
    out = _run(target)
    assert out["complete"] and out["chat"] and out["achat"]
    assert len(out["stream_complete"]) > 3 and "".join(out["stream_complete"])
    assert len(out["stream_chat"]) > 3 and "".join(out["stream_chat"])
    assert out["embed_batch"] == [1536, 1536, 1536] and out["embed_query"] == 1536
    assert out["tokens"] > 0  # tiktoken from the file llama-index-core ships
