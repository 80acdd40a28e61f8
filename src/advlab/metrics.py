"""Pure metric functions. Inputs are boolean / integer tensors or sequences; outputs are floats.

All rates are means over the given items; an empty input gives ``nan`` rather than an
exception or a division by zero (callers report it as "no items").
"""

from __future__ import annotations

from collections.abc import Sequence

import torch


def _as_bool(x: torch.Tensor | Sequence[bool]) -> torch.Tensor:
    return torch.as_tensor(x).bool().flatten()


def _mean(mask: torch.Tensor) -> float:
    return float(mask.float().mean()) if mask.numel() else float("nan")


def asr(success: torch.Tensor | Sequence[bool]) -> float:
    """Attack success rate: fraction of items on which the attack succeeded."""
    return _mean(_as_bool(success))


def accuracy(pred: torch.Tensor, y: torch.Tensor) -> float:
    """Fraction of predictions equal to the labels."""
    return _mean(torch.as_tensor(pred).flatten() == torch.as_tensor(y).flatten())


def robust_accuracy(robust: torch.Tensor | Sequence[bool]) -> float:
    """Fraction of samples classified correctly under attack (``robust`` = correct on the adversarial input)."""
    return _mean(_as_bool(robust))


def nfr(old_correct, new_correct) -> float:
    """Negative flip rate: old model right and new model wrong (Angioni et al. 2024, eq. 1)."""
    o, n = _as_bool(old_correct), _as_bool(new_correct)
    return _mean(o & ~n)


def pfr(old_correct, new_correct) -> float:
    """Positive flip rate: old model wrong and new model right."""
    o, n = _as_bool(old_correct), _as_bool(new_correct)
    return _mean(~o & n)


def rnfr(old_robust, new_robust) -> float:
    """Robust negative flip rate: old model robust (its own white-box attack fails) and new model not."""
    return nfr(old_robust, new_robust)


def rpfr(old_robust, new_robust) -> float:
    """Robust positive flip rate: the mirror of :func:`rnfr`."""
    return pfr(old_robust, new_robust)


def b_nfr(old_correct, new_correct, old_robust, new_robust) -> float:
    """Both flips: a clean negative flip and a robust negative flip on the same sample."""
    oc, nc, orob, nrob = map(_as_bool, (old_correct, new_correct, old_robust, new_robust))
    return _mean((oc & ~nc) & (orob & ~nrob))


def s_nfr(old_correct, new_correct, old_robust, new_robust) -> float:
    """Union of flips: S-NFR = NFR + RNFR - B-NFR (used for model selection)."""
    oc, nc, orob, nrob = map(_as_bool, (old_correct, new_correct, old_robust, new_robust))
    return _mean((oc & ~nc) | (orob & ~nrob))


def pdr(perf_triggered: float, perf_clean: float) -> float:
    """Performance drop rate (PromptBench): 1 - Perf(triggered) / Perf(clean); nan when Perf(clean) = 0."""
    if perf_clean == 0:
        return float("nan")
    return 1.0 - perf_triggered / perf_clean


def training_totals(records, keys=("forward_passes", "backward_passes", "attack_forward_passes",
                                   "attack_backward_passes", "adversarial_examples", "seconds")) -> dict:
    """Totals over per-step training records: ``steps`` (records) and the sum of each key (0 when absent)."""
    out: dict = {"steps": len(records)}
    for k in keys:
        out[k] = sum(float(r.get(k, 0) or 0) for r in records)
        if k != "seconds":
            out[k] = int(round(out[k]))
    return out
