"""Usage accounting settings: the usage table, how often counts are written, and the price table.

Keys: ``GATEWAY_USAGE_TABLE`` (default ``gatewayusage``), ``GATEWAY_USAGE_FLUSH_S`` (default 5:
a crash loses at most this many seconds of counts), ``GATEWAY_USAGE`` (``off`` disables it),
``GATEWAY_PRICES`` (JSON, below). Storage is the gateway's (``GatewaySettings.storage_connection``
/ ``storage_account``); without it usage is counted per instance, in memory only.

``GATEWAY_PRICES``::

    {"currency": "USD", "batch_discount": 0.5,
     "prices": {"gpt-4o": {"input": 2.5, "cached_input": 1.25, "output": 10.0},
                "eastus2-gpt4o": {"input": 2.75, "output": 11.0}}}

Prices are per million tokens, keyed by deployment name or alias (the deployment's entry wins);
``cached_input`` defaults to ``input``. ``batch_discount`` multiplies the cost of calls made on
the Batch lane (0.5 = half price).
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from ._errors import settings_error_from

__all__ = ["Price", "PriceTable", "UsageSettings", "load_usage_settings"]

_PREFIX = "GATEWAY_"
_TABLE = re.compile(r"^[A-Za-z][A-Za-z0-9]{2,62}$")


class Price(BaseModel):
    """Price per million tokens."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    input: float = Field(ge=0)
    output: float = Field(ge=0)
    cached_input: float | None = Field(default=None, ge=0)

    def cost(self, input_tokens: int, cached_input_tokens: int, output_tokens: int) -> float:
        cached_price = self.input if self.cached_input is None else self.cached_input
        uncached = max(0, input_tokens - cached_input_tokens)
        return (
            uncached * self.input + cached_input_tokens * cached_price + output_tokens * self.output
        ) / 1_000_000


class PriceTable(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    currency: str = "USD"
    batch_discount: float = Field(default=0.5, gt=0, le=1)
    prices: dict[str, Price] = Field(default_factory=dict)

    def price(self, alias: str, deployment: str) -> Price | None:
        return self.prices.get(deployment) or self.prices.get(alias)


class UsageSettings(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    enabled: bool = True
    usage_table: str = "gatewayusage"
    usage_flush_s: float = Field(default=5.0, gt=0, le=300)
    prices: PriceTable = Field(default_factory=PriceTable)

    @field_validator("usage_table")
    @classmethod
    def _table_name(cls, value: str) -> str:
        if not _TABLE.match(value):
            raise ValueError("a table name is 3-63 letters and digits, starting with a letter")
        return value

    @field_validator("prices", mode="before")
    @classmethod
    def _prices_from_json(cls, value: object) -> object:
        if isinstance(value, str):
            try:
                return json.loads(value) if value.strip() else {}
            except json.JSONDecodeError as exc:
                raise ValueError(f"not valid JSON: {exc}") from None
        return value


def load_usage_settings(environ: Mapping[str, str] | None = None) -> UsageSettings:
    env = os.environ if environ is None else environ
    values: dict[str, object] = {}
    if env.get(f"{_PREFIX}USAGE", "").strip().lower() in {"off", "false", "0", "none"}:
        values["enabled"] = False
    for name in ("usage_table", "usage_flush_s", "prices"):
        key = f"{_PREFIX}{name.upper()}"
        if key in env:
            values[name] = env[key]
    try:
        return UsageSettings.model_validate(values)
    except ValidationError as exc:
        raise settings_error_from(exc, prefix=_PREFIX, source_names={}) from exc
