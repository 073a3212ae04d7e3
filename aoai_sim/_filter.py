"""Content-filter verdicts and the result objects Azure attaches to prompts and choices."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

__all__ = ["choice_results", "filter_result", "prompt_filter_results", "scan"]

_CATEGORIES = ("hate", "self_harm", "sexual", "violence")


def scan(text: str, triggers: Iterable[tuple[str, str]]) -> str | None:
    """The category of the first trigger word found in ``text`` (case-insensitive), else None."""
    lowered = text.lower()
    for word, category in triggers:
        if word and word in lowered:
            return category
    return None


def filter_result(filtered: str | None = None, severity: str = "high") -> dict[str, Any]:
    """hate/self_harm/sexual/violence verdicts; ``filtered`` names the blocked category."""
    return {
        c: {"filtered": c == filtered, "severity": severity if c == filtered else "safe"}
        for c in _CATEGORIES
    }


def prompt_filter_results(prompt_count: int = 1) -> list[dict[str, Any]]:
    """Azure's prompt_filter_results for an accepted prompt."""
    result = {**filter_result(), "jailbreak": {"filtered": False, "detected": False}}
    return [{"prompt_index": i, "content_filter_results": result} for i in range(prompt_count)]


def choice_results(filtered: str | None = None, severity: str = "high") -> dict[str, Any]:
    """Per-choice content_filter_results."""
    return {
        **filter_result(filtered, severity),
        "protected_material_code": {"filtered": False, "detected": False},
        "protected_material_text": {"filtered": False, "detected": False},
    }
