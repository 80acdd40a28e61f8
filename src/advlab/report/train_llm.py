"""Figures of an ``advlab train llm`` run: the training curves (loss terms, attack loss, δ norm, passes)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

TERMS = ("toward", "away", "utility", "ipo", "attack_loss")


def train_figures(run_dir: Path, manifest: dict[str, Any], config: dict[str, Any], records: list[dict[str, Any]],
                  metrics: dict[str, Any]) -> list[Path]:
    """``figures/training_curves.png``: each loss term and the attack's final loss per step; the norm of δ;
    cumulative forward+backward passes (training and attack)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    recs = sorted(records, key=lambda r: int(r.get("step", 0)))
    steps = [int(r.get("step", i + 1)) for i, r in enumerate(recs)]
    fig, axes = plt.subplots(1, 3, figsize=(14, 4))
    for k in TERMS:
        ys = [r.get(k) for r in recs]
        if any(y is not None for y in ys):
            axes[0].plot(steps, [float("nan") if y is None else y for y in ys], label=k)
    axes[0].set(xlabel="step", ylabel="loss", title="loss terms (raw, before cutoffs)")
    axes[0].legend(fontsize=8)
    axes[1].plot(steps, [r.get("delta_norm", float("nan")) for r in recs], color="tab:purple")
    axes[1].set(xlabel="step", ylabel="mean ‖δ_i‖", title="perturbation norm per token")
    for key, label in (("forward_passes", "training F"), ("backward_passes", "training B"),
                       ("attack_forward_passes", "attack F"), ("attack_backward_passes", "attack B")):
        total, ys = 0.0, []
        for r in recs:
            total += float(r.get(key, 0) or 0)
            ys.append(total)
        axes[2].plot(steps, ys, label=label)
    axes[2].set(xlabel="step", ylabel="passes so far (example rows)", title="cost")
    axes[2].legend(fontsize=8)
    fig.suptitle(f"train llm: {config.get('method', '?')} on {Path(str(config.get('model', '?'))).name}")
    fig.tight_layout()
    out = run_dir / "figures" / "training_curves.png"
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return [out]
