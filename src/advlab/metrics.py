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


def _match_rate(pred: Sequence[str], truth: Sequence[str]) -> float:
    if len(pred) != len(truth):
        raise ValueError(f"{len(pred)} predictions for {len(truth)} labels")
    return sum(p == t for p, t in zip(pred, truth)) / len(truth) if truth else float("nan")


def per_class_accuracy(pred: Sequence[str], truth: Sequence[str]) -> dict[str, float]:
    """Accuracy within each true class: {class: correct / n of that class}."""
    _match_rate(pred, truth)  # checks the lengths
    out = {}
    for c in sorted(set(truth)):
        idx = [i for i, t in enumerate(truth) if t == c]
        out[c] = _match_rate([pred[i] for i in idx], [truth[i] for i in idx])
    return out


def poisoning_metrics(clean_pred: Sequence[str], triggered_pred: Sequence[str], truth: Sequence[str],
                      target: str) -> dict[str, object]:
    """Backdoor aggregates from the predicted labels of the same examples without and with the trigger.

    - ``clean_accuracy`` / ``triggered_accuracy``: accuracy over every example;
    - ``asr``: share of non-target examples whose triggered prediction is the ``target`` label;
    - ``pdr`` = 1 − Acc(triggered) / Acc(clean) on the non-target examples (the ones the backdoor can
      move; Qiang et al. 2024 after PromptBench), ``pdr_all`` the same over every example;
    - ``per_class``: clean and triggered accuracy of each true class.
    Empty input gives nan.
    """
    nt = [i for i, t in enumerate(truth) if t != target]
    clean_nt = _match_rate([clean_pred[i] for i in nt], [truth[i] for i in nt])
    trig_nt = _match_rate([triggered_pred[i] for i in nt], [truth[i] for i in nt])
    clean_acc, trig_acc = _match_rate(clean_pred, truth), _match_rate(triggered_pred, truth)
    pc, pt = per_class_accuracy(clean_pred, truth), per_class_accuracy(triggered_pred, truth)
    return {
        "clean_accuracy": clean_acc,
        "triggered_accuracy": trig_acc,
        "asr": _match_rate([triggered_pred[i] for i in nt], [target] * len(nt)),
        "pdr": pdr(trig_nt, clean_nt) if nt else float("nan"),
        "pdr_all": pdr(trig_acc, clean_acc) if truth else float("nan"),
        "per_class": {c: {"clean_accuracy": pc[c], "triggered_accuracy": pt[c],
                          "n": sum(t == c for t in truth)} for c in pc},
        "n": len(truth),
        "n_non_target": len(nt),
    }
