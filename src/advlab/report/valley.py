"""Figures of the analysis jobs: the uncanny valley, per-example flatness, Hessian spectra.

Each maker has the report signature ``(run_dir, manifest, config, records, metrics) -> list[Path]``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

from advlab.analysis.valley import align_at_flip, curves, flip_steps  # noqa: E402
from advlab.runs import load_run  # noqa: E402

PANELS = (
    ("loss", "cross-entropy loss of the true label"),
    ("confidence", "confidence (max softmax)"),
    ("flatness", "relative flatness κ"),
    ("trace", "Tr H (logits-layer Hessian)"),
    ("phi_sq", "‖φ‖² (layer input norm²)"),
    ("grad_norm", "‖∇ₓ loss‖₂"),
)


def _save(fig, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _aligned_panel(ax, records: Sequence[dict[str, Any]], key: str, label: str, name: str | None = None,
                   color: str | None = None) -> bool:
    a = align_at_flip(records, key)
    if not a["offset"]:
        return False
    n_max = max(a["count"])
    keep = [i for i, c in enumerate(a["count"]) if c >= max(2, n_max // 4)]  # offsets most examples reach
    off = [a["offset"][i] for i in keep]
    med = [a["median"][i] for i in keep]
    lo = [a["q25"][i] for i in keep]
    hi = [a["q75"][i] for i in keep]
    line = ax.plot(off, med, color=color, label=(f"{name}: median" if name else "median over examples"))[0]
    ax.fill_between(off, lo, hi, alpha=0.25, color=line.get_color(),
                    label=(f"{name}: 25th–75th percentile" if name else "25th–75th percentile"))
    ax.axvline(0, color="k", lw=0.8, ls="--")
    ax.set_xlabel("attack step relative to the label flip")
    ax.set_ylabel(label)
    return True


def valley_figures(run_dir: Path, manifest: Mapping, config: Mapping, records: Sequence[dict[str, Any]],
                   metrics: Mapping) -> list[Path]:
    """Flip-aligned curves (median and 25th–75th percentile band, the statistics the headline reports),
    per-example κ traces, κ against confidence (flipped and not flipped side by side, so neither hides)."""
    run_dir = Path(run_dir)
    figs = run_dir / "figures"
    out: list[Path] = []
    fs = flip_steps(records)
    n_flip = sum(1 for f in fs.values() if f is not None and f >= 1)
    title = (f"{config.get('norm', '')} PGD ε={config.get('eps')} step {config.get('step_size')}, "
             f"layer {config.get('layer')}: {n_flip}/{len(fs)} examples flipped")
    fig, axes = plt.subplots(2, 3, figsize=(13, 7))
    drawn = False
    for ax, (key, label) in zip(axes.flat, PANELS):
        drawn |= _aligned_panel(ax, records, key, label)
        if key in ("flatness", "trace", "phi_sq", "grad_norm"):
            ax.set_yscale("log")
    if drawn:
        axes.flat[0].legend(fontsize=8)
        fig.suptitle("Uncanny valley, aligned at each example's flip\n" + title, fontsize=11)
        out.append(_save(fig, figs / "valley_aligned.png"))
    else:
        plt.close(fig)

    kappa = curves(records, "flatness")
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for e in sorted(kappa)[:25]:
        steps = sorted(kappa[e])
        vals = [kappa[e][s] for s in steps]
        line = ax.plot(steps, vals, lw=1, alpha=0.7)[0]
        f = fs.get(e)
        if f is not None and f in kappa[e]:
            ax.plot([f], [kappa[e][f]], "o", color=line.get_color(), ms=4)
    ax.set_yscale("log")
    ax.set_xlabel("attack step")
    ax.set_ylabel("relative flatness κ")
    ax.set_title(f"κ per example (dots: flip step; first {min(25, len(kappa))} examples)")
    out.append(_save(fig, figs / "valley_traces.png"))

    fig, axes = plt.subplots(1, 2, figsize=(11, 4.5), sharex=True, sharey=True)
    for ax, (flipped, color, lab) in zip(axes, ((False, "tab:blue", "label not flipped (yet)"),
                                                (True, "tab:red", "label flipped"))):
        pts = [(r["confidence"], r["flatness"]) for r in records
               if bool(r["flipped"]) == flipped and r.get("flatness") is not None and r["flatness"] > 0]
        if pts:
            ax.scatter([p[0] for p in pts], [p[1] for p in pts], s=4, alpha=0.3, color=color)
        ax.set_yscale("log")
        ax.set_xlabel("confidence (max softmax)")
        ax.set_title(f"{lab}: {len(pts)} (example, step) points", fontsize=10)
    axes[0].set_ylabel("relative flatness κ")
    fig.suptitle("Flatness against confidence, every example and step", fontsize=11)
    out.append(_save(fig, figs / "valley_flatness_vs_confidence.png"))
    return out


def comparison_figure(runs: Mapping[str, Sequence[dict[str, Any]]], path: Path) -> Path:
    """The flip-aligned curves of several models (e.g. standard vs PGD-AT) on shared axes."""
    keys = (("flatness", "relative flatness κ"), ("confidence", "confidence (max softmax)"),
            ("loss", "cross-entropy loss"), ("phi_sq", "‖φ‖²"))
    fig, axes = plt.subplots(1, 4, figsize=(17, 4.2))
    colors = ("tab:blue", "tab:orange", "tab:green", "tab:red")
    for ax, (key, label) in zip(axes, keys):
        for (name, recs), c in zip(runs.items(), colors):
            _aligned_panel(ax, recs, key, label, name=name, color=c)
        if key in ("flatness", "phi_sq"):
            ax.set_yscale("log")
    axes[0].legend(fontsize=8)
    fig.suptitle("Uncanny valley: models compared, curves aligned at each example's flip", fontsize=11)
    return _save(fig, Path(path))


def flatness_figures(run_dir: Path, manifest: Mapping, config: Mapping, records: Sequence[dict[str, Any]],
                     metrics: Mapping) -> list[Path]:
    """Histogram of per-example κ and κ against confidence."""
    figs = Path(run_dir) / "figures"
    vals = [r["kappa"] for r in records if r.get("kappa") is not None and r["kappa"] > 0]
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    if vals:
        lo, hi = math.log10(min(vals)), math.log10(max(vals))
        bins = [10 ** (lo + (hi - lo + 1e-9) * i / 30) for i in range(31)]
        axes[0].hist(vals, bins=bins, color="tab:blue")
        axes[0].set_xscale("log")
    axes[0].set_xlabel("relative flatness κ")
    axes[0].set_ylabel("examples")
    axes[0].set_title(f"κ of layer {config.get('layer')} ({config.get('method')}), {len(records)} examples")
    ok = [r for r in records if r.get("kappa") is not None and r["kappa"] > 0]
    for correct, color, lab in ((True, "tab:blue", "correct"), (False, "tab:red", "misclassified")):
        pts = [r for r in ok if (r["pred"] == r["label"]) == correct]
        if pts:
            axes[1].scatter([r["confidence"] for r in pts], [r["kappa"] for r in pts], s=6, alpha=0.5,
                            color=color, label=lab)
    axes[1].set_yscale("log")
    axes[1].set_xlabel("confidence (max softmax)")
    axes[1].set_ylabel("relative flatness κ")
    axes[1].set_title("κ against confidence")
    axes[1].legend(fontsize=8)
    return [_save(fig, figs / "flatness.png")]


def hessian_figures(run_dir: Path, manifest: Mapping, config: Mapping, records: Sequence[dict[str, Any]],
                    metrics: Mapping) -> list[Path]:
    """Hessian trace (± 2 standard errors) and top eigenvalue per parameter group; running trace mean."""
    figs = Path(run_dir) / "figures"
    names = [r["group"] for r in records]
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    xs = range(len(records))
    axes[0].bar([i - 0.2 for i in xs], [r["trace"] for r in records], width=0.4,
                yerr=[2 * (r.get("trace_se") or 0) for r in records], label="Tr H (Hutchinson, ±2 SE)")
    eig = [(r.get("eigenvalues") or [float("nan")])[0] for r in records]
    axes[0].bar([i + 0.2 for i in xs], eig, width=0.4, label="top eigenvalue")
    axes[0].set_xticks(list(xs), names, rotation=20)
    axes[0].set_ylabel("value (loss per parameter²)")
    axes[0].set_title("Hessian of the mean cross-entropy per parameter group")
    axes[0].legend(fontsize=8)
    for r in records:
        s = r.get("trace_samples") or []
        run = [sum(s[: i + 1]) / (i + 1) for i in range(len(s))]
        axes[1].plot(range(1, len(run) + 1), run, label=r["group"])
    axes[1].set_xlabel("Hutchinson samples")
    axes[1].set_ylabel("running mean of vᵀHv")
    axes[1].set_title("Convergence of the trace estimate")
    axes[1].legend(fontsize=8)
    return [_save(fig, figs / "hessian.png")]


def llm_valley_figures(run_dir: Path, manifest: Mapping, config: Mapping, records: Sequence[dict[str, Any]],
                       metrics: Mapping) -> list[Path]:
    """``analyze-llm-valley``: target loss and output-head flatness per attack step for each behaviour, the
    flip step (greedy decoding reproduces the target) marked with a dot and a dotted line; when behaviours
    flip after step 0, a third panel aligns flatness at the flip (mean and 25–75 %)."""
    if not records:
        return []
    names = sorted({str(r["example"]) for r in records})
    index = {n: i for i, n in enumerate(names)}
    numbered = [{**r, "example": index[str(r["example"])]} for r in records]  # the align helpers want ints
    fs = flip_steps(numbered)
    aligned = any(f is not None and f >= 1 for f in fs.values())
    panels = [("loss", "target cross-entropy"), ("flatness", "Σ p(1−p)‖h‖² (output head)")]
    fig, axes = plt.subplots(1, len(panels) + int(aligned), figsize=(5.2 * (len(panels) + int(aligned)), 4.2))
    method = config.get("method", "?")
    cmap = plt.get_cmap("tab10")
    for ax, (key, label) in zip(axes, panels, strict=False):
        for e, pts in sorted(curves(numbered, key).items()):
            steps = sorted(pts)
            color = cmap(e % 10)
            ax.plot(steps, [pts[s] for s in steps], color=color, lw=1.2, label=names[e][:24])
            f = fs.get(e)
            if f is not None:
                ax.axvline(f, color=color, lw=0.8, ls=":")
                ax.plot([f], [pts[f]], "o", color=color, ms=6)
        ax.set_xlabel(f"{method} step")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_ylabel(label)
        ax.set_title(f"{label} per step (dot/dotted: flip)", fontsize=9)
    axes[0].legend(fontsize=7)
    if aligned:
        _aligned_panel(axes[-1], numbered, "flatness", "Σ p(1−p)‖h‖² (output head)")
        axes[-1].set_title("flatness aligned at the flip", fontsize=9)
        axes[-1].legend(fontsize=7)
    n_flip = sum(f is not None for f in fs.values())
    fig.suptitle(f"LLM valley ({method}, layer {config.get('layer', '?')}): {n_flip}/{len(names)} behaviours flip")
    return [_save(fig, Path(run_dir) / "figures" / "llm_valley.png")]


def reproduce_valley_figures(run_dir: Path, manifest: Mapping, config: Mapping, records: Sequence[dict[str, Any]],
                             metrics: Mapping) -> list[Path]:
    """``reproduce-valley``: :func:`comparison_figure` of the models' valley runs (each record's ``valley_run``)."""
    runs = {r["id"]: load_run(Path(r["valley_run"]))[2] for r in records}
    return [comparison_figure(runs, Path(run_dir) / "figures" / "valley_comparison.png")] if runs else []
