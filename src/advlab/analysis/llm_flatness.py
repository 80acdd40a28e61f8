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

from advlab.analysis._common import capture_io, get_linear
from advlab.analysis.flatness import closed_form
from advlab.errors import ConfigError
from advlab.torchutil import eval_mode, model_device


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
