"""A Responses API request as a backlog job carries it (``kind: "responses"``), and what the
gateway charges it against TPM.

Unknown parameters (``tools``, ``text``, ``reasoning``, ``temperature``...) pass through
untouched, as on the HTTP route. ``stream`` and ``background`` are refused by the job contract
(a job has no one to stream to, and already runs in the background).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["ResponsesRequest", "responses_cost"]

_CHARS_PER_TOKEN = 4


def responses_cost(body: Mapping[str, Any], default_max_tokens: int) -> int:
    """Tokens a Responses create is charged against TPM: the input's text (and instructions)
    at four characters a token, plus the output cap (``max_output_tokens``, else
    ``default_max_tokens``). Stored context of ``previous_response_id`` is not counted (the
    gateway does not hold it); Azure's own 429 corrects the budget when it is large."""
    text = json.dumps(body.get("input"), ensure_ascii=False, default=str)
    instructions = body.get("instructions")
    chars = len(text) + (len(instructions) if isinstance(instructions, str) else 0)
    out = body.get("max_output_tokens")
    cap = out if isinstance(out, int) and not isinstance(out, bool) and out > 0 else None
    return math.ceil(chars / _CHARS_PER_TOKEN) + (cap if cap is not None else default_max_tokens)


class ResponsesRequest(BaseModel):
    """``POST /responses``'s body; ``model`` is a logical alias (or, on Azure's routes, a
    deployment name resolved to its alias before the job is built)."""

    model_config = ConfigDict(extra="allow")

    model: str = Field(min_length=1, description="A logical model alias served by the gateway.")
    input: str | list[Any] = Field(
        description="Text, or a list of input items (messages, function_call_output...)."
    )
    instructions: str | None = None
    previous_response_id: str | None = Field(
        default=None,
        min_length=1,
        max_length=256,
        description="Continue a response this caller created through the gateway; the job then "
        "runs in the region that stores it.",
    )
    max_output_tokens: int | None = Field(default=None, ge=1)
    store: bool | None = None
    stream: bool | None = None
    background: bool | None = None

    def cost(self, default_max_tokens: int) -> int:
        """What the call is charged against TPM (``responses_cost``)."""
        return responses_cost(self.upstream_body(), default_max_tokens)

    def upstream_body(self) -> dict[str, Any]:
        """The body sent upstream (each attempt names its deployment in ``model``)."""
        return self.model_dump(mode="json", exclude_none=True)
