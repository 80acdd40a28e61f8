"""The uncanny valley of an LLM attack (Walter et al. 2024): output-head flatness along the attack's iterates.

The paper follows the attack's **current iterate** past the flip (the first step at which greedy decoding
reproduces the target), not the best point found so far: after the flip the best point may stay put while
the iterate moves on. The valley functions here therefore depend on one hook only,

    run_attack(model, tokenizer, segments, config, on_iterate) -> LLMAttackResult,
    on_iterate(step, point)   # after ``step`` attack steps (0 = the start), the attack's current iterate:
                              # GCG: the slot token ids; embedding attack: the full input embeddings [1, T, d]

and record, per step, ``measure`` = Σ_v p_v(1−p_v)·‖h‖² (Tr H of the head), ``kappa``, ``trace_variant``,
``phi_sq``, the target ``loss``, ``confidence`` and ``flipped`` (:mod:`advlab.analysis.llm_flatness`).
With ``record_best=True`` the best point so far is recorded too, as separate records labelled
``point: "best"`` (ids ``best-STEP``); the iterate's records are ``point: "iterate"``.

The default runners bridge today's attack functions, whose hooks pass only the loss (``on_step``) and the best
point (``stop_check``): :func:`gcg_iterates` reads GCG's iterate where GCG samples the next candidates around
it, :func:`embedding_iterates` reads the embeddings the attack feeds the model at each evaluation.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any
from unittest import mock

import torch
from torch import nn

from advlab.analysis.llm_flatness import LLMFlatness, llm_flatness, output_head_name, segments_flatness
from advlab.attacks.llm import gcg as gcg_module
from advlab.attacks.llm.common import embedding_matrix
from advlab.attacks.llm.embedding import EmbeddingAttackConfig, run_embedding_attack
from advlab.attacks.llm.gcg import GCGConfig, run_gcg
from advlab.errors import ConfigError

OnIterate = Callable[[int, Any], None]
AttackRunner = Callable[[nn.Module, Any, Any, Any, OnIterate], Any]


def gcg_iterates(model: nn.Module, tokenizer: Any, segments: Any, config: GCGConfig, on_iterate: OnIterate) -> Any:
    """Run GCG and call ``on_iterate(s, slot_ids)`` with its current iterate after s = 0..``config.steps`` steps.

    Bridge for today's ``run_gcg`` (no hook gives the iterate): GCG samples step s+1's candidates around the
    iterate after step s, so that is the first argument of its (s+1)-th ``sample_candidates`` call; GCG is
    run for one step more than asked to read the last iterate. Replace by the attack's own iterate hook."""
    seen: list[list[int]] = []
    original = gcg_module.sample_candidates

    def spy(current, *args, **kwargs):
        seen.append(current.tolist())
        return original(current, *args, **kwargs)

    with mock.patch.object(gcg_module, "sample_candidates", spy):
        result = run_gcg(model, tokenizer, segments, replace(config, steps=config.steps + 1))
    for step, ids in enumerate(seen[: config.steps + 1]):
        on_iterate(step, ids)
    return result


def embedding_iterates(
    model: nn.Module, tokenizer: Any, segments: Any, config: EmbeddingAttackConfig, on_iterate: OnIterate
) -> Any:
    """Run the embedding attack and call ``on_iterate(s, embeds)`` with the input embeddings [1, T, d] it
    evaluates after s = 0..``config.steps`` updates (read with a forward pre-hook: the attack's hooks give only
    the best δ). Replace by the attack's own iterate hook."""
    seen: list[torch.Tensor] = []

    def hook(_module, args, kwargs):
        if kwargs.get("inputs_embeds") is not None and len(seen) <= config.steps:
            seen.append(kwargs["inputs_embeds"].detach().clone())

    handle = model.register_forward_pre_hook(hook, with_kwargs=True)
    try:
        (result,) = run_embedding_attack(model, tokenizer, segments, config)
    finally:
        handle.remove()
    for step, embeds in enumerate(seen):
        on_iterate(step, embeds)
    return result


def valley_gcg_config(config: GCGConfig | None) -> GCGConfig:
    """GCG for the valley: the given config (default ``GCGConfig()``) with early stopping off."""
    return replace(config or GCGConfig(), early_stop=False)


def valley_embedding_config(config: EmbeddingAttackConfig | None) -> EmbeddingAttackConfig:
    """The embedding attack for the valley: one behaviour, early stopping off."""
    return replace(config or EmbeddingAttackConfig(), early_stop=False, universal=False)


def _record(step: int, r: LLMFlatness, point: str) -> dict:
    return {"id": str(step) if point == "iterate" else f"{point}-{step}", "step": step, "point": point,
            "measure": float(r.measure[0]), "kappa": float(r.kappa[0]), "trace_variant": float(r.trace_variant[0]),
            "phi_sq": float(r.phi_sq[0]), "flipped": bool(r.target_reproduced[0]), "loss": float(r.target_loss[0]),
            "confidence": float(r.confidence[0])}


def _with_best(records: list[dict], record_best: bool) -> list[dict]:
    """``flip_step`` on every iterate record; with ``record_best`` also the best-so-far point per step."""
    flip = next((r["step"] for r in records if r["flipped"]), None)
    out = [{**r, "flip_step": flip} for r in records]
    if record_best:
        best: dict | None = None
        for r in records:
            if best is None or r["loss"] < best["loss"]:
                best = r
            out.append({**best, "id": f"best-{r['step']}", "step": r["step"], "point": "best",
                        "best_step": best["step"], "flip_step": flip})
    return out


def gcg_valley(
    model: nn.Module,
    tokenizer: Any,
    segments: Any,
    config: GCGConfig | None = None,
    layer: str | None = None,
    *,
    record_best: bool = False,
    run_attack: AttackRunner = gcg_iterates,
) -> list[dict]:
    """GCG on one behaviour (``config`` default ``GCGConfig()``, early stopping always off, so the trajectory
    goes past the flip), one record per step for the current slot (step 0 = the starting slot); every record
    carries ``flip_step`` (the first flipped step, None if none)."""
    name = layer or output_head_name(model)
    records: list[dict] = []
    run_attack(model, tokenizer, segments, valley_gcg_config(config),
               lambda step, ids: records.append(_record(step, segments_flatness(model, segments, ids, name),
                                                        "iterate")))
    return _with_best(records, record_best)


def embedding_valley(
    model: nn.Module,
    tokenizer: Any,
    segments: Any,
    config: EmbeddingAttackConfig | None = None,
    layer: str | None = None,
    *,
    record_best: bool = False,
    run_attack: AttackRunner = embedding_iterates,
) -> list[dict]:
    """The embedding-attack counterpart of :func:`gcg_valley`: step 0 is the clean prompt, step s the input
    after s updates (the current δ, not the best one); early stopping off."""
    name = layer or output_head_name(model)
    if not segments.target:
        raise ConfigError("the prompt has no target tokens; give the behaviour a target string")
    ids = torch.tensor(segments.input_ids, device=embedding_matrix(model).device)[None]
    start, end = segments.target_range
    records: list[dict] = []

    def on_iterate(step: int, embeds: torch.Tensor) -> None:
        r = llm_flatness(model, inputs_embeds=embeds, target_positions=list(range(start, end)), layer=name,
                         target_ids=ids)
        records.append(_record(step, r, "iterate"))

    run_attack(model, tokenizer, segments, valley_embedding_config(config), on_iterate)
    return _with_best(records, record_best)


def llm_valley_metrics(records: Sequence[dict], method: str) -> dict:
    """Flip counts and the median flatness (Σ p(1−p)‖h‖²) before, at and after each behaviour's flip step,
    pooled over flipped behaviours, over the iterate records; a ``note`` instead of medians when nothing flips."""
    by_ex: dict[str, list[dict]] = {}
    for r in records:
        if r.get("point", "iterate") == "iterate":
            by_ex.setdefault(str(r["example"]), []).append(r)
    flips = {ex: next((r["step"] for r in sorted(rs, key=lambda r: r["step"]) if r["flipped"]), None)
             for ex, rs in by_ex.items()}
    flipped = [ex for ex, f in flips.items() if f is not None]
    m: dict = {"method": method, "examples": len(by_ex), "flips": {method: len(flipped)},
               "never_flipped": len(by_ex) - len(flipped),
               "flip_steps": {ex: f for ex, f in flips.items()}}
    if not flipped:
        m["note"] = f"no flip: greedy decoding never reproduced the target in any of {len(by_ex)} behaviours"
        return m
    groups: dict[str, list[float]] = {"before": [], "at": [], "after": []}
    for ex in flipped:
        f = flips[ex]
        for r in by_ex[ex]:
            key = "before" if r["step"] < f else "at" if r["step"] == f else "after"
            groups[key].append(float(r["flatness"]))
    m["flip_step_median"] = float(statistics.median(flips[ex] for ex in flipped))
    m["flatness"] = {f"median_{k}_flip": (float(statistics.median(v)) if v else None) for k, v in groups.items()}
    return m
