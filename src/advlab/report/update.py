"""Figures of model-update runs (jobs ``check-update``, ``update-classifier``, ``reproduce-rcat``).

- ``flip_matrix.png``: how samples move between states from the old to the new model, each state being
  *wrong*, *correct, not robust* or *robust* (correct and its own white-box attack fails). Cells above the
  diagonal are improvements, cells below are regressions (negative flips, clean or robust).
- ``flip_rates.png`` (update runs): NFR, RNFR and S-NFR against the old model for the new model and each
  fine-tuned candidate.
- ``pair<K>_flip_rates.png`` (recipe): per pair, the flip rates' mean ± std over seeds with every seed's
  value, and each method's per-seed difference to plain adversarial fine-tuning.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.patches import Patch  # noqa: E402

from advlab.metrics import wilson_interval  # noqa: E402

STATES = ("wrong", "correct,\nnot robust", "robust")




def flip_counts(records: list[dict[str, Any]]) -> list[list[int]]:
    """3×3 counts [old state][new state], state = 0 wrong, 1 correct but not robust, 2 robust."""
    counts = [[0, 0, 0] for _ in range(3)]
    for r in records:
        if "old_correct" not in r:
            continue
        o = 2 if r["old_robust"] else int(bool(r["old_correct"]))
        n = 2 if r["new_robust"] else int(bool(r["new_correct"]))
        counts[o][n] += 1
    return counts


def draw_flip_matrix(counts: list[list[int]], path: Path, title: str, new_label: str = "new model") -> Path:
    total = max(sum(map(sum, counts)), 1)
    fig, ax = plt.subplots(figsize=(5.4, 4.6))
    im = ax.imshow(counts, cmap="Blues")
    for i in range(3):
        for j in range(3):
            c = counts[i][j]
            colour = "white" if c > 0.6 * max(map(max, counts)) else ("#b00020" if j < i and c else "black")
            ax.text(
                j, i, f"{c}\n({100 * c / total:.1f}%)", ha="center", va="center", color=colour, fontsize=9
            )
    ax.set_xticks(range(3), STATES)
    ax.set_yticks(range(3), STATES)
    ax.set_xlabel(f"{new_label}: state of the sample")
    ax.set_ylabel("old model: state of the sample")
    ax.set_title(title, fontsize=10)
    fig.colorbar(im, ax=ax, label="samples")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def draw_flip_rates(rows: list[dict[str, Any]], path: Path, title: str, n: int | None = None) -> Path:
    """Grouped bars: NFR, RNFR, S-NFR (in %) per model row, each labelled with its value; with ``n`` (test
    samples) also its 95 % Wilson interval. Legend patches are drawn apart, so a rate of 0 still shows."""


    names = [str(r["model"]) for r in rows]
    keys = (("nfr", "NFR", "#0969da"), ("rnfr", "RNFR", "#cf222e"), ("s_nfr", "S-NFR", "#9a6700"))
    width = 0.8 / len(keys)
    fig, ax = plt.subplots(figsize=(max(5.0, 1.1 * len(rows) + 2), 4.4))
    top = 0.0
    for k, (key, _, colour) in enumerate(keys):
        xs = [i + (k - 1) * width for i in range(len(rows))]
        vals = [100 * float(r.get(key) or 0.0) for r in rows]
        err = None
        if n:
            bounds = [wilson_interval(int(round(v * n / 100)), n) for v in vals]
            err = [[max(0.0, v - 100 * lo) for v, (lo, _) in zip(vals, bounds)],
                   [max(0.0, 100 * hi - v) for v, (_, hi) in zip(vals, bounds)]]
        ax.bar(xs, vals, width, color=colour, yerr=err, capsize=2, ecolor="#333", error_kw={"lw": 0.8})
        for i, (x, v) in enumerate(zip(xs, vals)):
            y = v + (err[1][i] if err else 0)
            top = max(top, y)
            ax.text(x, y + 0.3, f"{v:.1f}", ha="center", va="bottom", fontsize=7)
    ax.set_ylim(0, max(1.0, top) * 1.25)
    handles = [Patch(facecolor=c, label=lab) for _, lab, c in keys]
    for i, r in enumerate(rows):
        if r.get("selected"):
            ax.annotate(
                "selected",
                (i, 0),
                xytext=(0, -28),
                textcoords="offset points",
                ha="center",
                fontsize=7,
                color="#1a7f37",
            )
    ax.set_xticks(range(len(rows)), names, rotation=25, ha="right", fontsize=8)
    ax.set_ylabel("flip rate vs the old model (% of test samples)")
    ax.set_title(title + (f"\n95 % Wilson intervals, n = {n}" if n else ""), fontsize=10)
    ax.legend(handles=handles, fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def update_figures(run_dir, manifest, config, records, metrics) -> list[Path]:
    """Flip matrix for ``check-update`` and ``update-classifier``; flip-rate bars for update runs."""
    run_dir = Path(run_dir)
    figs = run_dir / "figures"
    figs.mkdir(parents=True, exist_ok=True)
    eps, attack = metrics.get("eps"), metrics.get("attack", "attack")
    out: list[Path] = []
    samples = [r for r in records if "old_correct" in r]
    if samples:
        label = (
            "new model"
            if manifest.get("job") == "check-update"
            else f"updated ({metrics.get('method', '?')})"
        )
        out.append(
            draw_flip_matrix(
                flip_counts(samples),
                figs / "flip_matrix.png",
                f"Sample states, old → new ({attack}, ε = {eps})",
                label,
            )
        )
    table = [r for r in metrics.get("table", []) if r.get("role") != "old"]
    if table:
        out.append(
            draw_flip_rates(
                table, figs / "flip_rates.png", f"Negative flips vs the old model ({attack}, ε = {eps})",
                n=metrics.get("n"),
            )
        )
    return out


RECIPE_RATES = (("nfr", "NFR"), ("rnfr", "RNFR"), ("s_nfr", "S-NFR"))


def recipe_figures(run_dir, manifest, config, records, metrics) -> list[Path]:
    """``reproduce-rcat``, one figure per pair: left, each model's NFR, RNFR and S-NFR against the old model
    (bar = mean over seeds, line = ± std, dots = single seeds; the new model before the update and each
    method's selected setting); right, each method minus AT per seed (below 0: fewer flips than AT)."""
    figs = Path(run_dir) / "figures"
    figs.mkdir(parents=True, exist_ok=True)
    rows = [r for r in records if r.get("kind") == "row"]
    out = []
    for k, p in enumerate(metrics.get("summary", {}).get("pairs", [])):
        pid, seeds = p["pair"], p["seeds"]
        names = [m for m in p["methods"] if m != "old"]
        per = {m: {int(r["seed"]): r for r in rows if r["pair"] == pid and r["method"] == m
                   and (r.get("role") != "candidate" or r.get("selected"))} for m in names}
        fig, (ax, bx) = plt.subplots(1, 2, figsize=(12, 4.4), gridspec_kw={"width_ratios": [3, 2]})
        width = 0.8 / len(RECIPE_RATES)
        for j, (key, label) in enumerate(RECIPE_RATES):
            xs = [i + (j - 1) * width for i in range(len(names))]
            st = [p["methods"][m][key] for m in names]
            ax.bar(xs, [100 * v["mean"] for v in st], width, yerr=[100 * v["std"] for v in st], capsize=3,
                   label=label, alpha=0.8)
            for x, m in zip(xs, names):
                vals = [100 * per[m][s][key] for s in seeds if s in per[m]]
                ax.scatter([x] * len(vals), vals, s=10, color="k", zorder=3)
        ax.set_xticks(range(len(names)), ["new (before)" if m == "new" else m for m in names], fontsize=9)
        ax.set_ylabel("% of test samples")
        ax.set_title(f"Flips vs the old model, mean ± std over {len(seeds)} seeds", fontsize=10)
        ax.legend(fontsize=8)
        others = list(p.get("vs_at", {}))
        for j, (key, label) in enumerate((("rnfr", "RNFR"), ("s_nfr", "S-NFR"))):
            for i, m in enumerate(others):
                d = [100 * (per[m][s][key] - per["at"][s][key]) for s in seeds]
                x = i + (j - 0.5) * 0.35
                vs = p["vs_at"][m][key]
                bx.errorbar([x], [100 * vs["mean_diff"]], yerr=[100 * vs["std_diff"]], fmt="o", capsize=3,
                            color=f"C{j + 1}", label=label if i == 0 else None)
                bx.scatter([x] * len(d), d, s=10, color="k", zorder=3)
                bx.annotate(f"{vs['lower']}/{vs['n']}", (x, 100 * vs["mean_diff"]), textcoords="offset points",
                            xytext=(6, -3), fontsize=7)
        bx.axhline(0, color="k", lw=0.8)
        bx.set_xticks(range(len(others)), others, fontsize=9)
        bx.set_ylabel("method − AT (percentage points)")
        bx.set_title("Paired with AT per seed (k/n: seeds below AT)", fontsize=10)
        bx.legend(fontsize=8)
        fig.suptitle(f"Pair {pid}", fontsize=11)
        fig.tight_layout()
        path = figs / f"pair{k + 1}_flip_rates.png"
        fig.savefig(path, dpi=110)
        plt.close(fig)
        out.append(path)
    return out
