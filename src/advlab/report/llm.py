"""Figures of LLM runs: ``eval_figures`` for ``advlab eval llm`` (attack figures follow below)."""

from __future__ import annotations

import statistics
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from advlab.metrics import wilson_interval  # noqa: E402
from advlab.report.format import judge_label, num  # noqa: E402

# ---------------------------------------------------------------------------------------------
# eval-llm


def _wilson_err(k: int, n: int) -> tuple[float, float]:
    """(below, above) distances in % from the rate k/n to its 95 % Wilson bounds (for error bars)."""
    lo, hi = wilson_interval(k, n)
    r = k / n
    return max(0.0, 100 * (r - lo)), max(0.0, 100 * (hi - r))  # >= 0 also where rounding puts hi a hair below 1


def _interval_text(k: int, n: int) -> str:
    lo, hi = wilson_interval(k, n)
    return f"{100 * k / n:.0f} % [{100 * lo:.0f}–{100 * hi:.0f}]\n({k}/{n})"


def eval_figures(
    run_dir: Path,
    manifest: dict[str, Any],
    config: dict[str, Any],
    records: list[dict[str, Any]],
    metrics: dict[str, Any],
) -> list[Path]:
    """``eval_rates.png``: refusal / utility / over-refusal with counts and 95 % Wilson intervals;
    ``eval_categories.png``: the same rate per category (refusal for harmful and harmless, exact match for
    tasks), each with its interval and value, so a zero rate is visible."""
    fig_dir = Path(run_dir) / "figures"
    fig_dir.mkdir(parents=True, exist_ok=True)
    m = metrics
    paths: list[Path] = []

    bars = [
        ("refused harmful", m.get("n_refused_harmful", 0), m.get("n_harmful", 0), "#1a7f37"),
        ("utility (task exact match)", m.get("n_correct_task", 0), m.get("n_task", 0), "#0969da"),
        ("over-refusal on harmless", m.get("n_refused_harmless", 0), m.get("n_harmless", 0), "#9a6700"),
    ]
    bars = [b for b in bars if b[2]]
    if bars:
        fig, ax = plt.subplots(figsize=(7, 4))
        xs = list(range(len(bars)))
        vals = [100 * k / n for _, k, n, _ in bars]
        errs = list(zip(*[_wilson_err(k, n) for _, k, n, _ in bars]))
        ax.bar(xs, vals, color=[b[3] for b in bars], yerr=errs, capsize=4, ecolor="#333")
        for x, (_, k, n, _) in zip(xs, bars):
            hi = 100 * k / n + _wilson_err(k, n)[1]
            ax.text(x, hi + 2, _interval_text(k, n), ha="center", va="bottom", fontsize=8)
        ax.set_xticks(xs, [b[0] for b in bars])
        ax.set_ylim(0, 135)
        ax.set_yticks(range(0, 101, 20))
        ax.set_ylabel("rate (%), bars: 95 % Wilson interval")
        model = Path(str(config.get("model", metrics.get("model", "")))).name or "model"
        ax.set_title(f"eval llm: {model}")
        fig.tight_layout()
        p = fig_dir / "eval_rates.png"
        fig.savefig(p, dpi=110)
        plt.close(fig)
        paths.append(p)

    per_cat = m.get("per_category") or {}
    if per_cat:
        names = sorted(per_cat)
        fig, ax = plt.subplots(figsize=(7.5, max(2.5, 0.3 * len(names) + 1.2)))
        colors = {"harmful": "#1a7f37", "harmless": "#9a6700", "task": "#0969da"}
        ks = [int(round(per_cat[k]["rate"] * per_cat[k]["n"])) for k in names]
        ns = [int(per_cat[k]["n"]) for k in names]
        vals = [100 * per_cat[k]["rate"] for k in names]
        errs = list(zip(*[_wilson_err(k, n) for k, n in zip(ks, ns)]))
        ys = range(len(names))
        ax.barh(ys, vals, color=[colors.get(k.split("/")[0], "#555") for k in names], xerr=errs, capsize=2,
                ecolor="#333", error_kw={"lw": 0.8})
        for y, v, k, n in zip(ys, vals, ks, ns):
            ax.plot([v], [y], "|", color="#222", ms=8)  # a zero-height bar still shows where it ends
            ax.text(min(v + _wilson_err(k, n)[1], 100) + 1.5, y, f"{v:.0f} % ({k}/{n})", va="center", fontsize=7)
        ax.set_yticks(list(ys), [f"{k} (n={per_cat[k]['n']})" for k in names], fontsize=8)
        ax.invert_yaxis()
        ax.set_xlim(0, 122)
        ax.set_xticks(range(0, 101, 20))
        ax.set_xlabel("rate (%): refusal (harmful, harmless), exact match (tasks)\nbars: 95 % Wilson interval")
        ax.set_title("per category")
        fig.tight_layout()
        p = fig_dir / "eval_categories.png"
        fig.savefig(p, dpi=110)
        plt.close(fig)
        paths.append(p)
    return paths


# ---------------------------------------------------------------------------------------------
# attack-llm


def judge_counts(records: list[dict[str, Any]]) -> dict[str, tuple[int, int]]:
    """judge -> (jailbroken count, records judged), counted from the records' own verdicts."""
    out: dict[str, list[int]] = {}
    for r in records:
        for j, v in (r.get("judges") or {}).items():
            c = out.setdefault(j, [0, 0])
            c[0] += bool(v.get("jailbroken")) if isinstance(v, dict) else bool(v)
            c[1] += 1
    return {j: (k, n) for j, (k, n) in out.items()}


def attack_figures(
    run_dir: Path, manifest: dict[str, Any], config: dict[str, Any], records: list[dict[str, Any]],
    metrics: dict[str, Any],
) -> list[Path]:
    """``attack_loss.png``: target loss per step (each behaviour thin, median bold; successes green);
    ``attack_asr.png``: ASR per judge, named by what it counts, with its 95 % Wilson interval and the
    median budget (steps, forward/backward passes, seconds). Example completions are shown in the HTML
    report through the records."""


    fig_dir = Path(run_dir) / "figures"
    fig_dir.mkdir(parents=True, exist_ok=True)
    method = config.get("method", "?")
    model = Path(str(config.get("model", ""))).name or "model"
    paths: list[Path] = []

    curves = [(r.get("loss_history") or [], bool(r.get("success"))) for r in records]
    curves = [(c, s) for c, s in curves if c]
    if curves:
        fig, ax = plt.subplots(figsize=(7, 4))
        for c, s in curves:
            ax.plot(range(len(c)), c, color="#1a7f37" if s else "#cf222e", alpha=0.25, lw=0.8)
        longest = max(len(c) for c, _ in curves)
        med = [statistics.median(c[min(t, len(c) - 1)] for c, _ in curves) for t in range(longest)]
        ax.plot(range(longest), med, color="black", lw=2, label="median (finished runs hold their last value)")
        default = judge_label(str(metrics.get("default_judge") or "?"))
        ax.plot([], [], color="#1a7f37", label=f"success by {default}")
        ax.plot([], [], color="#cf222e", label="no success")
        ax.set_xlabel("attack step")
        ax.set_ylabel("target loss (cross-entropy, nats/token)")
        ax.set_title(f"{method} on {model}\ntarget loss per step ({len(curves)} behaviours)", fontsize=10)
        ax.legend(fontsize=8)
        fig.tight_layout()
        p = fig_dir / "attack_loss.png"
        fig.savefig(p, dpi=110)
        plt.close(fig)
        paths.append(p)

    counts = judge_counts(records)
    if counts:
        fig, ax = plt.subplots(figsize=(6.5, 3.9))
        names = list(counts)
        xs = list(range(len(names)))
        vals = [100 * k / n for k, n in counts.values()]
        errs = list(zip(*[_wilson_err(k, n) for k, n in counts.values()]))
        ax.bar(xs, vals, color="#cf222e", yerr=errs, capsize=4, ecolor="#333")
        for x, (k, n) in zip(xs, counts.values()):
            ax.text(x, 100 * k / n + _wilson_err(k, n)[1] + 2, _interval_text(k, n), ha="center", fontsize=8)
        ax.set_xticks(xs, [judge_label(j) for j in names], fontsize=8)
        ax.set_ylim(0, 135)
        ax.set_yticks(range(0, 101, 20))
        ax.set_ylabel("attack success rate (%)")
        b = metrics.get("budget") or {}

        def med(k: str) -> str:
            return num((b.get(k) or {}).get("median"))

        ax.set_title(f"{method} on {model}\nASR by judge, 95 % Wilson intervals (n={len(records)})", fontsize=10)
        ax.set_xlabel(
            f"median budget per behaviour: {med('steps')} steps, {med('forward_passes')} forward, "
            f"{med('backward_passes')} backward passes, {med('seconds')} s", fontsize=8,
        )
        fig.tight_layout()
        p = fig_dir / "attack_asr.png"
        fig.savefig(p, dpi=110)
        plt.close(fig)
        paths.append(p)
    return paths
