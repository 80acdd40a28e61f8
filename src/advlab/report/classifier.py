"""Figures of classifier runs: robust accuracy against ε, example perturbations, training curves."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402
from safetensors.torch import load_file  # noqa: E402

from advlab.metrics import wilson_interval  # noqa: E402


def robust_accuracy_by_eps(records: list[dict[str, Any]]) -> tuple[list[float], list[float], list[float]]:
    """(eps values, clean accuracy, robust accuracy) from attack records."""
    eps = sorted({float(r["eps"]) for r in records})
    clean, robust = [], []
    for e in eps:
        rs = [r for r in records if float(r["eps"]) == e]
        clean.append(sum(bool(r["clean_correct"]) for r in rs) / len(rs))
        robust.append(sum(bool(r["robust"]) for r in rs) / len(rs))
    return eps, clean, robust


def attack_figures(run_dir: Path, manifest, config, records, metrics) -> list[Path]:
    """``robust_accuracy.png`` (accuracy vs ε) and ``examples.png`` (clean / adversarial / perturbation)."""
    run_dir = Path(run_dir)
    fig_dir = run_dir / "figures"
    fig_dir.mkdir(parents=True, exist_ok=True)
    out: list[Path] = []
    eps, clean, robust = robust_accuracy_by_eps(records)
    norm = {"linf": "L∞", "l2": "L2"}.get(str(config.get("norm", "linf")), str(config.get("norm")))
    method = str(config.get("method", "attack"))

    n = len(records) // max(len(eps), 1)
    fig, ax = plt.subplots(figsize=(5.5, 4))
    band = [wilson_interval(int(round(r * n)), n) for r in robust]
    ax.fill_between(eps, [b[0] for b in band], [b[1] for b in band], color="#cf222e", alpha=0.15,
                    label="95 % Wilson interval")
    ax.plot(eps, robust, "o-", color="#cf222e", label=f"robust ({method})")
    for e, r in zip(eps, robust):
        ax.annotate(f"{100 * r:.0f} %", (e, r), xytext=(4, 6), textcoords="offset points", fontsize=8)
    ax.plot(eps, clean, "--", color="#555", label="clean")
    ax.set_xlabel(f"ε ({norm} radius, input scale [0, 1])")
    ax.set_ylabel("accuracy")
    ax.set_ylim(-0.02, 1.02)
    name = Path(str(config.get("model", ""))).name or "model"
    ax.set_title(f"Robust accuracy vs ε — {name}, n={n}", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    p = fig_dir / "robust_accuracy.png"
    fig.savefig(p, dpi=110)
    plt.close(fig)
    out.append(p)
    ex = run_dir / "examples.safetensors"
    if ex.exists():
        p = _examples_figure(ex, fig_dir / "examples.png", plt)
        if p is not None:
            out.append(p)
    return out


def _examples_figure(path: Path, dest: Path, plt) -> Path | None:

    t = load_file(str(path))
    eps_keys = sorted((k.split("/", 1)[1] for k in t if k.startswith("adv/")), key=float)
    eps_keys = [e for e in eps_keys if float(e) > 0][-1:] or eps_keys[-1:]  # the largest ε
    if not eps_keys:
        return None
    e = eps_keys[0]
    clean, adv = t[f"clean/{e}"], t[f"adv/{e}"]
    labels, preds = t[f"label/{e}"], t[f"adv_pred/{e}"]
    k = clean.shape[0]
    if clean.dim() != 4 or clean.shape[1] not in (1, 3):
        return None
    fig, axes = plt.subplots(3, k, figsize=(1.3 * k + 1.0, 4.6), squeeze=False)

    def show(ax, img, **kw):
        img = img.permute(1, 2, 0).numpy()
        ax.imshow(img[..., 0] if img.shape[2] == 1 else img, **kw)
        ax.set_xticks([])
        ax.set_yticks([])

    delta = adv - clean
    scale = float(delta.abs().max()) or 1.0
    for j in range(k):
        show(axes[0, j], clean[j], cmap="gray", vmin=0, vmax=1)
        clean_key = f"clean_pred/{e}"
        title = f"y={int(labels[j])}" + (f", pred {int(t[clean_key][j])}" if clean_key in t else "")
        axes[0, j].set_title(title, fontsize=8)
        show(axes[1, j], adv[j], cmap="gray", vmin=0, vmax=1)
        ok = int(preds[j]) == int(labels[j])
        axes[1, j].set_title(f"pred {int(preds[j])}", fontsize=8, color="#1a7f37" if ok else "#cf222e")
        d = delta[j].mean(0, keepdim=True) if delta.shape[1] == 3 else delta[j]
        im = axes[2, j].imshow(d.permute(1, 2, 0).numpy()[..., 0], cmap="seismic", vmin=-scale, vmax=scale)
        axes[2, j].set_xticks([])
        axes[2, j].set_yticks([])
        if float(delta[j].abs().max()) == 0.0:
            axes[2, j].set_title("no change:\nattack failed", fontsize=7, color="#555")
        elif ok:
            axes[2, j].set_title("attack failed", fontsize=7, color="#555")
    axes[0, 0].set_ylabel("clean", fontsize=9)
    axes[1, 0].set_ylabel("adversarial", fontsize=9)
    axes[2, 0].set_ylabel("perturbation", fontsize=9)
    fig.suptitle(f"Examples at ε = {e}: clean, adversarial (green: still correct), perturbation", fontsize=10)
    fig.tight_layout(rect=(0, 0, 0.9, 1))
    cax = fig.add_axes((0.92, 0.06, 0.015, 0.25))
    fig.colorbar(im, cax=cax, label="δ (input scale)").ax.tick_params(labelsize=7)
    fig.savefig(dest, dpi=110)
    plt.close(fig)
    return dest


def train_figures(run_dir: Path, manifest, config, records, metrics) -> list[Path]:
    """``training.png``: clean and PGD validation accuracy and training loss per epoch."""
    run_dir = Path(run_dir)
    fig_dir = run_dir / "figures"
    fig_dir.mkdir(parents=True, exist_ok=True)
    rs = sorted((r for r in records if "epoch" in r), key=lambda r: r["epoch"])
    if not rs:
        return []
    ep = [r["epoch"] for r in rs]
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(9, 3.6))
    a1.plot(ep, [r["clean_accuracy"] for r in rs], "o-", label="clean")
    eval_eps = rs[-1].get("eval_eps")
    a1.plot(
        ep,
        [r["robust_accuracy"] for r in rs],
        "s-",
        color="#cf222e",
        label=f"PGD-{config.get('eval_steps', '?')} at ε={eval_eps:g}" if eval_eps is not None else "PGD",
    )
    a1.set_xlabel("epoch")
    a1.set_ylabel("validation accuracy")
    a1.set_ylim(-0.02, 1.02)
    a1.grid(alpha=0.3)
    a1.legend()
    a1.set_title(f"{config.get('method', '')} {config.get('arch', '')} on {config.get('data', '')}")
    a2.plot(ep, [r["train_loss"] for r in rs], "o-", color="#555")
    a2.set_xlabel("epoch")
    a2.set_ylabel("training loss (method's objective)")
    a2.grid(alpha=0.3)
    a2.set_title("Training loss")

    for ax in (a1, a2):
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    fig.tight_layout()
    p = fig_dir / "training.png"
    fig.savefig(p, dpi=110)
    plt.close(fig)
    return [p]
