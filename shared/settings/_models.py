"""The model table: each Azure OpenAI chat model's output and context limits, as data.

Figures from Microsoft's model pages ("Azure OpenAI in Foundry Models": context window, max
output tokens), the largest of the model's versions, so the gateway never refuses what one of
them would accept. A deployment names its model (``DeploymentConfig.model``, default: its
alias) and may override either figure (``max_output_tokens``, ``context_window``). A model not
in the table, with no override, gets no local check: Azure's own 400 decides (and the gateway
releases that request's charge).
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["MODEL_LIMITS", "ModelLimits", "model_limits"]


@dataclass(frozen=True, slots=True)
class ModelLimits:
    """``max_output_tokens``: the largest output cap a request may ask for;
    ``context_window``: prompt plus output, in tokens."""

    max_output_tokens: int
    context_window: int


# model -> (max output tokens, context window)
MODEL_LIMITS: dict[str, ModelLimits] = {
    name: ModelLimits(output, context)
    for name, (output, context) in {
        "gpt-35-turbo": (4_096, 16_385),
        "gpt-35-turbo-16k": (4_096, 16_384),
        "gpt-4": (8_192, 8_192),
        "gpt-4-32k": (32_768, 32_768),
        "gpt-4-turbo": (4_096, 128_000),
        "gpt-4o": (16_384, 128_000),
        "gpt-4o-mini": (16_384, 128_000),
        "gpt-4.1": (32_768, 1_047_576),
        "gpt-4.1-mini": (32_768, 1_047_576),
        "gpt-4.1-nano": (32_768, 1_047_576),
        "gpt-4.5-preview": (16_384, 128_000),
        "o1": (100_000, 200_000),
        "o1-mini": (65_536, 128_000),
        "o3": (100_000, 200_000),
        "o3-mini": (100_000, 200_000),
        "o4-mini": (100_000, 200_000),
        "gpt-5": (128_000, 400_000),
        "gpt-5-mini": (128_000, 400_000),
        "gpt-5-nano": (128_000, 400_000),
        "gpt-5-chat": (16_384, 128_000),
    }.items()
}


def model_limits(
    model: str, *, max_output_tokens: int | None = None, context_window: int | None = None
) -> ModelLimits | None:
    """``model``'s limits from the table (case-insensitive), each replaced by the override when
    given. None when neither knows the model; an override alone leaves the other unbounded."""
    known = MODEL_LIMITS.get(model.strip().lower())
    if known is None and max_output_tokens is None and context_window is None:
        return None
    unbounded = 2**62
    output = max_output_tokens or (known.max_output_tokens if known else None)
    context = context_window or (known.context_window if known else None)
    return ModelLimits(output or unbounded, context or unbounded)
