"""Shared helpers for the HTTP API functional tests: a simulator-backed function app."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from tests.fixtures.gateway import settings_for_sim

FUNCTION_KEY = (
    "test-function-key"  # sent like a real caller would; the dev server does not enforce it
)


@pytest.fixture
def configure(app_env: Callable[[Any], dict[str, str]]) -> Callable[..., Any]:
    """``configure(sim, **settings_for_sim options)``: point the function app at ``sim``."""

    def apply(sim: Any, **options: Any) -> Any:
        settings = settings_for_sim(sim, **options)
        app_env(settings)
        return settings

    return apply
