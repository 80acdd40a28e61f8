r"""Flatness of a causal LM's output head at target positions (Walter et al. 2024, LLM experiments).

At a position :math:`t` with hidden state :math:`h_t` (the input of the output head, i.e. the final
normed hidden state) and next-token distribution :math:`p = \mathrm{softmax}(W h_t)`, the Hessian of the
token cross-entropy with respect to the head's weight :math:`W\in\mathbb{R}^{V\times d}` is
:math:`(\mathrm{diag}\,p - pp^\top)\otimes h_th_t^\top` (see :mod:`advlab.analysis.flatness`), so

- the reference measure is :math:`\mathrm{Tr}H = \sum_v p_v(1-p_v)\,\|h_t\|^2`;
- relative flatness is :math:`\kappa = \|h_t\|^2(\sum_v p_v\|w_v\|^2 - \|\sum_v p_v w_v\|^2)`.

Both are label-free, computed in float32 (or float64 for a float64 model) and averaged over the target
positions of each sequence. ``target_positions`` are the positions of the **target tokens** in the input;
the distribution that predicts the token at position :math:`t` is read at :math:`t-1`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn

from advlab.analysis._common import capture_io, eval_mode, get_linear, model_device
from advlab.analysis.flatness import closed_form
from advlab.errors import ConfigError


@dataclass
class LLMFlatness:
    """Per-sequence means over target positions ([batch]) and per-position values ([batch, positions])."""

    measure: torch.Tensor  # mean of Σ_v p_v(1-p_v)·‖h_t‖² (= Tr H)
    kappa: torch.Tensor  # mean relative flatness κ
    trace_variant: torch.Tensor  # mean ‖W‖²·Tr H
    phi_sq: torch.Tensor  # mean ‖h_t‖²
    per_position: dict[str, torch.Tensor]
    layer: str
    target_reproduced: torch.Tensor | None = None  # [batch] bool: greedy argmax = every target token (ids only)
    target_loss: torch.Tensor | None = None  # [batch] mean target cross-entropy (when token ids are known)
    confidence: torch.Tensor | None = None  # [batch] mean max-probability over target positions


def output_head_name(model: nn.Module) -> str:
    """Module name of the model's output head (``get_output_embeddings()``), e.g. ``lm_head``."""
    head = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    for name, mod in model.named_modules():
        if head is not None and mod is head:
            return name
    raise ConfigError("cannot find the model's output head; pass layer= with the name of its linear output layer")


def _positions(target_positions, batch: int, length: int, device) -> torch.Tensor:
    """A bool mask [batch, length] of the logit positions (target position − 1)."""
    if isinstance(target_positions, slice):
        target_positions = list(range(length))[target_positions]
    tp = torch.as_tensor(target_positions, device=device)
    if tp.dtype == torch.bool:
        mask = tp.expand(batch, length) if tp.dim() == 1 else tp
        if mask.shape != (batch, length):
            raise ConfigError(f"target mask has shape {tuple(mask.shape)}; expected {(batch, length)}")
        if mask[:, 0].any():
            raise ConfigError("a target at position 0 has no preceding position to predict it; drop it")
        logit_mask = torch.zeros_like(mask)
        logit_mask[:, :-1] = mask[:, 1:]
    else:
        tp = tp.long().flatten()
        if tp.numel() == 0:
            raise ConfigError("no target positions given; pass the positions of the target tokens")
        if int(tp.min()) < 1 or int(tp.max()) >= length:
            raise ConfigError(
                f"target positions must lie in 1..{length - 1} (a target at t is predicted at t-1); got "
                f"{tp.tolist()}"
            )
        logit_mask = torch.zeros(batch, length, dtype=torch.bool, device=device)
        logit_mask[:, tp - 1] = True
    if not logit_mask.any(1).all():
        raise ConfigError("a sequence has no target position; give every sequence at least one")
    return logit_mask


def llm_flatness(
    model: nn.Module,
    input_ids: torch.Tensor | None = None,
    target_positions: Sequence[int] | torch.Tensor | slice | None = None,
    *,
    inputs_embeds: torch.Tensor | None = None,
    attention_mask: torch.Tensor | None = None,
    layer: str | None = None,
    target_ids: torch.Tensor | None = None,
) -> LLMFlatness:
    """Tr H = Σ_v p_v(1-p_v)·‖h_t‖² and κ of the output head, averaged over target positions.

    Give ``input_ids`` [batch, T] (or [T]) or ``inputs_embeds`` [batch, T, d]; ``target_positions`` are the
    target tokens' positions (a list used for every sequence, a slice, or a bool mask [batch, T]).
    ``target_ids`` [batch, T] (default: ``input_ids``) are the token ids aligned with the input; with them
    the result also carries the target loss and whether greedy decoding reproduces the target.
    """
    if (input_ids is None) == (inputs_embeds is None):
        raise ConfigError("pass exactly one of input_ids or inputs_embeds")
    if target_positions is None:
        raise ConfigError("pass target_positions: the positions of the target tokens in the input")
    name = layer or output_head_name(model)
    head = get_linear(model, name)
    kwargs = {}
    dev_in = model_device(model)
    input_ids = input_ids.to(dev_in) if input_ids is not None else None
    inputs_embeds = inputs_embeds.to(dev_in) if inputs_embeds is not None else None
    attention_mask = attention_mask.to(dev_in) if attention_mask is not None else None
    if input_ids is not None:
        if input_ids.dim() == 1:
            input_ids = input_ids[None]
        kwargs["input_ids"] = input_ids
        batch, length = input_ids.shape
    else:
        if inputs_embeds.dim() == 2:
            inputs_embeds = inputs_embeds[None]
        kwargs["inputs_embeds"] = inputs_embeds
        batch, length = inputs_embeds.shape[:2]
    if attention_mask is not None:
        kwargs["attention_mask"] = attention_mask
    dev = head.weight.device
    mask = _positions(target_positions, batch, length, dev)
    with eval_mode(model), capture_io(head) as io, torch.no_grad():
        out = model(**kwargs)
    h, logits = io["input"], io["output"]
    model_logits = getattr(out, "logits", out)
    if logits.shape != model_logits.shape:
        raise ConfigError(f"layer {name!r} does not produce the model's logits; pass the output head (e.g. lm_head)")
    if h.shape[1] != length:
        raise ConfigError("the head saw fewer positions than the input; do not pass logits_to_keep")
    vals = closed_form(head.weight, h, logits)  # each [batch, T]
    m = mask.to(vals["trace"].dtype)
    count = m.sum(1)

    def mean(v: torch.Tensor) -> torch.Tensor:
        return ((v * m).sum(1) / count).cpu()

    per_pos = {k: torch.where(mask, v, torch.nan).cpu() for k, v in vals.items()}
    logp = torch.log_softmax(logits.float(), dim=-1)
    confidence = mean(logp.max(-1).values.exp().to(vals["trace"].dtype))
    reproduced = loss = None
    ids = input_ids if target_ids is None else target_ids.reshape(batch, length)
    if ids is not None:
        nxt = ids[:, 1:].to(logits.device)
        hit = logits[:, :-1].argmax(-1) == nxt
        reproduced = (hit | ~mask[:, :-1]).all(1).cpu()
        nll = torch.zeros(batch, length, device=logits.device)
        nll[:, :-1] = -logp[:, :-1].gather(-1, nxt.unsqueeze(-1)).squeeze(-1)
        loss = mean(nll.to(vals["trace"].dtype))
    return LLMFlatness(mean(vals["trace"]), mean(vals["kappa"]), mean(vals["trace_variant"]), mean(vals["phi_sq"]),
                       per_pos, name, reproduced, loss, confidence)


def segments_flatness(model: nn.Module, segments, slot: Sequence[int] | None = None,
                      layer: str | None = None) -> LLMFlatness:
    """:func:`llm_flatness` over the target tokens of a chat prompt (``PromptSegments``), optionally with
    the attack slot replaced by ``slot``."""
    seg = segments.with_slot(list(slot)) if slot is not None else segments
    if not seg.target:
        raise ConfigError("the prompt has no target tokens; give the behaviour a target string")
    dev = next(model.parameters()).device
    ids = torch.tensor(seg.input_ids, device=dev)[None]
    start, end = seg.target_range
    return llm_flatness(model, ids, list(range(start, end)), layer=layer)


def gcg_valley(model: nn.Module, tokenizer, segments, config=None, layer: str | None = None) -> list[dict]:
    """Run GCG on one behaviour and record the flatness of the output head at the target positions for the
    best slot so far: ``measure`` = Σ p(1−p)‖h‖², ``kappa``, ``trace_variant``, ``phi_sq``, and ``flipped`` =
    greedy decoding reproduces the target (the LLM "flip"). Step 0 is the starting slot, step s the slot
    after GCG step s (GCG skips the callback on a step where no candidate survives; the final slot is
    always recorded). Every record carries ``flip_step``: the first flipped step, None if none."""
    from advlab.attacks.llm.gcg import run_gcg

    name = layer or output_head_name(model)
    records: dict[int, dict] = {}

    def record(step: int, slot_ids) -> bool:
        r = segments_flatness(model, segments, list(slot_ids), name)
        records[step] = {"id": str(step), "step": step, "measure": float(r.measure[0]),
                         "kappa": float(r.kappa[0]), "trace_variant": float(r.trace_variant[0]),
                         "phi_sq": float(r.phi_sq[0]), "flipped": bool(r.target_reproduced[0]),
                         "loss": float(r.target_loss[0]), "confidence": float(r.confidence[0])}
        return False

    record(0, segments.slot)
    # run_gcg numbers its steps from 1, so the slot after step s is recorded as step s
    result = run_gcg(model, tokenizer, segments, config, stop_check=lambda step, ids: record(step, ids))
    last = len(result.loss_history)
    if last not in records:
        record(last, result.extra["adv_ids"])
    return _finish(records)


def _finish(records: dict[int, dict]) -> list[dict]:
    out = [records[k] for k in sorted(records)]
    flip = next((r["step"] for r in out if r["flipped"]), None)
    for r in out:
        r["flip_step"] = flip
    return out


def embedding_valley(model: nn.Module, tokenizer, segments, config=None, layer: str | None = None) -> list[dict]:
    """The embedding-attack counterpart of :func:`gcg_valley`: run the embedding attack on one behaviour
    (without early stopping) and record, for the best perturbed prompt so far, the output head's flatness at
    the target positions (``measure``, ``kappa``, ``trace_variant``, ``phi_sq``), the target ``loss``, the
    ``confidence`` (mean max-probability) and ``flipped`` (greedy argmax reproduces every target token).
    Step 0 is the clean prompt, step s the prompt after s attack steps; ``flip_step`` as in gcg_valley."""
    from dataclasses import replace

    from advlab.attacks.llm.common import embedding_matrix
    from advlab.attacks.llm.embedding import EmbeddingAttackConfig, run_embedding_attack

    cfg = replace(config or EmbeddingAttackConfig(), early_stop=False, universal=False)
    name = layer or output_head_name(model)
    if not segments.target:
        raise ConfigError("the prompt has no target tokens; give the behaviour a target string")
    weight = embedding_matrix(model)
    ids = torch.tensor(segments.input_ids, device=weight.device)[None]
    n_prompt = len(segments.prompt_ids)
    start, end = segments.target_range
    with torch.no_grad():
        rest = weight[ids[:, n_prompt:]].detach()  # the target (and anything after it), unperturbed
    records: dict[int, dict] = {}

    def record(step: int, prompt_embeds: torch.Tensor) -> bool:
        emb = torch.cat([prompt_embeds.to(rest.dtype), rest], dim=1)
        r = llm_flatness(model, inputs_embeds=emb, target_positions=list(range(start, end)), layer=name,
                         target_ids=ids)
        records[step] = {"id": str(step), "step": step, "measure": float(r.measure[0]),
                         "kappa": float(r.kappa[0]), "trace_variant": float(r.trace_variant[0]),
                         "phi_sq": float(r.phi_sq[0]), "flipped": bool(r.target_reproduced[0]),
                         "loss": float(r.target_loss[0]), "confidence": float(r.confidence[0])}
        return False

    (res,) = run_embedding_attack(model, tokenizer, segments, cfg,
                                  stop_check=lambda step, embeds: record(step, embeds[0]))
    last = len(res.loss_history) - 1  # history holds the evaluations at steps 0..steps
    if last not in records:
        record(last, res.adv_embeds)
    return _finish(records)


def llm_valley_metrics(records: Sequence[dict], method: str) -> dict:
    """Flip counts and the median flatness (Σ p(1−p)‖h‖²) before, at and after each behaviour's flip step,
    pooled over flipped behaviours; a ``note`` instead of medians when nothing flips."""
    import statistics

    by_ex: dict[str, list[dict]] = {}
    for r in records:
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


def run_llm_valley_job(
    model_dir, behaviors: str, out, *, method: str = "gcg", steps: int = 20, limit: int | None = None,
    layer: str | None = None, search_width: int = 64, eps: float | None = 0.05, step_size: float = 1e-4,
    seed: int = 0, device="cpu", argv: list[str] | None = None, progress: bool = True,
) -> dict:
    """The LLM valley experiment: per behaviour, ``steps`` GCG or embedding-attack steps without early stopping,
    one record per step (id ``"EXAMPLE:STEP"``) with loss, flatness (Σ p(1−p)‖h‖² of ``layer``), kappa,
    confidence, flipped and flip_step; job ``analyze-llm-valley``. Returns the metrics."""
    from advlab.analysis.jobs import _progress
    from advlab.attacks.llm.embedding import EmbeddingAttackConfig
    from advlab.attacks.llm.gcg import GCGConfig
    from advlab.data.behavior_loaders import load_behaviors
    from advlab.models import load_chat_model
    from advlab.models.formatting import ChatFormatter
    from advlab.report import write_report
    from advlab.runs import RunDir, check_out_path
    from advlab.utils import seed_everything

    if method not in ("gcg", "embedding"):
        raise ConfigError(f"--method {method!r}: use gcg or embedding")
    if steps < 1:
        raise ConfigError(f"--steps {steps}: must be at least 1")
    if limit is not None and limit < 1:
        raise ConfigError(f"--limit {limit}: must be at least 1")
    check_out_path(out)
    if method == "gcg":
        attack_cfg = GCGConfig(steps=steps, search_width=search_width, early_stop=False, seed=seed)
        init = attack_cfg.optim_str_init
    else:
        attack_cfg = EmbeddingAttackConfig(steps=steps, eps=eps, step_size=step_size, early_stop=False)
        init = attack_cfg.init_str
    items = [b for b in load_behaviors(behaviors) if str(getattr(b, "target", "") or "").strip()]
    if not items:
        raise ConfigError(f"--behaviors {behaviors}: no behaviour with a target string; use e.g. "
                          "builtin:gym-harmful-test")
    items = items[:limit] if limit is not None else items
    device = torch.device(device)
    model, tok = load_chat_model(model_dir, device=device)
    model.eval()
    name = layer or output_head_name(model)
    formatter = ChatFormatter(tok)
    segs = [formatter.segments(b.request, init, b.target) for b in items]
    segments_flatness(model, segs[0], layer=name)  # validates the layer before the run directory exists
    config = {"model": str(model_dir), "behaviors": behaviors, "method": method, "steps": steps, "limit": limit,
              "layer": name, "search_width": search_width, "eps": eps, "step_size": step_size}
    valley_fn = gcg_valley if method == "gcg" else embedding_valley
    with RunDir(out, "analyze-llm-valley", config, seed=seed, device=str(device), argv=argv) as run, \
            _progress(not progress) as bar:
        task = bar.add_task(f"llm valley ({method})", total=len(items))
        for b, seg in zip(items, segs, strict=True):
            ex = str(b.id)
            if run.is_done(f"{ex}:{steps}"):
                bar.advance(task)
                continue
            seed_everything(seed)
            for r in valley_fn(model, tok, seg, attack_cfg, layer=name):
                rec = {"id": f"{ex}:{r['step']}", "example": ex, "method": method, "step": r["step"],
                       "loss": r["loss"], "flatness": r["measure"], "kappa": r["kappa"],
                       "confidence": r["confidence"], "flipped": r["flipped"], "flip_step": r["flip_step"]}
                if not run.is_done(rec["id"]):
                    run.append(rec)
            bar.advance(task)
        metrics = llm_valley_metrics(run.records, method)
        metrics.update(layer=name, model=str(model_dir))
        run.write_metrics(metrics)
    write_report(run.path)
    return metrics
