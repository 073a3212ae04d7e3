"""The report rules of the Responses API parts of the benchmarks, on fixture results (no
benchmark runs): the overhead benchmark's HTTP arm is judged against the chat arm of the same
rounds; the failover benchmark's conversations with stored state count a refusal while their
region is down as expected and everything else (a turn served by another region, a 404, a
refusal outside the outage) as a failure; a part that was not measured is a miss, never a pass."""

from __future__ import annotations

from typing import Any

from bench._stored_failover import (
    EXPECTED,
    Turn,
    _summarize,
    stored_state_line,
    stored_state_targets,
)
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


# ----------------------------------------------------------------- failover: stored state

FAULT_AT, RECOVER_AT, BACK_AT = 3.0, 32.0, 34.0


def _stored(turns: list[Turn]) -> dict[str, Any]:
    out = _summarize(turns, FAULT_AT, RECOVER_AT, BACK_AT)
    out["setup"] = {"first_byte_s": 10.0}
    return out


def _met(stored: dict[str, Any]) -> dict[str, bool]:
    return {t["what"].split(":")[0][:40]: t["met"] for t in stored_state_targets(stored)}


def _healthy_run() -> list[Turn]:
    return [
        Turn(1.0, 1.02, "first", None, "primary", None),
        Turn(1.1, 1.12, "continuation", None, "primary", "primary"),
        # the holding region down: the expected refusal, quick (circuit open) or at the deadline
        Turn(3.5, 3.6, "continuation", EXPECTED, None, "primary"),
        Turn(20.0, 30.0, "continuation", EXPECTED, None, "primary", retry=True),
        # back: the retried turn is served by its region again
        Turn(35.0, 35.02, "continuation", None, "primary", "primary", retry=True),
        # requests free to fail over, during the faults, on the secondary
        Turn(4.0, 4.05, "first", None, "secondary", None),
        Turn(4.1, 4.12, "stateless", None, "secondary", None),
        # a conversation held by the secondary stays there after fail-back
        Turn(36.0, 36.02, "continuation", None, "secondary", "secondary"),
    ]


def test_a_refusal_while_the_holding_region_is_down_is_expected_not_a_failure() -> None:
    stored = _stored(_healthy_run())
    c = stored["continuations"]
    assert c["expected_region_unavailable"] == 2 and c["unexpected_errors"] == 0
    assert c["resumed"] == 1 and c["on_secondary_after_failback"] == 1
    assert c["region_unavailable_worst_ms"] == 10000.0
    assert stored["errors_by_kind"] == {"continuation": {EXPECTED: 2}}
    assert stored["free_to_fail_over"] == {
        "calls_during_faults": 2,
        "errors_during_faults": 0,
        "errors_by_kind": {},
        "served_by_secondary_during_faults": 2,
    }
    assert all(_met(stored).values()), stored_state_targets(stored)
    assert "0 by another region" in stored_state_line(stored)


def test_a_turn_served_elsewhere_or_a_refusal_outside_the_outage_is_a_miss() -> None:
    elsewhere = _stored(
        [*_healthy_run(), Turn(5.0, 5.02, "continuation", None, "secondary", "primary")]
    )
    assert elsewhere["continuations"]["served_elsewhere"] == 1
    assert not stored_state_targets(elsewhere)[0]["met"]

    for wrong in (
        Turn(10.0, 10.1, "continuation", EXPECTED, None, "secondary"),  # its region was up
        Turn(40.0, 40.1, "continuation", EXPECTED, None, "primary"),  # after it was back
        Turn(10.0, 10.1, "continuation", "404 response_not_found", None, "primary"),
    ):
        stored = _stored([*_healthy_run(), wrong])
        assert stored["continuations"]["unexpected_errors"] == 1
        assert stored["continuations"]["unexpected_by_kind"] == {str(wrong.error): 1}
        assert not stored_state_targets(stored)[1]["met"]


def test_a_refusal_left_hanging_past_the_deadline_and_a_failed_fail_over_are_misses() -> None:
    slow = _stored([*_healthy_run(), Turn(12.0, 25.0, "continuation", EXPECTED, None, "primary")])
    assert not stored_state_targets(slow)[2]["met"]
    failed = _stored([*_healthy_run(), Turn(6.0, 6.1, "stateless", "APITimeoutError", None, None)])
    assert failed["free_to_fail_over"]["errors_during_faults"] == 1
    assert not stored_state_targets(failed)[3]["met"]
    never_down = _stored([t for t in _healthy_run() if not t.error])
    assert not stored_state_targets(never_down)[2]["met"]  # no refusal measured: not a pass


def test_a_stored_state_part_that_did_not_run_is_a_miss() -> None:
    (row,) = stored_state_targets({"error": "RuntimeError: dev server did not start"})
    assert not row["met"] and "dev server did not start" in row["measured"]
    assert "FAILED" in stored_state_line({"error": "RuntimeError: boom"})


def test_the_failover_page_reports_stored_state_conversations_apart() -> None:
    import copy
    import json

    from bench._harness import ROOT
    from bench.report import render_markdown

    run = json.loads((ROOT / "bench" / "results" / "latest.json").read_text(encoding="utf-8"))
    run = copy.deepcopy(run)
    failover = run["benchmarks"]["failover"]
    stored = _stored(_healthy_run())
    stored["setup"] |= {
        "conversations": 4,
        "retry_wait_s": 0.5,
        "stateless_callers": 2,
        "turns": 30,
        "think_s": 0.05,
    }
    failover["stored_state"] = stored
    page = render_markdown(run, {}, "bench/results/latest.json")
    section = page[page.index("### Conversations with stored state") :]
    assert f"{EXPECTED}: 2" in section and "0 of them by a region other than" in section
    assert "`503 response_region_unavailable` (expected" in section

    failover["stored_state"] = {"error": "RuntimeError: dev server did not start"}
    page = render_markdown(run, {}, "bench/results/latest.json")
    assert "Not measured: RuntimeError: dev server did not start." in page
