"""Load a local.settings.json's ``Values`` into the environment, as the Functions host does."""

from __future__ import annotations

import json
import os
from collections.abc import MutableMapping
from pathlib import Path

__all__ = ["load_local_settings"]


def load_local_settings(
    path: str | Path, environ: MutableMapping[str, str] | None = None, *, override: bool = False
) -> dict[str, str]:
    """Copy ``Values`` into ``environ`` (default ``os.environ``) and return what was set.

    A variable already in the environment wins unless ``override`` is true, so a one-off
    ``GATEWAY_X=... make run`` beats the file. Values must be strings, as the host requires.
    """
    env = os.environ if environ is None else environ
    data = json.loads(Path(path).read_text(encoding="utf-8"))
    values = data.get("Values") if isinstance(data, dict) else None
    if not isinstance(values, dict):
        raise ValueError(f"{path}: no 'Values' object")
    if data.get("IsEncrypted"):
        raise ValueError(f"{path}: IsEncrypted is true; the dev server reads only plain settings")
    applied: dict[str, str] = {}
    for key, value in values.items():
        if not isinstance(value, str):
            raise ValueError(
                f"{path}: Values.{key} must be a string (the host accepts only strings)"
            )
        if override or key not in env:
            env[key] = value
            applied[key] = value
    return applied
