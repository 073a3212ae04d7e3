"""matplotlib figures for the report (Agg backend, PNG, no display needed)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

__all__ = ["plot_drain", "plot_failover", "plot_overhead"]

_COLORS = {
    "gateway": "#1f77b4",
    "gateway_json": "#17becf",
    "just_retry": "#d62728",
    "fallback": "#ff7f0e",
    "litellm": "#2ca02c",
    "sdk": "#7f7f7f",
    "sdk_raw": "#bcbd22",
    "sdk_raw_stream": "#8c564b",
    "sdk_dated": "#9467bd",
}


def _plt() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_overhead(result: dict[str, Any], path: Path) -> None:
    plt = _plt()
    lat = result["core"]["latency_ms"]
    arms = list(lat)
    fig, ax = plt.subplots(figsize=(8, 4))
    width = 0.38
    xs = range(len(arms))
    ax.bar(
        [x - width / 2 for x in xs],
        [lat[a]["p50"] for a in arms],
        width,
        label="p50",
        color=[_COLORS.get(a, "#333") for a in arms],
    )
    ax.bar(
        [x + width / 2 for x in xs],
        [lat[a]["p99"] for a in arms],
        width,
        label="p99",
        color=[_COLORS.get(a, "#333") for a in arms],
        alpha=0.45,
    )
    for x, a in zip(xs, arms):
        ax.annotate(
            f"{lat[a]['p50']:.2f}",
            (x - width / 2, lat[a]["p50"]),
            ha="center",
            va="bottom",
            fontsize=8,
        )
        ax.annotate(
            f"{lat[a]['p99']:.2f}",
            (x + width / 2, lat[a]["p99"]),
            ha="center",
            va="bottom",
            fontsize=8,
        )
    ax.set_xticks(list(xs), arms)
    ax.set_ylabel("ms per call (zero-latency simulator)")
    ax.set_title(
        f"Core overhead, {result['core']['rounds']} interleaved rounds (solid p50, light p99)"
    )
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_drain(result: dict[str, Any], path: Path) -> None:
    plt = _plt()
    setup = result["setup"]
    minute = setup["minute_s"]
    quota_rate = setup["tpm_per_region"] * len(setup["regions"]) / minute
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(9, 7), sharex=True)
    longest = 0.0
    for name, s in result["scenarios"].items():
        if "error" in s or not s.get("cumulative"):
            continue
        color = _COLORS.get(name, "#333")
        rates = [w / minute for w in s.get("tokens_per_full_minute") or []]
        edges = [k * minute for k in range(len(rates))]
        if edges:
            xs = edges + [edges[-1] + minute]
            top.step(
                xs,
                rates + [rates[-1]],
                where="post",
                color=color,
                label=name,
                linewidth=1.8,
                linestyle="--" if name == "fallback" else "-",
            )
        points = [p for p in s["cumulative"] if p[0] <= s["wall_s"] + 0.25]
        ts = [0.0] + [p[0] for p in points]
        vs = [0.0] + [p[1] for p in points]
        style = "--" if name == "fallback" else "-"  # (a) and (b) often coincide: keep both visible
        bottom.plot(ts, vs, color=color, label=name, linewidth=1.5, linestyle=style)
        longest = max(longest, s["wall_s"])
    top.axhline(quota_rate, color="black", linestyle="--", linewidth=1, label="combined quota")
    top.axhline(
        quota_rate / 2, color="black", linestyle=":", linewidth=1, label="one region's quota"
    )
    top.set_ylabel("tokens/s charged\n(mean per complete quota minute)")
    top.set_title(
        f"Drain of {setup['jobs']} jobs: throughput against the quota "
        f"(quota minute = {minute:g} s, {setup['tpm_per_region']} TPM per region)"
    )
    top.legend(fontsize=8, loc="upper right")
    k_max = int(longest // minute) + 1
    stair_t, stair_v = [], []
    for k in range(k_max + 1):
        stair_t += [k * minute, (k + 1) * minute]
        stair_v += [(k + 1) * quota_rate * minute] * 2
    bottom.plot(
        stair_t,
        stair_v,
        color="black",
        linestyle="--",
        linewidth=1,
        label="combined quota allowance",
    )
    bottom.set_xlim(0, longest * 1.02 if longest else 1)
    bottom.set_ylim(0, max(stair_v[: 2 * (int(longest // minute) + 1)] or [1]) * 1.05)
    bottom.set_ylabel("tokens charged (cumulative)")
    bottom.set_xlabel("seconds since the backlog started")
    bottom.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_failover(result: dict[str, Any], path: Path) -> None:
    plt = _plt()
    contenders = {n: c for n, c in result["contenders"].items() if "error" not in c}
    if not contenders:
        return
    fig, axes = plt.subplots(
        len(contenders), 1, figsize=(9, 2.6 * len(contenders)), sharex=True, squeeze=False
    )
    for ax, (name, c) in zip(axes[:, 0], contenders.items()):
        tl = c["timeline_s"]
        ph = result["setup"]["phases_s"]
        hang_at = tl["fault_at"] + ph["reset"]
        ax.axvspan(tl["fault_at"], hang_at, color="orange", alpha=0.18, label="primary resets")
        ax.axvspan(hang_at, tl["recover_at"], color="red", alpha=0.12, label="primary hangs")
        ok = [(t, ms) for t, ms, err in c["latency_series"] if not err]
        bad = [(t, ms) for t, ms, err in c["latency_series"] if err]
        if ok:
            ax.scatter(
                [p[0] for p in ok],
                [max(p[1], 0.1) for p in ok],
                s=4,
                color=_COLORS.get(name, "#333"),
                label="call",
            )
        if bad:
            ax.scatter(
                [p[0] for p in bad],
                [max(p[1], 0.1) for p in bad],
                s=18,
                marker="x",
                color="red",
                label="caller error",
            )
        ax.set_yscale("log")
        ax.set_ylabel("latency ms")
        ax.set_title(
            f"{name}: {c['caller_errors_during_faults']} caller errors, {c['dead_region_requests']} requests to the "
            f"dead region, fail-back {c['failback_s']} s",
            fontsize=9,
        )
        ax.legend(fontsize=7, loc="upper right")
    axes[-1, 0].set_xlabel("seconds (request start)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
