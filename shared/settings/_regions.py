"""The region table: which Azure OpenAI (or OpenAI) endpoints serve which logical models.

A region has a name, an endpoint, a priority tier (lower is tried first: PTU before
pay-as-you-go, nearest first), its auth, its API style, and for each logical model alias
the deployment that serves it there with that deployment's quota. Model differences are
data in this table, never if-chains in code.
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

from ._models import ModelLimits, model_limits

__all__ = ["ApiStyle", "AuthMode", "BatchDeploymentConfig", "DeploymentConfig", "RegionConfig"]

AuthMode = Literal["managed_identity", "api_key", "openai"]
ApiStyle = Literal["v1", "dated"]

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$")


class DeploymentConfig(BaseModel):
    """One deployment serving one alias in one region."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    deployment: str = Field(
        description="The Azure deployment name: what goes in the URL or the request's model field."
    )
    tpm: int = Field(gt=0, description="Tokens-per-minute quota (capacity 1 = 1,000 TPM).")
    rpm: int | None = Field(
        default=None, gt=0, description="Requests per minute; Azure grants 6 per 1,000 TPM."
    )
    max_inputs: int = Field(
        default=2048, gt=0, description="Largest embeddings batch one call may carry."
    )
    model: str | None = Field(
        default=None,
        description="The Azure model deployed (e.g. gpt-4o), looked up in the model table for "
        "its output and context limits; default: the alias this deployment serves.",
    )
    max_output_tokens: int | None = Field(
        default=None, gt=0, description="Overrides the model table's max output tokens."
    )
    context_window: int | None = Field(
        default=None, gt=0, description="Overrides the model table's context window."
    )

    @property
    def effective_rpm(self) -> int:
        return self.rpm if self.rpm is not None else max(1, self.tpm * 6 // 1000)

    def limits(self, alias: str) -> ModelLimits | None:
        """The output and context limits of this deployment's model (``_models``); None when
        unknown (no local check)."""
        return model_limits(
            self.model or alias,
            max_output_tokens=self.max_output_tokens,
            context_window=self.context_window,
        )


class BatchDeploymentConfig(BaseModel):
    """A Global Batch deployment serving one alias in one region (the backlog's batch lane)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    deployment: str = Field(description="The Global Batch deployment name (the lines' model).")
    enqueued_tokens: int = Field(
        gt=0, description="Enqueued-token quota: tokens of unfinished batches at most."
    )


class RegionConfig(BaseModel):
    """One endpoint (an Azure OpenAI resource, or OpenAI itself) and what it serves."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str
    endpoint: str = Field(
        description="https://<resource>.openai.azure.com, or https://api.openai.com/v1 for plain OpenAI."
    )
    priority: int = Field(default=1, ge=0, description="Tier: lower is tried first.")
    auth: AuthMode = "managed_identity"
    client_id: str | None = Field(
        default=None,
        description="User-assigned managed identity client id; None = system-assigned.",
    )
    api_key: SecretStr | None = None
    api_style: ApiStyle = "v1"
    api_version: str = "2024-10-21"
    probe: Literal["models", "deployment"] = Field(
        default="models",
        description="Region probe: GET /models (free), or a minimal call on the region's first "
        "deployment (for proxies such as API Management that do not serve /models).",
    )
    models: dict[str, DeploymentConfig] = Field(
        min_length=1, description="Logical alias -> deployment."
    )
    batch: dict[str, BatchDeploymentConfig] = Field(
        default_factory=dict, description="Logical alias -> Global Batch deployment (batch lane)."
    )

    @field_validator("name")
    @classmethod
    def _name_ok(cls, value: str) -> str:
        if not _NAME.match(value):
            raise ValueError("must be 1-63 letters, digits, '.', '_' or '-'")
        return value

    @field_validator("endpoint")
    @classmethod
    def _endpoint_ok(cls, value: str) -> str:
        if not value.startswith(("https://", "http://")):
            raise ValueError("must be an http(s) URL")
        return value.rstrip("/")

    @model_validator(mode="after")
    def _auth_consistent(self) -> RegionConfig:
        if self.auth in ("api_key", "openai") and self.api_key is None:
            raise ValueError(f"auth '{self.auth}' needs api_key")
        if self.auth != "managed_identity" and self.client_id is not None:
            raise ValueError("client_id applies only to auth 'managed_identity'")
        if self.auth == "openai" and self.api_style != "v1":
            raise ValueError("auth 'openai' uses api_style 'v1'")
        return self

    @property
    def identity_label(self) -> str:
        """Who we authenticate as, for diagnostics: never the secret itself."""
        if self.auth == "managed_identity":
            return (
                f"user-assigned managed identity {self.client_id}"
                if self.client_id
                else "system-assigned managed identity"
            )
        return "OpenAI api key" if self.auth == "openai" else "api key"
