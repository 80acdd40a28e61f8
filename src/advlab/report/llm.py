"""Figures of LLM runs: ``eval_figures`` for ``advlab eval llm`` (attack figures follow below)."""

from __future__ import annotations

import statistics
from pathlib import Path
from typing import Any

from advlab.metrics import attack_llm_metrics


def _plt() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


# ---------------------------------------------------------------------------------------------
# eval-llm


def eval_figures(
    run_dir: Path,
    manifest: dict[str, Any],
    config: dict[str, Any],
    records: list[dict[str, Any]],
    metrics: dict[str, Any],
) -> list[Path]:
    """``eval_rates.png``: refusal / utility / over-refusal with counts; ``eval_categories.png``:
    the same rate per category (refusal for harmful and harmless, exact match for tasks)."""
    plt = _plt()
    fig_dir = Path(run_dir) / "figures"
    fig_dir.mkdir(parents=True, exist_ok=True)
    m = metrics
    paths: list[Path] = []

    bars = [
        (
            "refusal on harmful",
            m.get("refusal_rate"),
            m.get("n_refused_harmful", 0),
            m.get("n_harmful", 0),
            "#cf222e",
        ),
        (
            "utility (task exact match)",
            m.get("utility"),
            m.get("n_correct_task", 0),
            m.get("n_task", 0),
            "#1a7f37",
        ),
        (
            "over-refusal on harmless",
            m.get("over_refusal"),
            m.get("n_refused_harmless", 0),
            m.get("n_harmless", 0),
            "#9a6700",
        ),
    ]
    bars = [b for b in bars if b[1] is not None]
    fig, ax = plt.subplots(figsize=(7, 4))
    xs = range(len(bars))
    ax.bar(xs, [100 * b[1] for b in bars], color=[b[4] for b in bars])
    for x, (_, rate, k, n, _) in zip(xs, bars):
        ax.text(x, 100 * rate + 1.5, f"{100 * rate:.1f}%\n({k}/{n})", ha="center", va="bottom", fontsize=9)
    ax.set_xticks(list(xs), [b[0] for b in bars])
    ax.set_ylim(0, 119)
    ax.set_ylabel("rate (%)")
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
        fig, ax = plt.subplots(figsize=(7, max(2.5, 0.28 * len(names) + 1)))
        colors = {"harmful": "#cf222e", "harmless": "#9a6700", "task": "#1a7f37"}
        vals = [100 * per_cat[k]["rate"] for k in names]
        ax.barh(range(len(names)), vals, color=[colors.get(k.split("/")[0], "#555") for k in names])
        ax.set_yticks(range(len(names)), [f"{k} (n={per_cat[k]['n']})" for k in names], fontsize=8)
        ax.invert_yaxis()
        ax.set_xlim(0, 105)
        ax.set_xlabel("rate (%): refusal for harmful / harmless, exact match for tasks")
        ax.set_title("per category")
        fig.tight_layout()
        p = fig_dir / "eval_categories.png"
        fig.savefig(p, dpi=110)
        plt.close(fig)
        paths.append(p)
    return paths


# ---------------------------------------------------------------------------------------------
# attack-llm figures go below this line.


def attack_figures(
    run_dir: Path, manifest: dict[str, Any], config: dict[str, Any], records: list[dict[str, Any]],
    metrics: dict[str, Any],
) -> list[Path]:
    """``attack_loss.png``: target loss per step (each behaviour thin, median bold; successes green);
    ``attack_asr.png``: ASR per judge with the median budget (steps, forward/backward passes, seconds).
    Example completions are shown in the HTML report through the records."""
    plt = _plt()
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
        ax.plot([], [], color="#1a7f37", label="jailbroken (default judge)")
        ax.plot([], [], color="#cf222e", label="not jailbroken")
        ax.set_xlabel("attack step")
        ax.set_ylabel("target loss (cross-entropy, nats/token)")
        ax.set_title(f"{method} on {model}\ntarget loss per step ({len(curves)} behaviours)", fontsize=10)
        ax.legend(fontsize=8)
        fig.tight_layout()
        p = fig_dir / "attack_loss.png"
        fig.savefig(p, dpi=110)
        plt.close(fig)
        paths.append(p)

    m = attack_llm_metrics(records, metrics.get("default_judge") or next(iter(records[0].get("judges", {"?": 0}))))
    by = m.get("asr_by_judge") or {}
    if by:
        fig, ax = plt.subplots(figsize=(6.5, 3.6))
        names = list(by)
        vals = [100 * (by[k] or 0) for k in names]
        bars = ax.bar(names, vals, color="#cf222e")
        for bar, v in zip(bars, vals):
            ax.text(bar.get_x() + bar.get_width() / 2, v + 1, f"{v:.0f}%", ha="center", fontsize=9)
        ax.set_ylim(0, 110)
        ax.set_ylabel("attack success rate (%)")
        b = m["budget"]

        def med(k: str) -> str:
            v = b[k]["median"]
            return "n/a" if v is None else f"{v:.3g}"

        ax.set_title(f"{method} on {model}: ASR by judge (n={m['n']})", fontsize=10)
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
