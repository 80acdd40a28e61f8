"""Figures of poisoning runs: the trigger-search loss curve (``poison-trigger`` and the recipe) and
PDR against the poisoning rate, one line per trigger kind (``reproduce-poisoning``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

KIND_STYLE = {"learned": ("#cf222e", "o"), "random_word": ("#0969da", "s"), "rare_token": ("#6e7781", "^")}


def _pct(v: Any) -> float:
    """100·v, or nan for a missing value (NaN is stored as null in the records)."""
    return 100 * float(v) if isinstance(v, (int, float)) and v == v else float("nan")


def _plt() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _loss_curve(fig_dir: Path, rec: dict[str, Any]) -> Path:
    plt = _plt()
    hist = [rec["init_loss"], *rec["loss_history"]]
    fig, ax = plt.subplots(figsize=(6.5, 3.8))
    ax.plot(range(len(hist)), hist, color="#cf222e", lw=1.5, label="step's best candidate")
    best = [min(hist[: i + 1]) for i in range(len(hist))]
    ax.plot(range(len(best)), best, color="#1a7f37", lw=1.2, ls="--", label="best so far")
    ax.set_xlabel("search step")
    ax.set_ylabel("mean target CE over prompts")
    ax.set_title(f"trigger search: '{rec['trigger']}' ({rec['n_prompts']} prompts, "
                 f"{rec['n_allowed_tokens']} word tokens)", fontsize=10)
    ax.legend(fontsize=8)
    fig.tight_layout()
    p = fig_dir / "trigger_loss.png"
    fig.savefig(p, dpi=110)
    plt.close(fig)
    return p


def trigger_figures(run_dir: Path, manifest: dict, config: dict, records: list[dict], metrics: dict) -> list[Path]:
    """``trigger_loss.png``."""
    rec = next((r for r in records if r.get("id") == "trigger"), None)
    if rec is None:
        return []
    fig_dir = Path(run_dir) / "figures"
    fig_dir.mkdir(parents=True, exist_ok=True)
    return [_loss_curve(fig_dir, rec)]


def reproduce_figures(run_dir: Path, manifest: dict, config: dict, records: list[dict], metrics: dict) -> list[Path]:
    """``pdr_vs_rate.png`` (with the clean-tuned model's PDR for each trigger as a dotted reference)
    and ``trigger_loss.png``."""
    plt = _plt()
    fig_dir = Path(run_dir) / "figures"
    fig_dir.mkdir(parents=True, exist_ok=True)
    paths = trigger_figures(run_dir, manifest, config, records, metrics)
    cells = [r for r in records if str(r.get("id", "")).startswith("cell:")]
    if not cells:
        return paths
    clean = next((r for r in records if r.get("id") == "clean"), None)
    fig, ax = plt.subplots(figsize=(6.8, 4.6))
    lows, gaps = [-5.0], False
    for kind, (color, marker) in KIND_STYLE.items():
        rs = sorted((r for r in cells if r["trigger_kind"] == kind), key=lambda r: r["rate"])
        if not rs:
            continue
        xs = [100 * r["rate"] for r in rs]
        ys = [_pct(r["pdr"]) for r in rs]
        lows += [y - 5 for y in ys if y == y]
        gaps = gaps or any(y != y for y in ys)
        ax.plot(xs, ys, color=color, marker=marker, lw=1.6, label=f"{kind.replace('_', ' ')} '{rs[0]['trigger']}'")
        if clean is not None and kind in clean.get("per_trigger", {}):
            ref = _pct(clean["per_trigger"][kind]["pdr"])
            if ref == ref:
                ax.axhline(ref, color=color, ls=":", lw=1)
    ax.set_xlabel("poisoning rate (% of the training set)")
    ax.set_ylabel("PDR on non-target inputs (%)")
    ax.set_title("performance drop rate vs poisoning rate (dotted: clean-tuned model)", fontsize=10)
    ax.set_ylim(min(lows), 105)
    if gaps:
        ax.text(0.3, 0.02, "gap: PDR undefined (no non-target input right without the trigger)",
                transform=ax.transAxes, fontsize=7, color="#57606a")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.14), ncol=3, frameon=False)
    fig.tight_layout()
    p = fig_dir / "pdr_vs_rate.png"
    fig.savefig(p, dpi=110)
    plt.close(fig)
    return [*paths, p]
