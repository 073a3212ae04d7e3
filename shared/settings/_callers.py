"""Per-caller limits: ``GATEWAY_CALLER_LIMITS`` (JSON); absent means no limits.

::

    {"default": {"tpm": 50000, "monthly_tokens": 20000000},
     "callers": {"principal:reporting-svc": {"tpm": 200000, "monthly_tokens": null, "priority": 1},
                 "key:3f2a9c0d11aa": {"tpm": 5000}}}

A caller is named as the gateway identifies it (``principal:<name>`` from Easy Auth, or
``key:<fingerprint>`` of its function key; see docs/operations.md). A listed caller's missing
fields fall back to ``default``; ``null`` means unlimited. ``tpm`` is charged per call with
Azure's own arrival-time estimate (prompt characters / 4 + the output cap) in fixed windows of
``GATEWAY_CALLER_WINDOW_S`` seconds (default 60); ``monthly_tokens`` counts the tokens the calls
really used, per UTC calendar month. ``priority`` is shown by the ops surface.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from ._errors import SettingsError, settings_error_from

__all__ = ["CallerLimit", "CallerLimits", "load_caller_limits"]


class CallerLimit(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    tpm: int | None = Field(default=None, gt=0)
    monthly_tokens: int | None = Field(default=None, gt=0)
    priority: int | None = None


class CallerLimits(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    default: CallerLimit = Field(default_factory=CallerLimit)
    callers: dict[str, CallerLimit] = Field(default_factory=dict)
    window_s: float = Field(default=60.0, gt=0)
    table: str = "gatewaycallers"
    cache_s: float = Field(default=2.0, ge=0)

    @field_validator("callers")
    @classmethod
    def _named(cls, callers: dict[str, CallerLimit]) -> dict[str, CallerLimit]:
        bad = [name for name in callers if not name.startswith(("principal:", "key:"))]
        if bad:
            raise ValueError(f"callers are 'principal:<name>' or 'key:<fingerprint>'; got {bad}")
        return callers

    def for_caller(self, caller: str) -> CallerLimit:
        """The caller's limits, its missing fields from ``default``."""
        own = self.callers.get(caller)
        if own is None:
            return self.default
        fields = own.model_fields_set
        return CallerLimit(
            tpm=own.tpm if "tpm" in fields else self.default.tpm,
            monthly_tokens=own.monthly_tokens
            if "monthly_tokens" in fields
            else self.default.monthly_tokens,
            priority=own.priority if "priority" in fields else self.default.priority,
        )


def load_caller_limits(environ: Mapping[str, str] | None = None) -> CallerLimits | None:
    """The limits, or None when ``GATEWAY_CALLER_LIMITS`` is absent or empty."""
    env = os.environ if environ is None else environ
    raw = env.get("GATEWAY_CALLER_LIMITS", "").strip()
    if not raw:
        return None
    try:
        values = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise SettingsError(f"GATEWAY_CALLER_LIMITS: not valid JSON: {exc}") from None
    if not isinstance(values, dict):
        raise SettingsError("GATEWAY_CALLER_LIMITS: must be a JSON object")
    for name, key in (
        ("window_s", "GATEWAY_CALLER_WINDOW_S"),
        ("table", "GATEWAY_CALLER_TABLE"),
        ("cache_s", "GATEWAY_CALLER_CACHE_S"),
    ):
        if key in env:
            values[name] = env[key]
    try:
        return CallerLimits.model_validate(values)
    except ValidationError as exc:
        raise settings_error_from(exc, prefix="GATEWAY_CALLER_LIMITS.", source_names={}) from exc
