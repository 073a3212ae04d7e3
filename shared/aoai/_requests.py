"""The request bodies the gateway accepts, in OpenAI's shape. ``model`` is a logical alias.

Unknown OpenAI parameters (temperature, tools, response_format, ...) pass through untouched.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from ._estimate import prompt_estimate

__all__ = ["ChatMessage", "ChatRequest", "EmbeddingsRequest"]


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="allow")

    role: Literal["system", "developer", "user", "assistant", "tool", "function"]
    content: str | list[dict[str, Any]] | None = None


class ChatRequest(BaseModel):
    model_config = ConfigDict(extra="allow")

    model: str = Field(
        min_length=1,
        description="A logical model alias served by the gateway (see GET /api/v1/models).",
    )
    messages: list[ChatMessage] = Field(min_length=1)
    max_tokens: int | None = Field(default=None, ge=1)
    max_completion_tokens: int | None = Field(default=None, ge=1)
    n: int | None = Field(default=None, ge=1, le=128)
    stream: bool = False
    stream_options: dict[str, Any] | None = None

    @property
    def output_cap(self) -> int | None:
        """The output tokens Azure reserves for this request, if the caller set a cap."""
        return self.max_completion_tokens or self.max_tokens

    def prompt_tokens(self) -> int:
        """Azure's rate-limit estimate of the prompt: text, tool calls, tool definitions and
        images (``_estimate.prompt_estimate``)."""
        extra = self.model_extra or {}
        return prompt_estimate(
            (m.model_dump(exclude_none=True) for m in self.messages),
            extra.get("tools"),
            extra.get("functions"),
        )

    def upstream_body(self) -> dict[str, Any]:
        """The caller's body without ``model`` (each attempt names its deployment there)."""
        body = self.model_dump(exclude_none=True, exclude_defaults=False)
        del body["model"]
        if not self.stream:
            body.pop("stream", None)
            body.pop("stream_options", None)
        else:  # usage accounting needs the final usage chunk; the API hides it if not asked for
            body["stream_options"] = {**(self.stream_options or {}), "include_usage": True}
        return body

    @property
    def wants_usage_chunk(self) -> bool:
        """Whether the caller itself asked for the stream's final usage chunk."""
        return bool((self.stream_options or {}).get("include_usage"))


class EmbeddingsRequest(BaseModel):
    model_config = ConfigDict(extra="allow")

    model: str = Field(min_length=1)
    input: (
        Annotated[str, Field(min_length=1)]
        | Annotated[list[str], Field(min_length=1)]
        | Annotated[list[int], Field(min_length=1)]
        | Annotated[list[list[int]], Field(min_length=1)]
    ) = Field(
        description="A non-empty string, or a non-empty array of strings or token arrays "
        "(at most max_embedding_inputs, 2,048 by default)."
    )
    dimensions: int | None = Field(default=None, ge=1)
    encoding_format: Literal["float", "base64"] | None = None
    user: str | None = None

    @field_validator("input")
    @classmethod
    def _not_empty(cls, value: Any) -> Any:
        if isinstance(value, list) and not value:
            raise ValueError("input must not be an empty list")
        if isinstance(value, str) and not value:
            raise ValueError("input must not be an empty string")
        return value

    def inputs(self) -> list[Any]:
        """The inputs as a batch: a single string or token list becomes a batch of one."""
        if isinstance(self.input, str) or (self.input and isinstance(self.input[0], int)):
            return [self.input]
        return list(self.input)

    def upstream_body(self) -> dict[str, Any]:
        """The caller's body without ``model`` (each attempt names its deployment there)."""
        body = self.model_dump(exclude_none=True)
        del body["model"]
        return body
