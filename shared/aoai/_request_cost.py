"""What a request costs before it is sent: the token estimate charged against a deployment's
windows (``shared.pacing``), and the output cap the alias's models accept.

Azure charges a request when it arrives: an estimate of the prompt (characters / 4) plus the
output cap (``max_tokens``, or a default when the caller sends none).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from shared.settings import DeploymentConfig

from ._exceptions import OutputLimitExceeded
from ._requests import EmbeddingsRequest

if TYPE_CHECKING:
    from collections.abc import Iterable

    from ._requests import ChatRequest

__all__ = [
    "OutputLimit",
    "check_output_cap",
    "embeddings_tokens",
    "output_limit",
    "request_tokens",
]

OutputLimit = tuple[
    int, int
]  # (max output tokens, context window), the largest of an alias's models


def output_limit(alias: str, deployments: Iterable[DeploymentConfig]) -> OutputLimit | None:
    """The largest output cap and context window any of ``alias``'s deployments accepts (the
    model table, ``shared.settings.model_limits``); None when one of them is of an unknown model
    (then Azure decides: no local check)."""
    outputs, contexts = [], []
    for config in deployments:
        limits = config.limits(alias)
        if limits is None:
            return None
        outputs.append(limits.max_output_tokens)
        contexts.append(limits.context_window)
    if not outputs:
        return None
    return max(outputs), max(contexts)


def check_output_cap(alias: str, request: ChatRequest, limit: OutputLimit | None) -> None:
    """Raise ``OutputLimitExceeded`` (400) when the request's output cap is above what every
    deployment's model can produce: Azure would refuse it, after charging the whole cap."""
    cap = request.output_cap
    if limit is None or cap is None:
        return
    param = "max_completion_tokens" if request.max_completion_tokens else "max_tokens"
    max_output, context = limit
    if cap > max_output:
        raise OutputLimitExceeded(
            alias, requested=cap, limit=max_output, limit_name="max output tokens", param=param
        )
    if cap > context:
        raise OutputLimitExceeded(
            alias, requested=cap, limit=context, limit_name="context window", param=param
        )


def embeddings_tokens(batch: list[Any]) -> int:
    """An embeddings batch's estimate: ceil(chars / 4) per text, the length of each token list."""
    return sum(-(-len(item) // 4) if isinstance(item, str) else len(item) for item in batch)


def request_tokens(request: ChatRequest | EmbeddingsRequest, default_max_tokens: int) -> int:
    """What the access layer charges a request against TPM: for chat, the prompt estimate
    (text, tool calls, tool definitions and images: ``ChatRequest.prompt_tokens``) plus
    the output cap (``max_completion_tokens`` or ``max_tokens``, else ``default_max_tokens``)
    for each of the ``n`` choices; for embeddings, ``embeddings_tokens`` of its inputs."""
    if isinstance(request, EmbeddingsRequest):
        return embeddings_tokens(request.inputs())
    cap = request.output_cap
    return request.prompt_tokens() + (cap if cap is not None else default_max_tokens) * (
        request.n or 1
    )
