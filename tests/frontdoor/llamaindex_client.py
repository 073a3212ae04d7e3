"""A LlamaIndex caller, run by test_llamaindex.py with .venv-llamaindex's Python (LlamaIndex's
OpenAI integration pins openai<3; the app runs on openai 3.x). Reads one JSON object from argv[1]
(where to point, which key header) and prints one JSON object with what it got back.

Offline: llama-index-core ships the NLTK data (stopwords, punkt_tab) and tiktoken's cl100k_base and
o200k_base files in ``llama_index/core/_static``, and uses them when NLTK_DATA / TIKTOKEN_CACHE_DIR
are unset, so nothing is downloaded at import or when counting tokens."""

from __future__ import annotations

import asyncio
import json
import sys


def main() -> None:
    cfg = json.loads(sys.argv[1])
    from llama_index.core.llms import ChatMessage
    from llama_index.embeddings.azure_openai import AzureOpenAIEmbedding
    from llama_index.llms.azure_openai import AzureOpenAI

    common = {
        "azure_endpoint": cfg["azure_endpoint"],
        "api_key": cfg["api_key"],
        "api_version": cfg["api_version"],
        "default_headers": cfg["headers"],
        "max_retries": 0,
    }
    llm = AzureOpenAI(engine=cfg["chat"], model="gpt-4o", timeout=20, **common)
    out: dict = {}
    out["complete"] = llm.complete("Tell me about gateways").text
    out["chat"] = llm.chat([ChatMessage(role="user", content="hi")]).message.content
    out["stream_complete"] = [r.delta for r in llm.stream_complete("Tell me about gateways")]
    out["stream_chat"] = [
        r.delta for r in llm.stream_chat([ChatMessage(role="user", content="hi")])
    ]

    async def achat() -> str:
        return (await llm.achat([ChatMessage(role="user", content="hi")])).message.content

    out["achat"] = asyncio.run(achat())
    emb = AzureOpenAIEmbedding(
        model="text-embedding-3-small", deployment_name=cfg["embed"], **common
    )
    out["embed_batch"] = [len(v) for v in emb.get_text_embedding_batch(["alpha", "beta", "gamma"])]
    out["embed_query"] = len(emb.get_query_embedding("alpha"))
    from llama_index.core.utils import get_tokenizer

    out["tokens"] = len(get_tokenizer()("offline tokenizer check"))
    print(json.dumps(out))


if __name__ == "__main__":
    main()
