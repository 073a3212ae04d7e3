"""The report rules of the Responses API parts of the benchmarks, on fixture results (no
benchmark runs): the overhead benchmark's HTTP arm is judged against the chat arm of the same
rounds, and a part that was not measured is a miss, never a pass."""

from __future__ import annotations

from typing import Any

from bench.overhead import RESPONSES_MARGIN_MS, responses_http_targets


def _added(p50: float, p99: float = 0.0) -> dict[str, float]:
    return {"p50": p50, "p99": p99, "paired_median": p50, "n": 100}


def _http(
    chat: float, responses: float, chat_delta: float, responses_delta: float
) -> dict[str, Any]:
    return {
        "added": _added(chat),
        "ttft_added": _added(chat_delta),
        "responses_added": _added(responses),
        "responses_first_delta_added": _added(responses_delta),
    }


def test_the_responses_arm_is_judged_against_chat_in_the_same_rounds() -> None:
    plain, stream = responses_http_targets(_http(8.0, 8.5, 7.0, 7.0 + RESPONSES_MARGIN_MS + 0.5))
    assert plain["measured"] == 0.5 and plain["met"]
    assert "Responses +8.500, chat +8.000" in plain["unit"]
    assert stream["measured"] == RESPONSES_MARGIN_MS + 0.5 and not stream["met"]


def test_a_responses_arm_that_did_not_run_is_a_miss() -> None:
    for http in ({"error": "RuntimeError: dev server did not start"}, {"added": _added(8.0)}):
        rows = responses_http_targets(http)
        assert len(rows) == 2
        assert all(not r["met"] and str(r["measured"]).startswith("not measured") for r in rows)
    (first, _) = responses_http_targets({"error": "RuntimeError: dev server did not start"})
    assert "dev server did not start" in first["measured"]
