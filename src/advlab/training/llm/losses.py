"""Loss terms of continuous adversarial training (Xhonneux et al. 2024, arXiv 2405.15589; PAPERS.md §1, §6).

Per-row quantities, all over the labelled (response) positions of a row:

- ``token_logps``: log p(y_t | x, y_<t) at every position, with the label mask;
- ``labelled_logps``: the same from a model call that projects only the positions predicting a label;
- ``mean_nll`` = −(1/T) Σ_t log p(y_t): the toward / utility cross-entropy;
- ``cutoff(L, c)``: the paper's cutoff for a minimised term: L while L ≥ c, and 0.999·c + 0.001·L once L
  has gone past c (below it), so its value stays ≈ c and its gradient is ×0.001. Toward c = 0.5 (stop
  once the refusal's CE is under 0.5), away c = −5 (away = −CE; stop once the harmful CE exceeds 5);
- ``unlikelihood`` (R2D2's away term): −(1/T) Σ_t log(1 − p(ŷ_t)), tokens with log p < −5 ignored;
- ``ipo_loss`` (C-AdvIPO): ((ℓθ(y) − ℓ0(y)) − (ℓθ(ŷ) − ℓ0(ŷ)) − 1/(2β))², ℓ the per-token mean log-prob,
  with the policy's rejected-side tokens whose log-prob is < −5 zeroed (they add 0 to the mean).

Cutoffs are applied per example and terms are means over examples, so a data-parallel run on equal shards
has the same objective as one process (the reference applies the cutoff to its batch mean).
"""

from __future__ import annotations

from typing import Any

import torch

IGNORE_INDEX = -100


def token_logps(logits: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(logp, mask)`` [B, L−1]: log-prob of each next labelled token under ``logits`` [B, L, V]."""
    tgt = labels[:, 1:]
    mask = tgt != IGNORE_INDEX
    logp = torch.log_softmax(logits[:, :-1].float(), dim=-1)
    return logp.gather(-1, tgt.clamp(min=0).unsqueeze(-1)).squeeze(-1) * mask, mask


def labelled_logps(model: Any, labels: torch.Tensor, attention_mask: torch.Tensor,
                   **inputs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(logp, mask)`` [B, W] like :func:`token_logps`, from one forward pass of ``model`` on ``inputs``
    (``input_ids`` or ``inputs_embeds``) that projects to the vocabulary only the W positions spanning every
    row's labelled tokens (``logits_to_keep``; a response is a few tokens after a long prompt). Positions are
    counted over real tokens, so left- and right-padded rows give the same values."""
    from advlab.models.generation import position_ids_from_mask

    tgt = labels[:, 1:]
    cols = (tgt != IGNORE_INDEX).any(0).nonzero().flatten()
    lo, hi = (int(cols[0]), int(cols[-1]) + 1) if cols.numel() else (0, 1)
    keep = torch.arange(lo, hi, device=labels.device)
    logits = model(**inputs, attention_mask=attention_mask, position_ids=position_ids_from_mask(attention_mask),
                   logits_to_keep=keep, use_cache=False).logits
    tgt = tgt[:, lo:hi]
    mask = tgt != IGNORE_INDEX
    logp = torch.log_softmax(logits.float(), dim=-1).gather(-1, tgt.clamp(min=0).unsqueeze(-1)).squeeze(-1)
    return logp * mask, mask


def mean_nll(logp: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Per-row mean cross-entropy over labelled tokens: [B]."""
    return -(logp * mask).sum(-1) / mask.sum(-1).clamp(min=1)


def mean_logp(logp: torch.Tensor, mask: torch.Tensor, floor: float | None = None) -> torch.Tensor:
    """Per-row mean log-prob; ``floor``: tokens with log-prob below it are zeroed (count in the mean as 0)."""
    if floor is not None:
        logp = torch.where(logp < floor, torch.zeros_like(logp), logp)
    return (logp * mask).sum(-1) / mask.sum(-1).clamp(min=1)


def cutoff(loss: torch.Tensor, c: float) -> torch.Tensor:
    """Elementwise: ``loss`` where ``loss ≥ c``, else ``0.999·c + 0.001·loss`` (value ≈ c, gradient ×0.001)."""
    past = loss < c
    return torch.where(past, 0.999 * c + 0.001 * loss, loss)


def unlikelihood(logp: torch.Tensor, mask: torch.Tensor, floor: float = -5.0) -> torch.Tensor:
    """Per-row −mean_t log(1 − p_t) over labelled tokens with log p_t ≥ ``floor`` (0 when none is left)."""
    keep = mask & (logp >= floor)
    p = logp.exp().clamp(max=1 - 1e-6)
    term = -torch.log1p(-p) * keep
    return term.sum(-1) / keep.sum(-1).clamp(min=1)


def ipo_loss(
    policy_chosen: torch.Tensor,
    policy_rejected: torch.Tensor,
    ref_chosen: torch.Tensor,
    ref_rejected: torch.Tensor,
    beta: float = 0.25,
) -> torch.Tensor:
    """Per-row IPO loss on per-token mean log-probs: ((πc − rc) − (πr − rr) − 1/(2β))²."""
    h = (policy_chosen - ref_chosen) - (policy_rejected - ref_rejected)
    return (h - 1.0 / (2.0 * beta)) ** 2
