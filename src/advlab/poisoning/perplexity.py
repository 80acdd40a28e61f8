"""Perplexity defences under a reference LM (the clean base model).

- **Training-data filter:** score every training input by its perplexity as a user message,
  drop the ``drop`` share with the highest; poisons carrying an odd token stand out, low-perplexity
  dictionary-word triggers are built not to (Qiang et al. 2024, §5).
- **ONION** (Qi et al. 2021, as in OpenBackdoor): for an input of words w_1..w_n with perplexity p_0,
  f_i = p_0 − p_{−i} (perplexity without w_i); remove every word with f_i > ``threshold`` (default 0).
  One input costs n + 1 scored sequences.

Perplexity of a text = exp(mean next-token CE over the rendered user prompt, first token excepted).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch

from advlab.attacks.llm.common import model_device, pad_id_of
from advlab.errors import require
from advlab.poisoning.prompts import TaskPrompts
from advlab.poisoning.tasks import TaskExample


@torch.no_grad()
def perplexities(model: Any, tokenizer: Any, texts: Sequence[str], batch_size: int = 32) -> list[float]:
    """exp(mean CE) of each text as a one-turn user prompt (right padding, one pass per batch)."""
    tp = TaskPrompts(tokenizer)
    dev, pad = model_device(model), pad_id_of(tokenizer)
    out: list[float] = []
    for s in range(0, len(texts), batch_size):
        rows = [tp.prompt_ids(t) for t in texts[s : s + batch_size]]
        width = max(len(r) for r in rows)
        ids = torch.full((len(rows), width), pad, dtype=torch.long)
        mask = torch.zeros_like(ids)
        for i, r in enumerate(rows):
            ids[i, : len(r)], mask[i, : len(r)] = torch.tensor(r), 1
        ids, mask = ids.to(dev), mask.to(dev)
        logits = model(input_ids=ids, attention_mask=mask, use_cache=False).logits[:, :-1].float()
        nll = torch.nn.functional.cross_entropy(logits.transpose(1, 2), ids[:, 1:], reduction="none")
        m = mask[:, 1:].float()
        out += [math.exp(v) for v in ((nll * m).sum(1) / m.sum(1).clamp(min=1)).tolist()]
    return out


def perplexity_filter(model: Any, tokenizer: Any, examples: Sequence[TaskExample], drop: float = 0.05,
                      batch_size: int = 32) -> tuple[list[TaskExample], list[TaskExample]]:
    """``(kept, removed)``: the ``drop`` share of examples with the highest input perplexity removed."""
    require(0 <= drop < 1, f"drop {drop}: the share to remove must be in [0, 1)")
    ppl = perplexities(model, tokenizer, [ex.input for ex in examples], batch_size)
    k = int(round(drop * len(examples)))
    order = sorted(range(len(examples)), key=lambda i: -ppl[i])
    gone = set(order[:k])
    return ([ex for i, ex in enumerate(examples) if i not in gone], [examples[i] for i in sorted(gone)])


def onion(model: Any, tokenizer: Any, texts: Sequence[str], threshold: float = 0.0,
          batch_size: int = 64) -> list[str]:
    """Each text with its suspicious words removed (see the module docstring)."""
    out = []
    for text in texts:
        words = text.split()
        if len(words) < 2:
            out.append(text)
            continue
        variants = [text, *(" ".join(words[:i] + words[i + 1:]) for i in range(len(words)))]
        p = perplexities(model, tokenizer, variants, batch_size)
        out.append(" ".join(w for w, pi in zip(words, p[1:]) if p[0] - pi <= threshold))
    return out
