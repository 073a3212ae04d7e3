"""The Azure error shape and the OpenAI-surface durations, as pure functions."""

from __future__ import annotations

import pytest

from aoai_sim._openai import go_duration
from shared.aoai import ContentFiltered
from shared.api._azure_errors import azure_error_body
from shared.api._errors import error_body
from shared.pacing._cooldown import parse_duration


def test_content_filter_moves_into_innererror() -> None:
    categories = {
        "hate": {"filtered": False, "severity": "safe"},
        "violence": {"filtered": True, "severity": "high"},
    }
    _, body = error_body(ContentFiltered("blocked", categories=categories), "cid")
    error = azure_error_body(body["error"])["error"]
    assert error["code"] == "content_filter" and error["param"] == "prompt"
    assert error["status"] == 400 and error["correlation_id"] == "cid"
    assert error["innererror"] == {
        "code": "ResponsibleAIPolicyViolation",
        "content_filter_result": categories,
    }
    assert "content_filter_result" not in error


@pytest.mark.parametrize(
    ("code", "azure"),
    [
        ("model_not_found", "DeploymentNotFound"),
        ("all_throttled", "429"),
        ("invalid_json", "BadRequest"),
    ],
)
def test_codes_map_and_the_gateway_code_stays(code: str, azure: str) -> None:
    error = azure_error_body({"code": code, "message": "m", "extra": 1})["error"]
    assert error == {"code": azure, "gateway_code": code, "message": "m", "extra": 1}


def test_unmapped_codes_pass_through() -> None:
    assert azure_error_body({"code": "upstream_auth_failed"})["error"] == {
        "code": "upstream_auth_failed"
    }


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (360, "6m0s"),
        (3600, "1h0m0s"),
        (1.5, "1.5s"),
        (0.25, "250ms"),
        (90.25, "1m30.25s"),
        (0, "0s"),
    ],
)
def test_go_durations_round_trip_through_the_gateway_parser(seconds: float, text: str) -> None:
    assert go_duration(seconds) == text
    assert parse_duration(text) == pytest.approx(seconds)
