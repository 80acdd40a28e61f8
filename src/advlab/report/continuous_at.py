"""Figures of an ``advlab reproduce continuous-at`` run (read from the run directory and its sub-runs):
ASR against utility per model, the training curves of CAT, CAPO and R2D2, and robustness against ε."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from advlab.metrics import wilson_interval  # noqa: E402
from advlab.report.format import judge_label  # noqa: E402
from advlab.report.train_llm import TERMS  # noqa: E402
from advlab.runs import load_run  # noqa: E402

MARKERS = {"gcg": "o", "embedding": "s", "autodan": "^"}  # by attack family: gcg_2x is a gcg, embedding_4x …


def _err(rate: float | None, n: int | None) -> tuple[float, float, float]:
    """(rate, lower error, upper error) with the 95 % Wilson interval of round(rate·n) of n."""
    if rate is None or not n:
        return float("nan"), 0.0, 0.0
    lo, hi = wilson_interval(round(rate * n), n)
    return rate, rate - lo, hi - rate


def _save(fig: Any, run_dir: Path, name: str, tight: bool = True) -> Path:
    out = run_dir / "figures" / name
    out.parent.mkdir(parents=True, exist_ok=True)
    if tight:
        fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def asr_vs_utility(run_dir: Path, metrics: dict[str, Any]) -> Path:
    """One panel per attack (the default budgets on top, the stronger ones of the gradient-masking check
    below), one point per model: ASR (default judge filled, "no refusal phrase" hollow) against utility,
    Wilson 95 % intervals; the attack's budget in the panel title. Models sharing a utility are dodged
    sideways by 0.01 so that none hides another."""
    rows = metrics.get("table", [])
    groups = metrics.get("attacks") or {"default": [k.removeprefix("budget_") for k in (rows[0] if rows else {})
                                                    if k.startswith("budget_")]}
    default = list(groups.get("default", []))
    attacks = default + [a for a in groups.get("stronger", []) if any(r.get(f"asr_{a}") is not None for r in rows)]
    n_rows = 1 if len(attacks) <= 3 else 2
    fig, grid = plt.subplots(n_rows, 3, figsize=(15, 4.3 * n_rows + 0.8), sharey=True, squeeze=False)
    axes = list(grid.flat)
    for ax in axes[len(attacks):]:
        ax.set_visible(False)
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    judge, other = judge_label(metrics.get("judge") or "compliance"), judge_label("refusal")
    dodge = [0.01 * (i - (len(rows) - 1) / 2) for i in range(len(rows))]
    utils = [r["utility"] for r in rows if r.get("utility") is not None]
    x_lo = max(0.0, math.floor(10 * (min(utils) - 0.1)) / 10) if utils else 0.0  # zoom in on the models
    for ax, a in zip(axes, attacks):
        marker = MARKERS.get(a.split("_")[0], "o")
        for i, row in enumerate(rows):
            u, ulo, uhi = _err(row.get("utility"), row.get("n_eval"))
            y, ylo, yhi = _err(row.get(f"asr_{a}"), row.get("n_attack"))
            ax.errorbar(u + dodge[i], y, xerr=[[ulo], [uhi]], yerr=[[ylo], [yhi]], marker=marker,
                        color=colors[i % 10], capsize=3, ls="none", label=row["model"])
            y, ylo, yhi = _err(row.get(f"asr_no_refusal_{a}"), row.get("n_attack"))
            ax.errorbar(u + dodge[i], y, yerr=[[ylo], [yhi]], marker=marker, mfc="none", color=colors[i % 10],
                        capsize=2, ls="none", alpha=0.6)
        budget = next((r[f"budget_{a}"] for r in rows if r.get(f"budget_{a}")), "")
        kind = "default budget" if a in default else "stronger budget"
        ax.set(xlabel="utility (exact match, held-out tasks)", title=f"{a} ({kind})\n{budget}",
               xlim=(x_lo - 0.02, 1.02), ylim=(-0.05, 1.05))
        ax.grid(alpha=0.3)
    for ax in grid[:, 0]:
        ax.set_ylabel(f"ASR, n = {rows[0].get('n_attack') if rows else '?'}")
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=len(labels) or 1, frameon=False,
               title=f"filled: {judge}; hollow: {other}; bars: 95 % Wilson intervals")
    fig.suptitle(f"ASR against utility on {metrics.get('behaviors')}")
    fig.tight_layout(rect=(0, 0.09 / n_rows, 1, 1))
    return _save(fig, run_dir, "asr_vs_utility.png", tight=False)


def training_curves(run_dir: Path) -> Path | None:
    """The loss terms and the attack's final loss per step of each trained model's ``train-llm`` sub-run."""
    runs = [(m, run_dir / "models" / m) for m in ("cat", "capo", "r2d2")]
    runs = [(m, p) for m, p in runs if (p / "manifest.json").is_file()]
    if not runs:
        return None
    fig, axes = plt.subplots(1, len(runs), figsize=(5 * len(runs), 4), squeeze=False)
    for ax, (m, path) in zip(axes[0], runs):
        recs = sorted(load_run(path)[2], key=lambda r: int(str(r["id"]).split("-")[-1]))
        steps = [int(str(r["id"]).split("-")[-1]) for r in recs]
        for k in TERMS:
            ys = [r.get(k) for r in recs]
            if any(y is not None for y in ys):
                ax.plot(steps, [float("nan") if y is None else y for y in ys], marker=".", label=k)
        ax.set(xlabel="step", ylabel="loss", title=f"{m}: loss terms (raw, before cutoffs)")
        ax.legend(fontsize=8)
    return _save(fig, run_dir, "training_curves.png")


def robustness_vs_eps(run_dir: Path, metrics: dict[str, Any]) -> Path | None:
    """CAT trained at each radius ε: the embedding attack's ASR and the utility, Wilson 95 % intervals;
    the untrained base as dashed lines."""
    sweep = metrics.get("sweep") or []
    if not sweep:
        return None
    fig, ax = plt.subplots(figsize=(10, 4.5))
    eps = [p["eps"] for p in sweep]
    judge = judge_label(metrics.get("judge") or "compliance")
    for key, n_key, label, color in (("asr", "n_attack", f"embedding attack: {judge}", "tab:red"),
                                     ("asr_no_refusal", "n_attack", f"embedding attack: {judge_label('refusal')}",
                                      "tab:orange"),
                                     ("utility", "n_task", "utility", "tab:blue")):
        pts = [_err(p.get(key), p.get(n_key)) for p in sweep]
        ax.errorbar(eps, [p[0] for p in pts], yerr=[[p[1] for p in pts], [p[2] for p in pts]], marker="o",
                    color=color, capsize=3, label=label)
    base = next((r for r in metrics.get("table", []) if r["model"] == "base"), {})
    for key, color in (("asr_embedding", "tab:red"), ("asr_no_refusal_embedding", "tab:orange"),
                       ("utility", "tab:blue")):
        if base.get(key) is not None:
            ax.axhline(base[key], color=color, ls="--", lw=1, label=f"base {key}")
    budget = base.get("budget_embedding", "")
    ax.set(xlabel="CAT training radius ε (relative per-token L2)", ylabel="rate", ylim=(-0.05, 1.05),
           title=f"robustness vs ε (attack: {budget})")
    ax.legend(fontsize=8, loc="center left", bbox_to_anchor=(1.01, 0.5))
    return _save(fig, run_dir, "robustness_vs_eps.png")


def reproduce_figures(run_dir: Path, manifest: dict[str, Any], config: dict[str, Any],
                      records: list[dict[str, Any]], metrics: dict[str, Any]) -> list[Path]:
    figs = [asr_vs_utility(run_dir, metrics), training_curves(run_dir), robustness_vs_eps(run_dir, metrics)]
    return [f for f in figs if f is not None]
