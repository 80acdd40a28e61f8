"""The uncanny-valley experiment (Walter et al. 2024, arXiv 2405.16918) for classifiers.

An iterative attack (PGD with sign steps under L∞, i.e. iterated FGSM without random start as in the
reference code, or normalised-gradient steps under L2) runs for many more steps than needed to flip the
label. At every iterate x₀ (clean) … x_T we record per example: loss (CE of the true label), margin
(true logit − best other logit), confidence (max softmax), predicted label, relative flatness κ of a
linear layer, its trace variant ‖W‖²·Tr H, Tr H and ‖φ‖², the input-gradient norm ‖∇ₓℓ‖₂, the
perturbation norm, and whether the label is flipped. Each example's flip step is its first flipped
iterate (None when the attack never flips it; such examples are counted, never divided by).

Analysis helpers align curves at each example's flip (mean and spread per offset), summarise whether
κ rises before the flip and falls after it, and compare models (standard vs adversarially trained).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from advlab.analysis._common import capture_io, get_linear, logits_layer_name
from advlab.analysis.flatness import METHODS, closed_form, flatness_measures
from advlab.attacks.classifier import PGD
from advlab.errors import ConfigError
from advlab.torchutil import eval_mode, model_device

MEASURES = ("loss", "margin", "confidence", "flatness", "trace_variant", "trace", "phi_sq", "grad_norm",
            "pert_norm")


@dataclass
class ValleyConfig:
    """Options of the valley experiment.

    ``eps``/``step_size``/``steps``/``norm``: the attack (no random start by default, as the reference);
    ``layer``: linear layer whose flatness is tracked (None: the logits layer); ``method``: flatness method
    (``exact`` for the logits layer, ``hutchinson`` with ``samples`` probes for inner layers, ``brute``);
    ``n_examples``: how many test examples (the first ones of the split); ``only_correct``: keep only
    examples the model classifies correctly before the attack; ``batch_size``: examples per attack batch.
    """

    eps: float = 0.3
    step_size: float = 0.01
    steps: int = 60
    norm: str = "linf"
    random_start: bool = False
    layer: str | None = None
    method: str = "exact"
    samples: int = 16
    n_examples: int = 200
    only_correct: bool = True
    batch_size: int = 100

    def __post_init__(self) -> None:
        for name in ("eps", "step_size"):
            v = getattr(self, name)
            if not isinstance(v, (int, float)) or not math.isfinite(v) or v <= 0:
                raise ConfigError(f"{name}={v}: must be a positive number (e.g. --{name.replace('_', '-')} 0.01)")
        if self.norm not in ("linf", "l2"):
            raise ConfigError(f"norm={self.norm!r}: use linf or l2")
        for name in ("steps", "n_examples", "batch_size"):
            v = getattr(self, name)
            if not isinstance(v, int) or v < 1:
                raise ConfigError(f"{name}={v}: must be a positive integer")
        if self.method not in METHODS:
            raise ConfigError(f"method={self.method!r}: use one of {', '.join(METHODS)}")
        if self.method == "hutchinson" and (not isinstance(self.samples, int) or self.samples < 1):
            raise ConfigError(f"samples={self.samples}: the Hutchinson estimator needs at least 1 sample")


def _step_measures(model: nn.Module, mod: nn.Linear, layer: str, x_adv: torch.Tensor, x: torch.Tensor,
                   y: torch.Tensor, cfg: ValleyConfig, exact_ok: bool) -> dict[str, torch.Tensor]:
    xg = x_adv.detach().requires_grad_(True)
    with torch.enable_grad(), capture_io(mod) as io:
        logits = model(xg)
        loss = F.cross_entropy(logits.float(), y, reduction="none")
        (g,) = torch.autograd.grad(loss.sum(), xg)
    logits = logits.detach().float()
    p = logits.softmax(-1)
    true = logits.gather(1, y[:, None]).squeeze(1)
    other = logits.scatter(1, y[:, None], -torch.inf).amax(1)
    delta = (x_adv - x).flatten(1)
    out = {
        "loss": loss.detach(),
        "margin": true - other,
        "confidence": p.amax(1),
        "pred": logits.argmax(1),
        "grad_norm": g.flatten(1).norm(dim=1),
        "pert_norm": delta.abs().amax(1) if cfg.norm == "linf" else delta.norm(dim=1),
    }
    if cfg.method == "exact" and exact_ok:
        fl = closed_form(mod.weight, io["input"], logits)
        out.update(flatness=fl["kappa"], trace_variant=fl["trace_variant"], trace=fl["trace"], phi_sq=fl["phi_sq"])
    else:
        r = flatness_measures(model, layer, x_adv.detach(), y, method=cfg.method, samples=cfg.samples)
        out.update(flatness=r.kappa, trace_variant=r.trace_variant, trace=r.trace, phi_sq=r.phi_sq)
    return {k: v.detach().cpu() for k, v in out.items()}


def valley_trajectory(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    cfg: ValleyConfig,
    seed: int = 0,
    on_step: Callable[[int], None] | None = None,
) -> dict[str, torch.Tensor]:
    """Run the attack on one batch; return each measure as a tensor [batch, steps + 1] plus ``flip_step``.

    ``flip_step`` is the first iterate with pred ≠ y (−1 when the label never flips; 0 when the clean
    input is already misclassified). The model is evaluated in eval mode; modes are restored.
    """
    dev = model_device(model)
    x, y = x.to(dev), y.to(dev).long()
    layer = cfg.layer or logits_layer_name(model, x)
    mod = get_linear(model, layer)
    steps: list[dict[str, torch.Tensor]] = []
    with eval_mode(model):
        with torch.no_grad(), capture_io(mod) as io:
            out = model(x[:1])
        exact_ok = io["output"] is out or torch.equal(io["output"], out)
        if cfg.method == "exact" and not exact_ok:
            raise ConfigError(f"layer {layer!r} does not produce the logits; use method 'hutchinson' or 'brute'")

        def callback(i, x_adv, _obj, _logits):
            steps.append(_step_measures(model, mod, layer, x_adv, x, y, cfg, exact_ok))
            if on_step is not None:
                on_step(i)
            return None

        attack = PGD(eps=cfg.eps, steps=cfg.steps, step_size=cfg.step_size, norm=cfg.norm,
                     random_start=cfg.random_start, keep="last", callback=callback, seed=seed)
        attack.run(model, x, y, evaluate=False)
    traj = {k: torch.stack([s[k] for s in steps], 1) for k in steps[0]}
    flipped = traj["pred"] != y.cpu()[:, None]
    traj["flipped"] = flipped
    any_flip = flipped.any(1)
    never = torch.full_like(any_flip, -1, dtype=torch.long)
    traj["flip_step"] = torch.where(any_flip, flipped.float().argmax(1), never)
    traj["label"] = y.cpu()
    traj["layer"] = layer  # type: ignore[assignment]
    return traj


def trajectory_records(traj: dict[str, Any], example_ids: Sequence[int]) -> list[dict[str, Any]]:
    """One record per example per step: ``id`` = f"{example}:{step}" and every measure."""
    recs = []
    n, t = traj["loss"].shape
    for b in range(n):
        fs = int(traj["flip_step"][b])
        for s in range(t):
            recs.append({
                "id": f"{example_ids[b]}:{s}",
                "example": int(example_ids[b]),
                "step": s,
                "label": int(traj["label"][b]),
                "pred": int(traj["pred"][b, s]),
                "flipped": bool(traj["flipped"][b, s]),
                "flip_step": fs if fs >= 0 else None,
                **{k: float(traj[k][b, s]) for k in MEASURES},
            })
    return recs


# ---------------------------------------------------------------------------------------------------------
# analysis of the records
# ---------------------------------------------------------------------------------------------------------
def curves(records: Iterable[dict[str, Any]], key: str) -> dict[int, dict[int, float]]:
    """example -> {step: value} for one measure."""
    out: dict[int, dict[int, float]] = {}
    for r in records:
        v = r.get(key)
        out.setdefault(int(r["example"]), {})[int(r["step"])] = float("nan") if v is None else float(v)
    return out


def flip_steps(records: Iterable[dict[str, Any]]) -> dict[int, int | None]:
    """example -> first flipped step (None if never flipped), from the per-step ``flipped`` flags."""
    flags: dict[int, dict[int, bool]] = {}
    for r in records:
        flags.setdefault(int(r["example"]), {})[int(r["step"])] = bool(r["flipped"])
    return {e: next((s for s in sorted(f) if f[s]), None) for e, f in flags.items()}


def _quantile(vals: list[float], q: float) -> float:
    t = torch.tensor(vals, dtype=torch.float64)
    return float(torch.quantile(t, q))


def align_at_flip(
    records: Sequence[dict[str, Any]], key: str, before: int | None = None, after: int | None = None
) -> dict[str, list[float]]:
    """Curves of ``key`` aligned at each example's flip (offset 0 = flip step), over examples that flip
    after the clean input (flip step ≥ 1). Returns offsets, mean, std, q25, median, q75 and count per offset;
    empty lists when no example flips.
    """
    fs = flip_steps(records)
    cv = curves(records, key)
    by_off: dict[int, list[float]] = {}
    for e, f in fs.items():
        if f is None or f < 1:
            continue
        for s, v in cv[e].items():
            off = s - f
            if (before is not None and off < -before) or (after is not None and off > after) or math.isnan(v):
                continue
            by_off.setdefault(off, []).append(v)
    offs = sorted(by_off)
    res: dict[str, list[float]] = {k: [] for k in ("offset", "mean", "std", "q25", "median", "q75", "count")}
    for o in offs:
        vals = by_off[o]
        t = torch.tensor(vals, dtype=torch.float64)
        res["offset"].append(o)
        res["mean"].append(float(t.mean()))
        res["std"].append(float(t.std()) if len(vals) > 1 else 0.0)
        res["q25"].append(_quantile(vals, 0.25))
        res["median"].append(_quantile(vals, 0.5))
        res["q75"].append(_quantile(vals, 0.75))
        res["count"].append(len(vals))
    return res


def _median(vals: list[float]) -> float | None:
    vals = [v for v in vals if v is not None and math.isfinite(v)]
    return _quantile(vals, 0.5) if vals else None


def _ratio(a: float, b: float) -> float | None:
    return a / b if b > 0 and math.isfinite(a) and math.isfinite(b) else None


def summarize_valley(records: Sequence[dict[str, Any]], key: str = "flatness") -> dict[str, Any]:
    """Does ``key`` rise before the flip and fall after it? Per-example ratios, medians, counts.

    For examples flipping at step f ≥ 1 with curve v: v₀ (clean), v_f (at the flip), v_peak = max_t v_t
    (and its offset t − f), v_end (last step). Ratios with a zero denominator are left out, never divided.
    """
    fs = flip_steps(records)
    cv = curves(records, key)
    conf = curves(records, "confidence")
    n = len(fs)
    flipped = {e: f for e, f in fs.items() if f is not None and f >= 1}
    initially_wrong = sum(1 for f in fs.values() if f == 0)
    never = sum(1 for f in fs.values() if f is None)
    steps = max((max(c) for c in cv.values()), default=0)
    summary: dict[str, Any] = {
        "measure": key,
        "examples": n,
        "flipped": len(flipped),
        "never_flipped": never,
        "initially_misclassified": initially_wrong,
        "flip_rate": (len(flipped) + initially_wrong) / n if n else None,
        "steps": steps,
    }
    if not flipped:
        summary["note"] = "the attack flipped no label: nothing to align (raise eps or steps)"
        return summary
    rise, fall, fall_end_peak, peak_off, rise_then_fall, conf_end = [], [], [], [], [], []
    for e, f in flipped.items():
        c = cv[e]
        v0, vf, vend = c.get(0, math.nan), c.get(f, math.nan), c.get(max(c), math.nan)
        peak_step = max(c, key=lambda s: c[s] if math.isfinite(c[s]) else -math.inf)
        vpeak = c[peak_step]
        rise.append(_ratio(vf, v0))
        fall.append(_ratio(vend, vf))
        fall_end_peak.append(_ratio(vend, vpeak))
        peak_off.append(float(peak_step - f))
        rise_then_fall.append(float(vf > v0 and vend < vf))
        conf_end.append(conf[e].get(max(conf[e]), math.nan))
    mean_curve = align_at_flip(records, key)
    imax = max(range(len(mean_curve["mean"])), key=lambda i: mean_curve["mean"][i])
    fl = list(flipped.values())
    summary.update({
        "flip_step_median": _median([float(v) for v in fl]),
        "flip_step_mean": sum(fl) / len(fl),
        "steps_over_median_flip": _ratio(float(steps), _median([float(v) for v in fl]) or 0.0),
        "median_ratio_at_flip_over_clean": _median([r for r in rise if r is not None]),
        "median_ratio_end_over_flip": _median([r for r in fall if r is not None]),
        "median_ratio_end_over_peak": _median([r for r in fall_end_peak if r is not None]),
        "median_peak_offset_from_flip": _median(peak_off),
        "fraction_rise_then_fall": sum(rise_then_fall) / len(rise_then_fall),
        "aligned_mean_peak_offset": mean_curve["offset"][imax],
        "median_confidence_at_end": _median(conf_end),
    })
    return summary


def compare_models(summaries: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Side-by-side table (measure -> model -> value) of :func:`summarize_valley` outputs."""
    keys: list[str] = []
    for s in summaries.values():
        keys += [k for k in s if k not in keys]
    return {k: {name: s.get(k) for name, s in summaries.items()} for k in keys}


def config_dict(cfg: ValleyConfig) -> dict[str, Any]:
    return asdict(cfg)


def valley_metrics(records: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Counts plus :func:`summarize_valley` for κ, Tr H, ‖φ‖², confidence and loss."""
    flat = summarize_valley(records, "flatness")
    shared = ("examples", "flipped", "never_flipped", "initially_misclassified", "flip_rate", "steps",
              "flip_step_median", "flip_step_mean", "steps_over_median_flip", "median_confidence_at_end")
    counts = {k: flat[k] for k in shared if k in flat}
    out: dict[str, Any] = dict(counts)
    if "note" in flat:
        out["note"] = flat["note"]
    for key in ("flatness", "trace", "phi_sq", "confidence", "loss"):
        s = summarize_valley(records, key)
        out[key] = {k: v for k, v in s.items() if k not in counts and k != "measure"}
    return out
