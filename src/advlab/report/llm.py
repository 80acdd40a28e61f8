"""Figures of LLM runs: ``eval_figures`` for ``advlab eval llm`` (attack figures follow below)."""

from __future__ import annotations

from pathlib import Path
from typing import Any


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
    from advlab.pipelines.eval_llm import compute_metrics

    plt = _plt()
    fig_dir = Path(run_dir) / "figures"
    fig_dir.mkdir(parents=True, exist_ok=True)
    judge = metrics.get("judge") or "refusal"
    m = compute_metrics(records, judge) if records else metrics
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
