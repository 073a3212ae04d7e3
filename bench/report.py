"""Render ``docs/benchmarks.md`` and the ``docs/bench-*.png`` plots from one results JSON.

Every figure in the report is read from the results of one ``python -m bench`` run; nothing is
typed in by hand. ``python -m bench.report [results.json]`` re-renders without re-measuring.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Any

from ._harness import ROOT
from ._merge import not_from_this_tree, provenances
from ._plots import plot_drain, plot_failover, plot_overhead
from .scaleout import plot as plot_scaleout

__all__ = ["honest_summary", "render_markdown", "untraced", "write_report"]

DOCS = ROOT / "docs"
REPORT = DOCS / "benchmarks.md"


NOT_FROM_THIS_TREE = "NOT FROM THIS TREE"
# Red where the markdown renders HTML, and the plain words everywhere else.
RED_BADGE = f'<span style="color:red">**{NOT_FROM_THIS_TREE}**</span>'


def untraced(run: dict[str, Any], root: Path) -> dict[str, str]:
    """Benchmark -> why its figures cannot be traced to the tree at ``root`` (a dirty tree, a
    commit that is not an ancestor of HEAD, or none recorded); traced benchmarks are absent."""
    out = {}
    for name, p in provenances(run).items():
        why = not_from_this_tree(root, p.get("commit"))
        if why:
            out[name] = why
    return out


def _range_text(t: dict[str, Any]) -> str:
    """How many runs a target's figure comes from and, for two or more, their range."""
    runs = t.get("runs") or 1
    spread = t.get("range")
    if runs >= 2 and spread:
        return f"median of {runs} runs, range {_fmt(spread[0])}–{_fmt(spread[1])}"
    return "one run: no range"


def _scaleout_summary(result: dict[str, Any]) -> str:
    """The scale-out line with each K's share at full precision, said met or missed against its
    target, and its range where it repeats: ``0.949`` never becomes ``0.95x``."""
    line = result.get("summary", "scaleout")
    scenarios = result.get("scenarios", {})
    share_targets = {
        t["what"].split(" ", 1)[0]: t
        for t in result.get("targets", [])
        if "share of what interactive leaves" in t.get("what", "")
    }

    def exact(match: re.Match[str]) -> str:
        k = match.group(1)
        scenario = scenarios.get(f"ledger K={k}", {})
        share = scenario.get("share")
        if not isinstance(share, (int, float)):
            return match.group(0)
        text = f"K={k} share {share:.3f}"
        t = share_targets.get(f"K={k}")
        if t is None:
            return text + (match.group(2) or "")  # no target: the printed range, if any
        text += f" ({'met' if t['met'] else 'missed'} {t['target']}"
        return text + f"; {_range_text(t)})"

    # The benchmark's own range, ``(range 0.931-0.962, 3 runs)``, is replaced by the target's.
    return re.sub(r"K=(\d+) share [\d.]+x( \(range [^)]*\))?", exact, line)


def honest_summary(name: str, result: dict[str, Any]) -> str:
    """``result``'s summary line as the report prints it: a figure that is missing reads
    ``n/a`` with why (never ``+None ms``), and scale-out shares keep every digit measured."""
    line = result.get("summary", name)
    if name == "scaleout":
        line = _scaleout_summary(result)
    return re.sub(r"[+-]?None( ms)?", "n/a (no call in that phase, so no figure)", line)


def _fmt(value: Any, digits: int = 3) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, float):
        return f"{value:.{digits}f}".rstrip("0").rstrip(".") if abs(value) < 1e6 else f"{value:.3g}"
    return str(value)


def _table(header: list[str], rows: list[list[Any]]) -> list[str]:
    out = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    out += ["| " + " | ".join(_fmt(c) for c in row) + " |" for row in rows]
    return out + [""]


def _machine(run: dict[str, Any], marked: dict[str, str]) -> list[str]:
    m, after = run.get("machine_before", {}), run.get("machine_after", {})
    load_b, load_a = m.get("loadavg", []), after.get("loadavg", [])
    busy = (load_b[:1] or [0])[0] > 0.5 * max(1, m.get("nproc", 1))
    lines = [
        "## Machine and run",
        "",
        f"- Run started {run.get('started_utc')} (UTC), `{run.get('command')}`, total {run.get('total_s')} s"
        + (
            " — **quick mode: small samples, a smoke run, not publishable figures**"
            if run.get("quick")
            else ""
        )
        + ".",
        f"- `nproc` {m.get('nproc')}, memory {m.get('mem_gib')} GiB, CPU {m.get('cpu_model')}, Python {m.get('python')}, "
        f"{m.get('platform')}.",
        f"- Load average (1/5/15 min) before {load_b}, after {load_a} (the benchmarks' own processes keep one to two "
        "cores busy, so the figure after includes them)."
        + (
            " **The machine was already busy when the run started; latencies are noisy and read best as ratios "
            "within one benchmark, whose arms were interleaved.**"
            if busy
            else " The 1-minute load was low when the run started; if the machine is shared, other jobs may still have run "
            "during it."
        ),
    ]
    if run.get("note"):
        lines.append(f"- Note given with the run: {run['note']}")
    lines.append("")
    return lines + _provenance(run, marked)


def _provenance(run: dict[str, Any], marked: dict[str, str]) -> list[str]:
    """Per benchmark: when it started and on which commit, when the benchmarks differ in either
    (a report merged from pieces, ``--only X --merge``) or any cannot be traced to this tree;
    else one line naming the commit."""
    found = provenances(run)
    if not found:
        return []
    starts = {p.get("started_utc") for p in found.values()}
    commits = {p.get("commit") for p in found.values()}
    if not marked and len(commits) == 1 and (len(starts) == 1 or not run.get("merged")):
        (commit,) = commits
        return [f"- Commit `{commit}` for every benchmark.", ""] if commit else []
    lines = [
        "### Runs per benchmark",
        "",
        (
            "This report is merged from runs in pieces (`python -m bench --only NAME --merge`): "
            "each benchmark's figures come from its own run, on the commit and under the load "
            "shown."
            if run.get("merged")
            else "Each benchmark's commit and load, and whether its figures trace to this tree."
        ),
        "",
    ]
    rows = [
        [
            name,
            p.get("started_utc") or "unknown",
            f"`{p.get('commit')}`" if p.get("commit") else "unknown",
            f"{(p.get('load_before') or ['?'])[0]} → {(p.get('load_after') or ['?'])[0]}",
            f"{RED_BADGE}: {marked[name]}" if name in marked else "yes",
        ]
        for name, p in found.items()
    ]
    lines += _table(
        [
            "benchmark",
            "started (UTC)",
            "commit",
            "1-min load before → after",
            "from this tree (clean, ancestor of HEAD)",
        ],
        rows,
    )
    return lines


def _targets(run: dict[str, Any], marked: dict[str, str]) -> list[str]:
    rows = []
    for name, result in run["benchmarks"].items():
        flag = f" {RED_BADGE}" if name in marked else ""
        if "error" in result or "skipped" in result:
            rows.append(
                [
                    name,
                    "runs",
                    result.get("error") or result.get("skipped"),
                    "",
                    ("**MISSED**" if "error" in result else "skipped") + flag,
                ]
            )
            continue
        for t in result.get("targets", []):
            measured = f"{_fmt(t['measured'])} {t.get('unit', '')}".strip()
            if "added p99" in t.get("what", ""):
                measured += " (a difference of p99s)"
            verdict = "met" if t["met"] else "**MISSED**"
            rows.append(
                [name, f"{t['what']}: {t['target']}", measured, _range_text(t), verdict + flag]
            )
    return [
        "## Targets",
        "",
        *_table(["benchmark", "target", "measured", "runs", "result"], rows),
        "*Runs*: where a benchmark repeats its measurement, the figure is the median of the runs "
        'and the range (lowest–highest) is printed beside it; "one run: no range" means the '
        "run-to-run spread of that figure was not measured in this report, so a margin smaller "
        "than the spread seen before is not evidence of a pass.",
        "",
    ]


def _overhead(r: dict[str, Any], images: dict[str, str]) -> list[str]:
    core = r["core"]
    lines = [
        "## 1. Overhead",
        "",
        f"`{r['summary']}`",
        "",
        f"Core, in-process, zero-latency simulator, {core['rounds']} interleaved rounds (every arm once per round, "
        "order rotated each round). Arms: `sdk` = `AsyncOpenAI.chat.completions.create` (v1, typed response); "
        "`sdk_raw` = the same client's raw `post` + `json()`; `sdk_raw_stream` = the same `post` with `stream=True` "
        "and every SSE event decoded by the SDK's `AsyncStream`, the transport the access layer uses by default (it asks "
        "upstream for a stream even for a non-streaming caller, so a hung region is caught by the first-byte and idle "
        "deadlines; it decodes that response's events itself, at less cost than `AsyncStream`, so its added figure is "
        "its own work net of that saving); "
        "`gateway` = `Gateway.chat` with default settings, incl. building the `ChatRequest`; `gateway_json` = the same "
        "with `GATEWAY_STREAM_UPSTREAM=false`; `sdk_dated` = `AsyncAzureOpenAI` (dated API); "
        f"`litellm` = LiteLLM {core.get('litellm_version')} `Router.acompletion`, same deployment, dated API. "
        + (
            'The Responses API: `sdk_raw_responses` = the raw `post("/responses")` with `stream: true`, '
            "every event read through the SDK's `AsyncStream` (stored, the default); "
            "`gateway_responses` = what the gateway's Responses route runs for a non-streaming create "
            "(`Gateway.call_deployment` with `streamed_create`: streamed upstream under the first-byte "
            "and idle deadlines, answered with the final event's response). "
            if "gateway_responses_vs_sdk_raw_responses" in core
            else ""
        )
        + "Logging at Python's default level (the gateway's per-call INFO record is not emitted).",
        "",
    ]
    rows = [[arm, s["p50"], s["p90"], s["p99"], s["mean"]] for arm, s in core["latency_ms"].items()]
    lines += _table(["arm", "p50 ms", "p90 ms", "p99 ms", "mean ms"], rows)
    added = [
        [
            "gateway vs sdk_raw_stream (the layer's own work, default path)",
            core["gateway_vs_sdk_raw_stream"],
        ],
        [
            "gateway_json vs sdk_raw (the layer's own work, stream_upstream off)",
            core["gateway_json_vs_sdk_raw"],
        ],
        ["gateway vs gateway_json (what streaming upstream costs)", core["stream_upstream_cost"]],
        ["gateway vs sdk (what a user would otherwise write)", core["gateway_vs_sdk"]],
        ["litellm vs sdk_dated (same API style)", core["litellm_vs_sdk_dated"]],
        ["litellm vs sdk", core["litellm_vs_sdk"]],
    ]
    if "gateway_responses_vs_sdk_raw_responses" in core:
        added.append(
            [
                "gateway_responses vs sdk_raw_responses (the layer's own work, Responses API)",
                core["gateway_responses_vs_sdk_raw_responses"],
            ]
        )
    lines += _table(
        [
            "added latency",
            "p50 ms (p50 − p50)",
            "p99 ms (p99 − p99)",
            "median of paired differences ms",
        ],
        [[name, a["p50"], a["p99"], a["paired_median"]] for name, a in added],
    )
    lines += [
        "The p50 and p99 columns are differences of percentiles (one arm's p99 minus the other's), "
        "not percentiles of the added time: an added p99 below the added p50, or below zero, means "
        "the two arms' tails are closer than their medians, not that the layer's worst calls cost "
        "less than its typical ones.",
        "",
    ]
    own = core["gateway_vs_sdk_raw_stream"]
    if own["p50"] < 0 or own["p99"] < 0:
        lines += [
            f"A negative figure means the difference is below this run's noise: the layer cannot be faster than "
            f"the transport it calls. The median of the paired differences ({own['paired_median']:+.3f} ms) is the "
            "best estimate of its own cost per call.",
            "",
        ]
    lines += [
        "The typed `sdk` arm is slower than `sdk_raw` because the SDK builds a pydantic `ChatCompletion` from "
        "every response; the access layer returns the decoded JSON dict, so next to what users would otherwise "
        "write it saves time rather than adding it.",
        "",
    ]
    if "overhead" in images:
        lines += [f"![overhead]({images['overhead']})", ""]
    http = r.get("http", {})
    if "added" in http:
        lines += [
            f"Full HTTP path: the caller's `AsyncOpenAI` pointed at the dev server (`/api/v1`, separate process, "
            f"uvicorn) vs the same client straight at the simulator; {http['rounds']} interleaved rounds (each "
            f"arm once per round), and {http['stream_rounds']} rounds of streams timed to the first content chunk.",
            "",
        ]
        rows = [
            ["latency, direct", *[http["latency_ms"]["direct"][k] for k in ("p50", "p99")]],
            [
                "latency, through dev server",
                *[http["latency_ms"]["devserver"][k] for k in ("p50", "p99")],
            ],
            ["**added**", http["added"]["p50"], http["added"]["p99"]],
            ["TTFT, direct", *[http["ttft_ms"]["direct"][k] for k in ("p50", "p99")]],
            [
                "TTFT, through dev server",
                *[http["ttft_ms"]["devserver"][k] for k in ("p50", "p99")],
            ],
            ["**TTFT added**", http["ttft_added"]["p50"], http["ttft_added"]["p99"]],
        ]
        if "responses_added" in http:
            rows += _responses_http_rows(http)
        lines += _table(["HTTP path", "p50 ms", "p99 ms"], rows)
        if "responses_added" in http:
            lines += [
                "The Responses API rows come from the same interleaved rounds as the chat rows: "
                "`client.responses.create` (stored, the default, so the gateway records where each "
                "response lives; in memory on the dev server, a Table write in Azure that this does "
                "not measure) and, streamed, the time to the first `response.output_text.delta`. "
                "Its target is relative to the chat rows of the same rounds (the same call loop "
                "plus the affinity record), since on a shared machine an absolute figure measures "
                "the load more than the route.",
                "",
            ]
    else:
        lines += [f"Full HTTP path: not measured — {http.get('error', 'no result')}.", ""]
    return lines


def _responses_http_rows(http: dict[str, Any]) -> list[list[Any]]:
    lat, first = http["latency_ms"], http["ttft_ms"]
    return [
        ["Responses latency, direct", *[lat["responses_direct"][k] for k in ("p50", "p99")]],
        [
            "Responses latency, through dev server",
            *[lat["responses_devserver"][k] for k in ("p50", "p99")],
        ],
        ["**Responses added**", http["responses_added"]["p50"], http["responses_added"]["p99"]],
        [
            "Responses first text delta, direct",
            *[first["responses_direct"][k] for k in ("p50", "p99")],
        ],
        [
            "Responses first text delta, through dev server",
            *[first["responses_devserver"][k] for k in ("p50", "p99")],
        ],
        [
            "**Responses first text delta added**",
            http["responses_first_delta_added"]["p50"],
            http["responses_first_delta_added"]["p99"],
        ],
    ]


def _drain(r: dict[str, Any], images: dict[str, str]) -> list[str]:
    setup = r["setup"]
    lines = [
        "## 2. Drain under quota",
        "",
        f"`{r['summary']}`",
        "",
        f"**How jobs are driven:** {r['driven_by']}. In `backlog` a job refused with `AllThrottled` is parked in the "
        "Storage queue and re-driven by the timer; in `gateway` the worker waits for the time the error names and "
        "tries again.",
        "",
        f"Setup: {setup['jobs']} jobs, {setup['concurrency']} workers, regions {', '.join(setup['regions'])}, each "
        f"{setup['tpm_per_region']} TPM and {setup['rpm_per_region']} RPM per quota minute of {setup['minute_s']} s "
        f"(simulator `minute_seconds`); {setup['charge_per_job']} tokens charged per job (prompt estimate + "
        f"max_tokens {setup['max_tokens']}); simulator latency {setup['sim_ttft_ms']} ms per call; each scenario "
        f"capped at {setup['time_cap_s']} s. Baselines: (a) `just_retry` = openai SDK, default retries, primary "
        "region only; (b) `fallback` = the crude loop (primary with default retries, on any error the secondary); "
        "(c) `litellm` = LiteLLM Router over both regions, `num_retries=2, allowed_fails=3, cooldown_time=5`. "
        "(a), (b) and (c) run at the same time, each against its own simulator process with this configuration; "
        "`backlog` and `gateway` run alone. The peers' own constants (SDK back-off, LiteLLM's 5 s cooldown) stay in "
        "real seconds.",
        "",
        f"Share of the combined quota is counted per complete quota minute from the simulator's charged-token "
        f"counter, sampled just before every window edge; the last, partial minute (the backlog running dry) is "
        f"left out. With {setup['charge_per_job']} tokens per job a region fits a whole number of jobs per minute, so "
        f"the best possible share is **{setup.get('ceiling')}**. Lost = failed for good or unfinished at the cap. "
        "Duplicated = chat calls the simulator served beyond one per completed job (work done twice upstream), or, "
        "for the backlog, jobs with more than one terminal write, whichever is larger.",
        "",
    ]
    if setup.get("backlog_settings"):
        lines += [
            "The backlog's time settings are scaled like the quota minute (60 s -> "
            f"{setup['minute_s']:g} s): "
            + ", ".join(f"`{k}={v}`" for k, v in setup["backlog_settings"].items())
            + ".",
            "",
        ]
    rows = []
    for name, s in r["scenarios"].items():
        if "error" in s:
            rows.append([name, s["error"], "", "", "", "", "", ""])
            continue
        rows.append(
            [
                name,
                s["fraction_full_minutes"],
                s["fraction_overall"],
                s["tokens_per_s"],
                f"{s['sim']['throttled_429']} / {s['sim']['requests']} ({(s['share_429'] or 0) * 100:.1f}%)",
                s["wall_s"],
                f"{s['lost']}" + (f" {s['lost_kinds']}" if s["lost_kinds"] else ""),
                s["duplicated"],
            ]
        )
    lines += _table(
        [
            "scenario",
            "share of combined quota (full minutes)",
            "overall (tokens/s ÷ quota)",
            "tokens/s",
            "simulator 429s / requests",
            "wall s",
            "lost",
            "duplicated",
        ],
        rows,
    )
    bl = r["scenarios"].get("backlog", {})
    if "backlog" in bl:
        d = bl["backlog"]
        lines += [
            f"Backlog path details: {d.get('submit_s')} s to submit the jobs (before the clock starts), "
            f"{d.get('deliveries')} worker deliveries, {d.get('timer_runs')} timer runs, final states "
            f"{d.get('final_states')}, {d.get('double_terminal_writes')} jobs with a second terminal write.",
            "",
        ]
    rows = [
        [name, ", ".join(str(w) for w in s.get("tokens_per_full_minute") or []) or "none complete"]
        for name, s in r["scenarios"].items()
        if "error" not in s
    ]
    lines += _table(
        [
            "scenario",
            f"tokens charged in each complete quota minute (combined quota {setup['tpm_per_region'] * len(setup['regions'])})",
        ],
        rows,
    )
    if "drain" in images:
        lines += [f"![drain throughput]({images['drain']})", ""]
    return lines


def _failover_timeouts(setup: dict[str, Any]) -> str:
    if "timeout_s" in setup:  # runs before the first-byte and idle deadlines
        return f"Timeouts {setup['timeout_s']} s for every contender"
    return (
        f"Timeouts: the gateway's {setup['gateway_timeouts']}; the baselines' "
        f"{setup['peer_timeout_s']:g} s (their SDK read timeout)"
    )


def _failover(r: dict[str, Any], images: dict[str, str]) -> list[str]:
    setup = r["setup"]
    ph = setup["phases_s"]
    lines = [
        "## 3. Failover",
        "",
        f"`{r['summary']}`",
        "",
        f"{setup['callers']} callers send requests back to back. The primary is healthy for {ph['healthy']} s, then "
        f"resets every connection for {ph['reset']} s, then hangs every request for {ph['hang']} s, then recovers "
        f"(watched for {ph['recovered']} s). {_failover_timeouts(setup)}; the gateway's "
        f"circuit opens after {setup['threshold']} failures (at once on a timeout) and cools off for "
        f"{setup['cooloff_s']} s. Baselines: (b) the crude loop (SDK default 2 retries on the primary, then the "
        "secondary); (c) LiteLLM Router with the primary at `order=1`, secondary `order=2`, "
        "`num_retries=2, allowed_fails=3, cooldown_time=5`.",
        "",
        'Requests to the dead region = the primary\'s reset + hang counts in `/_sim/stats`. "In first cool-off" counts '
        f"them over the first {setup['cooloff_s']} s of the outage (the circuit opening, with {setup['callers']} "
        f'callers in flight); "per later cool-off" divides the rest by the number of {setup["cooloff_s"]} s periods '
        "left in the outage (the same yardstick for every contender). Worst added latency = slowest call started "
        "during the outage minus the healthy p50. Fail-back = from the faults' end to the primary's next served "
        "request.",
        "",
    ]
    rows = []
    for name, c in r["contenders"].items():
        if "error" in c:
            rows.append([name, c["error"], "", "", "", "", "", ""])
            continue
        rows.append(
            [
                name,
                f"{c['caller_errors_during_faults']} / {c['calls_during_faults']}",
                c["healthy_p50_ms"],
                c["worst_added_latency_ms"],
                c["dead_region_requests"],
                c["dead_region_requests_first_cooloff"],
                c["dead_region_requests_per_later_cooloff"],
                c["failback_s"],
            ]
        )
    lines += _table(
        [
            "contender",
            "caller errors / calls during faults",
            "healthy p50 ms",
            "worst added latency ms",
            "requests to dead region",
            "in first cool-off",
            "per later cool-off",
            "fail-back s",
        ],
        rows,
    )
    hedges = r["contenders"].get("gateway", {}).get("hedges")
    if hedges:
        share = hedges.get("outside_hang_share")
        lines += [
            f"Gateway hedges (a call also sent to the secondary when its first byte was late): "
            f"{hedges['hang']} of {hedges['hang_calls']} calls in the hang phase; "
            f"{hedges['outside_hang']} of {hedges['outside_hang_calls']} calls outside it"
            + (f" ({share * 100:.2f} %)." if share is not None else "."),
            "",
        ]
    slow = r.get("slow_restart")
    if slow and "calls" in slow:
        lines += [
            f"A primary {slow['first_byte_ms'] / 1000:g} s to its first byte (as after a restart), "
            f"default settings, {slow['calls']} calls in a row after 100 healthy ones: "
            f"{slow['hedged']} hedged, {slow['errors']} errors, slowest {slow['worst_s']} s, "
            f"primary's circuit {slow['circuit']} with {slow['circuit_failures']} failures "
            f"(hedge threshold {slow['threshold_s']} s).",
            "",
        ]
    stored = r.get("stored_state")
    if stored:
        lines += _failover_stored(stored)
    if "failover" in images:
        lines += [f"![failover latency]({images['failover']})", ""]
    return lines


def _failover_stored(s: dict[str, Any]) -> list[str]:
    """The Responses API conversations with stored state, apart from the chat figures above."""
    lines = ["### Conversations with stored state (Responses API)", ""]
    if "error" in s:
        return lines + [f"Not measured: {s['error']}.", ""]
    c, f, cfg = s["continuations"], s["free_to_fail_over"], s["setup"]
    lines += [
        f"The gateway as the dev server (the Responses API is served by its HTTP layer), same "
        f"regions, circuit settings and timeline as above, default timeouts, against a simulator "
        f"of its own whose regions each store their own responses (an id from the other region "
        f"is a 404 there, as in Azure). {cfg['conversations']} callers hold conversations of up "
        f"to {cfg['turns']} turns ({cfg['think_s']:g} s apart), each continuing the last answer "
        "with `previous_response_id` (non-streaming requests); refused with `response_region_unavailable`, half of them "
        f"start over (a new conversation, free to fail over) and half wait {cfg['retry_wait_s']:g} s "
        f"and send the same turn again. {cfg['stateless_callers']} more callers send `store: false` "
        "requests with the full input. The region that served each answer is read from its "
        "`x-gateway-region` header; the holding region counts as down from the faults' start "
        f"until it serves again ({s['primary_serves_again_s']} s after they end).",
        "",
    ]
    rows = [
        [kind, s["requests"][kind], _kinds(s["errors_by_kind"].get(kind, {}))]
        for kind in ("first", "continuation", "stateless")
    ]
    lines += _table(["requests", "sent", "errors by kind"], rows)
    lines += [
        f"Continuations: {c['served']} served, {c['served_elsewhere']} of them by a region other "
        f"than the one holding the conversation; {c['while_home_down']} sent while their region "
        f"was down, {c['expected_region_unavailable']} of them answered `503 "
        f"response_region_unavailable` (expected: only that region holds the state; p50 "
        f"{_fmt(c['region_unavailable_p50_ms'])} ms, slowest {_fmt(c['region_unavailable_worst_ms'])} "
        f"ms), {c['unexpected_errors']} other errors ({_kinds(c['unexpected_by_kind'])}); "
        f"{c['resumed']} retried turns served by their region once it was back; "
        f"{c['on_secondary_after_failback']} turns of conversations held by the secondary served "
        "there after the primary was back (the router preferring the primary again). Requests "
        f"free to fail over (`store: false`, first turns): {f['errors_during_faults']} errors of "
        f"{f['calls_during_faults']} during the faults, {f['served_by_secondary_during_faults']} "
        "served by the secondary.",
        "",
    ]
    return lines


def _kinds(counts: dict[str, int]) -> str:
    return ", ".join(f"{k}: {n}" for k, n in sorted(counts.items())) or "none"


def _scaleout(r: dict[str, Any], images: dict[str, str]) -> list[str]:
    setup = r["setup"]
    lines = [
        "## Scale-out: instances sharing one quota",
        "",
        f"`{r['summary']}`",
        "",
        f"K app instances (separate `python -m devserver` processes: HTTP, Service Bus pumps, the timer "
        f"under its blob lease) on one Azurite, broker and simulator drain {setup['jobs']} jobs through the "
        f"real backlog path, while open-loop HTTP chats at {setup['interactive_share']:.0%} of the combined "
        f"quota ({setup['interactive_rate_per_s']} calls/s, {setup['interactive_charge']} tokens each) go to "
        f"random instances. Regions {', '.join(setup['regions'])}, each {setup['tpm_per_region']} TPM and "
        f"{setup['rpm_per_region']} RPM per quota minute of {setup['minute_s']} s (time scale "
        f"{setup['time_scale']:g} of Azure's: the backlog's timer, defer and claim settings are scaled alike: "
        f"{setup['backlog_settings']}); {setup['job_charge']} tokens per job; simulator latency "
        f"{setup['sim_ttft_ms']} ms (direct call {setup['direct_latency_ms']} ms); {setup['jobs']} jobs per "
        f"scenario, each capped at {setup.get('time_cap_s', '-')} s. *share*: backlog tokens / (combined quota - interactive tokens) "
        "over the complete quota minutes after the first (the ramp) while the backlog drained"
        + (
            ", leaving out the drain's tail (a minute that began with fewer jobs left than it could carry)."
            if "repeats" in setup
            else "."
        ),
        "",
    ]
    if setup.get("repeats", 1) >= 2:
        lines += [
            f"Each ledger scenario ran {setup['repeats']} times (the repeats interleaved: every K once, then "
            "again); its row shows the median of the runs for share, upstream 429s, lost, dup and interactive "
            "throttled, with the share's range (lowest–highest) beside it, and the rest (jobs/s, latencies, "
            "ledger transactions) from the run whose share is the median. Ledger off and LiteLLM ran once.",
            "",
        ]
    rows = []
    for name, s in r["scenarios"].items():
        if "error" in s:
            rows.append([name, s["error"], "", "", "", "", "", "", ""])
            continue
        inter = s["interactive"]
        ledger = s.get("ledger_stats") or {}
        share_range = (s.get("range") or {}).get("share")
        share = _fmt(s["share"])
        if (s.get("runs") or 1) >= 2 and share_range:
            share += f" ({_fmt(share_range[0])}–{_fmt(share_range[1])}, {s['runs']} runs)"
        rows.append(
            [
                name,
                share,
                f"{100 * s['upstream_429_share']:.2f}% ({s['upstream_429']})",
                f"{s['jobs_per_s']}",
                f"{s['lost']} / {s['dup']}",
                f"{inter['all_throttled']} of {inter['calls']}",
                _fmt(inter["added_ms_p50"]),
                _fmt(inter["added_ms_p99"]),
                _fmt(ledger.get("transactions_per_1000_calls")),
            ]
        )
    lines += _table(
        [
            "scenario",
            "share",
            "upstream 429s",
            "jobs/s",
            "lost / dup",
            "interactive throttled",
            "added p50 ms",
            "added p99 ms",
            "ledger tx / 1000 calls",
        ],
        rows,
    )
    lines += [""]
    if "scaleout" in images:
        lines += [f"![scale-out throughput and 429s]({images['scaleout']})", ""]
    return lines


def _coldstart(r: dict[str, Any]) -> list[str]:
    lines = [
        "## 4. Cold start",
        "",
        f"`{r['summary']}`",
        "",
        f"Each sample is a fresh interpreter timing its own import (start-up excluded); {r['repeats']} samples "
        "per arm, alternating.",
        "",
    ]
    rows = [
        [arm, s["p50"], s["p90"], s["max"], r["process_wall_ms"][arm]["p50"]]
        for arm, s in r["import_ms"].items()
    ]
    lines += _table(["import", "median ms", "p90 ms", "max ms", "whole process median ms"], rows)
    if "ratio_vs_streaming_floor" in r:
        lines += [
            f"Against `azure.functions` plus the HTTP streaming extension, which the worker needs imported at "
            f"indexing time to stream (so every streaming Python function app pays it): "
            f"**{r['ratio_vs_streaming_floor']}x**, {r['added_over_streaming_floor_ms']:+} ms of the gateway's own. "
            "The 1.5x target against `azure.functions` alone cannot be met while the app streams; it is reported "
            "as missed.",
            "",
        ]
    lines += [
        f"Ratio of medians: **{r['ratio_median']}x**. `app.get_functions()` (indexing) after the import: "
        f"{r['get_functions_ms'].get('p50')} ms median. Heavy modules loaded by importing `function_app`: "
        f"{', '.join(r['heavy_loaded_by_function_app']) or 'none'}.",
        "",
    ]
    if r.get("slowest_imports"):
        lines += [
            "Slowest imports under `function_app` (`python -X importtime`, one run, cumulative):",
            "",
        ]
        lines += _table(
            ["module", "ms"], [[x["module"], x["cumulative_ms"]] for x in r["slowest_imports"]]
        )
    return lines


def _memory(r: dict[str, Any]) -> list[str]:
    lines = [
        "## 5. Memory",
        "",
        f"`{r['summary']}`",
        "",
        f"{r['streams']} concurrent streaming chat requests, all open at once (the simulator's `max_in_flight` "
        "confirms it). `gateway` and `sdk` are fresh in-process child processes; `devserver` is the dev server's "
        "process RSS while serving the streams over HTTP. Base = RSS just before the streams opened (imports, "
        "clients, one warm-up stream done).",
        "",
    ]
    rows = []
    for arm, a in r["arms"].items():
        if "error" in a:
            rows.append([arm, a["error"], "", "", "", ""])
        else:
            rows.append(
                [
                    arm,
                    a["base_mib"],
                    a["peak_mib"],
                    a["delta_mib"],
                    a.get("sim_max_in_flight"),
                    a["chunks"],
                ]
            )
    lines += _table(
        ["arm", "base MiB", "peak MiB", "growth MiB", "simulator max in flight", "chunks read"],
        rows,
    )
    return lines


def _concurrency(r: dict[str, Any]) -> list[str]:
    setup, crit = r["setup"], r["criteria"]
    stream_s = (setup["ttft_ms"] + setup["tokens"] * setup["per_token_ms"]) / 1000.0
    lines = [
        "## Concurrency per instance (`bench/concurrency.py`)",
        "",
        f"`{r['summary']}`",
        "",
        "One instance = one dev server process (the app's HTTP functions on one event loop, as the Python "
        "worker runs them) in front of one simulated deployment. Each stream is a streamed chat call of "
        f"{setup['tokens']} tokens, {setup['ttft_ms']:.0f} ms to the first token then "
        f"{setup['per_token_ms']:.0f} ms per token (about {stream_s:.1f} s and "
        f"{1000.0 / setup['per_token_ms']:.0f} tokens/s, the slower end of how fast Azure OpenAI streams). At each level C, C callers run "
        "streams back to back (the first ones spread over "
        f"{setup['stagger_s']:.0f} s) with the openai SDK, pointed either straight at the simulator "
        "(`direct`, the baseline) or at the dev server (`gateway`); the arms alternate "
        f"({setup['order']}). Event-loop lag: a `GET /api/health` every {setup['probe_s']} s, in both arms; "
        "while the direct arm runs the dev server is idle, so the difference is what the streams make a "
        "request wait for the instance's loop. CPU: the dev server process's CPU seconds per wall second "
        "while the gateway arm ran.",
        "",
        "Measured on a 2-core machine with other load on it (see the load figures under Runs per "
        "benchmark): the simulator, the callers and the dev server share those cores, so absolute "
        "figures are pessimistic and noisy. What carries over to Azure is the comparison with the "
        "direct arm of the same level in the same run, and the instance's CPU per stream.",
        "",
    ]
    rows = []
    for c, lv in r["levels"].items():
        rows.append(
            [
                c,
                f"{lv['streams']['gateway']}/{lv['streams']['direct']}",
                lv["ttft_ms"]["direct"].get("p50"),
                lv["ttft"]["added_p50"],
                lv["ttft"]["added_p99"],
                lv["duration_ms"]["direct"].get("p50"),
                lv["duration"]["ratio_p50"],
                lv["duration"]["ratio_p99"],
                lv["tokens_per_s"]["gateway"],
                lv["throughput_ratio"],
                lv["instance_cpu_cores"],
                lv["instance_cpu_ms_per_stream"],
                lv["loop_lag_ms"]["added_p50"],
                lv["loop_lag_ms"]["added_p99"],
                f"{lv['errors']['gateway']}/{lv['errors']['direct']}",
                ", ".join(r["verdicts"][c]) or "fit",
            ]
        )
    lines += _table(
        [
            "streams at once",
            "streams (gw/direct)",
            "direct TTFT p50 ms",
            "TTFT added p50 ms",
            "TTFT added p99 ms",
            "direct stream p50 ms",
            "stream duration ratio p50",
            "ratio p99",
            "gateway tokens/s",
            "throughput ratio",
            "instance CPU (cores)",
            "instance CPU ms per stream",
            "loop lag added p50 ms",
            "loop lag added p99 ms",
            "errors (gw/direct)",
            "verdict",
        ],
        rows,
    )
    lines += [
        f"A level is fit when, against the direct arm of the same level: no errors, TTFT added p99 "
        f"<= {crit['max_ttft_added_p99_ms']:.0f} ms, stream duration ratio p50 <= "
        f"{crit['max_duration_ratio_p50']}, throughput ratio >= {crit['min_throughput_ratio']}, "
        f"loop lag added p99 <= {crit['max_loop_lag_added_p99_ms']:.0f} ms, and the instance uses at most "
        f"{crit['max_cpu_cores']} of a core (headroom for TLS to Azure OpenAI and to callers, the host's "
        "proxy in front of the worker, and bursts, none of which this machine reproduces). "
        f"This run: fit up to **{r['chosen_http_per_instance_concurrency']}** concurrent streams per "
        "instance (the highest level fit with every level below it fit).",
        "",
        *_concurrency_choice(r),
        "",
    ]
    return lines


def _host_json_max_concurrent_calls() -> Any:
    try:
        host = json.loads((ROOT / "host.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return host.get("extensions", {}).get("serviceBus", {}).get("maxConcurrentCalls")


def _concurrency_choice(r: dict[str, Any]) -> list[str]:
    """Why the deployed values are what they are, with this run's figures."""
    from .concurrency import DEPLOYED_PER_INSTANCE, FAST_TOKENS_PER_S

    chosen = r["chosen_http_per_instance_concurrency"]
    levels = r["levels"]
    pace = 1000.0 / r["setup"]["per_token_ms"]
    scale = FAST_TOKENS_PER_S / pace

    def figures(c: str) -> str:
        lv = levels[c]
        return (
            f"{c} streams: TTFT {_fmt(lv['ttft']['added_p99'])} ms p99 over direct, duration "
            f"x{_fmt(lv['duration']['ratio_p50'])}, throughput x{_fmt(lv['throughput_ratio'])}, "
            f"loop lag {_fmt(lv['loop_lag_ms']['added_p99'])} ms p99, "
            f"{_fmt(lv['instance_cpu_cores'])} of a core (about "
            f"{_fmt(lv['instance_cpu_cores'] * scale, 2)} at {FAST_TOKENS_PER_S:.0f} tokens/s)"
        )

    shown = [c for c in levels if int(c) in {DEPLOYED_PER_INSTANCE, chosen} or int(c) > chosen]
    return [
        "**The values deployed.** Flex Consumption's default per-instance HTTP concurrency for "
        "Python apps is 1: every call in flight takes a whole instance, so a burst of C streams "
        "needs C instances (a cold start each), `maximumInstanceCount` caps the calls in flight, "
        "and circuits, budgets and leases are spread over as many instances. The gateway is one "
        "event loop doing I/O, so one instance carries many streams; the question is how many "
        "before a caller notices. This run: " + "; ".join(figures(c) for c in shown) + ".",
        "",
        f"- HTTP: `perInstanceConcurrency` = **{DEPLOYED_PER_INSTANCE}** (the "
        "`perInstanceConcurrency` parameter in `infra/`, "
        "`functionAppConfig.scaleAndConcurrency.triggers.http`), not the highest fit level "
        f"({chosen} in this run): the instance's CPU grows with the chunks it relays per second, "
        f"and these streams ran at {pace:.0f} tokens/s. A model streaming {FAST_TOKENS_PER_S:.0f} "
        "tokens/s costs about three times as much per stream (projected linearly from the "
        "measured CPU, as above), which leaves the deployed level within half a core and the "
        "higher one well past it; the loop lag at the higher level is also near its limit. The "
        "value counts calls in flight, and a stream holds its slot for its whole length (up to "
        "minutes): it is a number of open streams per instance, not requests per second.",
        f"- Service Bus: `extensions.serviceBus.maxConcurrentCalls` in `host.json` = "
        f"**{_fmt(_host_json_max_concurrent_calls())}**. On Flex Consumption each non-HTTP function "
        "scales in its own group of instances (per-function scaling), so the backlog worker's "
        "slots do not share an instance with HTTP streams; a job's model call goes through the same "
        "access layer (streamed upstream by default), so the same per-instance figure applies. "
        "`host.json` does not turn on dynamic concurrency, so this is the fixed per-instance limit, "
        "and target-based scaling takes it as the target executions per instance. The drain, "
        "scale-out and chaos benchmarks above ran their workers at 16 too.",
        "- Sources (Microsoft Learn): *Concurrency in Azure Functions* (HTTP per-instance "
        "concurrency on Flex Consumption; Service Bus `maxConcurrentCalls` in `host.json` as the "
        "fixed per-instance limit), *Target-based scaling* (the Service Bus target executions per "
        "instance come from `host.json`), *Flex Consumption plan* (per-function scaling: the HTTP "
        "functions scale together, every other function in its own instances).",
        "- Measured here (dev server as the instance, simulator as Azure OpenAI): the figures "
        "above. Only in Azure: the host's proxy in front of the worker's HTTP server, TLS on both "
        "sides, the instance's own CPU (2,048 MB instances by default) and a real network. To "
        "check there, run the same streams at 16 and 64 against the deployed app and compare "
        "time to first token with a direct call to Azure OpenAI from the same client; raise the "
        "value if it holds.",
    ]


def _embeddings_load(r: dict[str, Any]) -> list[str]:
    lines = [
        "## Embeddings load (`bench/embeddings_load.py`)",
        "",
        f"`{r['summary']}`",
        "",
        f"One {r['inputs']}-input embeddings call ({r['parts']} upstream parts) through the dev server while "
        "small chats run back to back; once asking for floats, once for base64. RSS is the dev server's "
        f"process RSS: before the call, its peak, 0.5 s after, and settled {r['settle_s']} s later.",
        "",
    ]
    rows = []
    for encoding, m in r["encodings"].items():
        rss = m["rss_mib"]
        rows.append(
            [
                encoding,
                m["response_mb"],
                m["call_s"],
                m["chat_p99_ms"]["baseline"],
                m["chat_p99_ms"]["during"],
                m["p99_added_ms"],
                rss["before"],
                rss["peak"],
                rss["after"],
                rss["settled"],
            ]
        )
    lines += _table(
        [
            "encoding",
            "answer MB",
            "call s",
            "chat p99 before ms",
            "chat p99 during ms",
            "p99 added ms",
            "RSS before MiB",
            "peak",
            "after",
            "settled",
        ],
        rows,
    )
    return lines


def _chaos(r: dict[str, Any]) -> list[str]:
    lines = [
        "## 6. Chaos (`bench/chaos.py`, written with the backlog)",
        "",
        "The backlog's own chaos run (crashes, 429 storms, outages through the real path); its checks and counts "
        "are its own, reported here as it prints them. Then the app as a separate process (`python -m devserver`) "
        "killed with SIGKILL several times while jobs flow, counted from the job store's rows and the reply queue: "
        "lost jobs, duplicated terminal writes, and duplicate replies before and after the reply queue's duplicate "
        "detection.",
        "",
        f"`{r.get('summary', '')}`",
        "",
    ]
    if "error" in r:
        lines += [f"Failed: {r['error']}", ""]
    return lines


def _batchlane(r: dict[str, Any]) -> list[str]:
    setup = r["setup"]
    clock = setup["batch_clock"]
    lines = [
        "## 7. Batch lane (`bench/batchlane.py`)",
        "",
        f"The same {setup['jobs']:,} jobs (the drain benchmark's size: `max_tokens` {setup['max_tokens']}) "
        "through the standard lane and through the batch lane on the real backlog path (broker, worker and "
        f"timer pumps, Azurite, the simulator's Batch API), files of {setup['file_lines']:,} lines; then "
        f"{setup['fault_jobs']:,} batch-lane jobs while the simulator fails the first batch and expires the "
        "second with half its lines done. Cost from each job's recorded usage at "
        f"${setup['prices_per_1m']['input']}/${setup['prices_per_1m']['output']} per 1M input/output tokens, "
        f"batch at {setup['prices_per_1m']['batch_discount']:.0%}. The batch clock is scaled: 24 h = "
        f"{clock['window_s']:g} s (validating {clock['validating_s']:g} s, in progress "
        f"{clock['in_progress_s']:g} s + {clock['per_line_ms']:g} ms/line, finalizing {clock['finalizing_s']:g} s).",
        "",
        f"`{r['summary']}`",
        "",
    ]
    rows = []
    for name, run in r["runs"].items():
        rows.append(
            [
                name,
                run["jobs"],
                run["wall_s"],
                run["wall_batch_clock_h"],
                run["cost_per_1000_usd"],
                run["lanes"],
                run["standard_requests"],
                run["standard_quota_free"],
                run["lost"],
                run["dup"],
                ", ".join(f"{b['status']}({b['lines']})" for b in run["sim_batches"]) or "-",
            ]
        )
    lines += _table(
        [
            "run",
            "jobs",
            "wall s",
            "batch-clock h",
            "$ per 1,000 jobs",
            "finished in lane",
            "standard requests",
            "standard quota free",
            "lost",
            "dup",
            "batches (lines)",
        ],
        rows,
    )
    lines += [
        "",
        "\"Standard quota free\": the share of the standard deployment's TPM over the run's wall time that the run "
        "did not charge: what is left for interactive callers while the lane works. Lost: jobs not terminal "
        "or failed; dup: jobs with more than one terminal write.",
        "",
    ]
    return lines


def _ran_against(run: dict[str, Any]) -> list[str]:
    nproc = run.get("machine_before", {}).get("nproc")
    return [
        "**What every figure here ran against:** one machine with "
        f"{nproc if nproc is not None else 'an unrecorded number of'} CPU cores, everything on "
        "127.0.0.1: the project's Azure OpenAI simulator (`python -m aoai_sim`), the dev server "
        "(`python -m devserver`) where the HTTP path is measured, Azurite for storage and the "
        "project's Service Bus broker (`sbbroker`). Not Azure: no figure on this page was measured "
        "against Azure OpenAI, Azure Storage, Service Bus or a Functions host.",
        "",
    ]


def _banner(marked: dict[str, str]) -> list[str]:
    if not marked:
        return [
            "Every benchmark below ran on a clean commit that is in this tree's history.",
            "",
        ]
    return [
        f"> {RED_BADGE} — these benchmarks' figures come from a tree with uncommitted changes or a "
        "commit that is not in this tree's history, so they cannot be traced to the code here: "
        + "; ".join(f"`{n}` ({why})" for n, why in marked.items())
        + ".",
        "",
    ]


def _flagged(lines: list[str], why: str | None) -> list[str]:
    """A section's lines with the red marker under its heading when its figures are untraced."""
    if not why or not lines:
        return lines
    return [lines[0], "", f"{RED_BADGE}: {why}.", *lines[1:]]


def render_markdown(
    run: dict[str, Any], images: dict[str, str], results_path: str, root: Path = ROOT
) -> str:
    """The report's markdown. ``root``: the git tree each benchmark's recorded commit is checked
    against (clean and an ancestor of its HEAD, or marked ``NOT FROM THIS TREE`` in red)."""
    b = run["benchmarks"]
    marked = untraced(run, root)
    lines = [
        "# Benchmarks",
        "",
        *_ran_against(run),
        *_banner(marked),
        "> Generated by `make bench` (`python -m bench --all`) from `"
        + results_path
        + "`; do not edit by hand. "
        + (
            "Each benchmark's figures come from the run listed for it under Runs per benchmark."
            if run.get("merged")
            else "Every figure below comes from that one run."
        ),
        "",
        "## How to run",
        "",
        "```",
        "make bench                                # installs requirements-bench.txt, runs everything (about 110 min on 2 cores: scaleout ~50 with 3 runs of each K, batchlane ~35)",
        ".venv/bin/python -m bench --all           # the same in pieces: each benchmark merged as it ends; refuses a dirty tree",
        ".venv/bin/python -m bench --quick         # smoke run, small samples (bench/results/quick.tmp, report untouched)",
        ".venv/bin/python -m bench --only drain     # one benchmark (bench/results/partial.tmp)",
        ".venv/bin/python -m bench --only drain --merge  # one benchmark into latest.json and this page",
        ".venv/bin/python -m bench.report          # re-render this page from bench/results/latest.json",
        "```",
        "",
        "Everything runs on 127.0.0.1: the Azure OpenAI simulator (`python -m aoai_sim`) with per-benchmark configs "
        "on free ports, the dev server where the HTTP path is measured, and the peers in-process. LiteLLM is "
        "installed by the runner with `--no-deps` (see `bench/_peers.py`), telemetry off and the local cost map.",
        "",
        *_machine(run, marked),
        *_targets(run, marked),
        "## Summary lines",
        "",
        "```",
        *[
            (f"[{NOT_FROM_THIS_TREE}] " if name in marked else "") + honest_summary(name, res)
            for name, res in b.items()
        ],
        "```",
        "",
    ]
    # every section heads with the same honest summary line as the list above
    shown = {n: {**res, "summary": honest_summary(n, res)} for n, res in b.items()}
    sections = (
        ("overhead", _overhead),
        ("drain", _drain),
        ("scaleout", _scaleout),
        ("failover", _failover),
    )
    for name, fn in sections:
        if name in b and "error" not in shown[name] and "skipped" not in shown[name]:
            lines += _flagged(fn(shown[name], images), marked.get(name))
    if "coldstart" in b and "error" not in shown["coldstart"]:
        lines += _flagged(_coldstart(shown["coldstart"]), marked.get("coldstart"))
    if "memory" in b and "error" not in shown["memory"]:
        lines += _flagged(_memory(shown["memory"]), marked.get("memory"))
    if (
        "concurrency" in b
        and "error" not in shown["concurrency"]
        and "skipped" not in shown["concurrency"]
    ):
        lines += _flagged(_concurrency(shown["concurrency"]), marked.get("concurrency"))
    if "embeddings_load" in b and "error" not in shown["embeddings_load"]:
        lines += _flagged(_embeddings_load(shown["embeddings_load"]), marked.get("embeddings_load"))
    if "chaos" in b and "skipped" not in shown["chaos"]:
        lines += _flagged(_chaos(shown["chaos"]), marked.get("chaos"))
    if (
        "batchlane" in b
        and "error" not in shown["batchlane"]
        and "skipped" not in shown["batchlane"]
    ):
        lines += _flagged(_batchlane(shown["batchlane"]), marked.get("batchlane"))
    failed = [(n, r) for n, r in b.items() if "error" in r or "skipped" in r]
    if failed:
        lines += ["## Not measured in this run", ""]
        lines += [f"- `{n}`: {r.get('error') or r.get('skipped')}" for n, r in failed]
        lines += [""]
    return "\n".join(lines).rstrip() + "\n"


def write_report(
    run: dict[str, Any], results_path: Path | None = None, plots: bool = True
) -> list[Path]:
    """Write the plots and the markdown; return the paths written. ``plots=False`` keeps the
    plots already in ``docs/`` (rendered from the same results) and rewrites the markdown only."""
    DOCS.mkdir(exist_ok=True)
    b = run["benchmarks"]
    images: dict[str, str] = {}
    written: list[Path] = []
    for name, fn in (
        ("overhead", plot_overhead),
        ("drain", plot_drain),
        ("failover", plot_failover),
        ("scaleout", plot_scaleout),
    ):
        if name in b and "error" not in b[name] and "skipped" not in b[name]:
            path = DOCS / f"bench-{name}.png"
            if plots:
                fn(b[name], path)
                written.append(path)
            if path.exists():
                images[name] = path.name
    rel = (
        str(results_path.relative_to(ROOT))
        if results_path and results_path.is_relative_to(ROOT)
        else str(results_path)
    )
    REPORT.write_text(render_markdown(run, images, rel), encoding="utf-8")
    return [REPORT, *written]


def _main(argv: list[str]) -> int:
    """``python -m bench.report [results.json] [--markdown-only]`` (``--markdown-only``: keep the
    plots in ``docs/``, e.g. where matplotlib is not installed)."""
    plots = "--markdown-only" not in argv
    args = [a for a in argv if a != "--markdown-only"]
    path = Path(args[0]) if args else ROOT / "bench" / "results" / "latest.json"
    run = json.loads(path.read_text(encoding="utf-8"))
    for p in write_report(run, results_path=path.resolve(), plots=plots):
        print(p)
    return 0


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
