"""Loading settings through pydantic-settings from an explicit mapping of app settings.

``AppSettings`` is a ``BaseSettings`` whose environment source is the mapping given to
``load_from(cls, environ)`` (``os.environ`` in production, a dict in tests). Constructing a
settings class directly (``GatewaySettings(regions=...)``) reads nothing from the environment,
so code and tests that build settings by hand get exactly what they pass.

Names are matched case-insensitively, as the Functions host's app settings are; a field answers
to ``<PREFIX><FIELD>`` or, where it has one, to the names in its ``validation_alias``
(``AliasChoices``) such as the host's own ``AzureWebJobsStorage``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from contextvars import ContextVar
from typing import Any, TypeVar

from pydantic.fields import FieldInfo
from pydantic_settings import (
    BaseSettings,
    EnvSettingsSource,
    PydanticBaseSettingsSource,
)

__all__ = ["AppSettings", "env_names", "json_object", "load_from"]

_ENVIRON: ContextVar[Mapping[str, str] | None] = ContextVar("app_settings", default=None)

S = TypeVar("S", bound="AppSettings")


class _MappingEnvSource(EnvSettingsSource):
    """pydantic-settings' environment source, reading a given mapping instead of ``os.environ``."""

    def __init__(self, settings_cls: type[BaseSettings], environ: Mapping[str, str]) -> None:
        self._environ = environ
        super().__init__(settings_cls)

    def _load_env_vars(self) -> Mapping[str, str | None]:
        return {
            key.lower(): value
            for key, value in self._environ.items()
            if not (self.env_ignore_empty and value == "")
        }


class AppSettings(BaseSettings):
    """Frozen settings read from app settings only through ``load_from``."""

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        environ = _ENVIRON.get()
        if environ is None:
            return (init_settings,)
        return (init_settings, _MappingEnvSource(settings_cls, environ))


def load_from(cls: type[S], environ: Mapping[str, str], **init: Any) -> S:
    """``cls`` from ``environ`` (``init`` values win over it); raises pydantic's ValidationError."""
    token = _ENVIRON.set(environ)
    try:
        return cls(**init)
    finally:
        _ENVIRON.reset(token)


def env_names(cls: type[AppSettings], prefix: str) -> dict[str, str]:
    """Field name -> the app setting named in errors: the first alias, else ``<PREFIX><FIELD>``.
    Aliases map to themselves too (a validation error may be located at the alias)."""
    names: dict[str, str] = {}
    for name, field in cls.model_fields.items():
        names[name] = _first_alias(field) or f"{prefix}{name.upper()}"
        for alias in _aliases(field):
            names[alias] = alias
            names[alias.lower()] = alias
    return names


def _aliases(field: FieldInfo) -> list[str]:
    alias = field.validation_alias
    if alias is None:
        return []
    if isinstance(alias, str):
        return [alias]
    choices = getattr(alias, "choices", ())
    return [c for c in choices if isinstance(c, str)]


def _first_alias(field: FieldInfo) -> str | None:
    found = _aliases(field)
    return found[0] if found else None


def json_object(value: object, shape: str) -> dict[Any, Any]:
    """An app setting holding a JSON object (empty: ``{}``), or ValueError naming ``shape``."""
    if isinstance(value, str):
        try:
            value = json.loads(value) if value.strip() else {}
        except json.JSONDecodeError as exc:
            raise ValueError(f"not valid JSON: {exc}") from None
    if not isinstance(value, dict):
        raise ValueError(f"must be a JSON object: {shape}")
    return value
