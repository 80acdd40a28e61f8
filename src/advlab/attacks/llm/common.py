"""Shared pieces of every LLM attack: target loss, token masks, prefix KV cache, OOM-safe chunking.

Greedy generation, padding and the stop-id rule live in :mod:`advlab.models.generation` (re-exported here
under their names for the attacks' callers).

Conventions (kept stable; AutoDAN, PAIR, CAT and trigger learning call these):

- A *target loss* is the teacher-forced cross-entropy of the target tokens y_1..y_T given the
  prompt: L = (1/T) Σ_t −log p(y_t | x, y_<t). Sequences are laid out so that the target sits at
  the **end** of every row (left padding when rows differ in length); the model is then asked for
  logits of the last T+1 positions only (``logits_to_keep``), never for the whole sequence.
- The mellowmax variant (nanoGCG's option) is mm_α(−z) = (1/α)·(log Σ_t exp(−α z_t) − log T),
  z_t the target logit at position t.
- A *prefix cache* holds the KV cache of tokens shared by every candidate (system prompt,
  template header, request): computed once with batch 1 through transformers' cache API
  (``cache=DynamicCache(config=...)``), then **expanded** (a view, no copy) to the batch of
  candidates for each forward pass.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from transformers import DynamicCache
from transformers.cache_utils import DynamicLayer

from advlab.errors import ConfigError
from advlab.models.generation import (
    embedding_matrix,
    greedy_generate,
    left_pad,
    model_device,
    pad_id_of,
    position_ids_from_mask,
    stop_token_ids,
)

__all__ = [
    "IGNORE_INDEX",
    "AdaptiveChunker",
    "PrefixCache",
    "batch_target_loss",
    "compute_prefix_cache",
    "disallowed_token_mask",
    "embedding_matrix",
    "greedy_generate",
    "is_oom",
    "left_pad",
    "mellowmax",
    "model_device",
    "pad_id_of",
    "position_ids_from_mask",
    "stop_token_ids",
    "target_logits",
    "target_loss_from_logits",
    "target_matches",
    "to_ids_tensor",
]

IGNORE_INDEX = -100


# ---- embeddings and token masks ---------------------------------------------------------------
def disallowed_token_mask(
    tokenizer: Any,
    vocab_size: int,
    *,
    allow_non_ascii: bool = False,
    allow_special: bool = False,
    extra_ids: Sequence[int] = (),
) -> torch.Tensor:
    """Boolean mask [V]: True for tokens an attack may not place in its slot.

    Disallowed: ids beyond the tokenizer, special/added-special tokens (unless ``allow_special``),
    tokens that decode to non-ASCII or non-printable text (unless ``allow_non_ascii``), tokens that
    decode to the empty string, and ``extra_ids``.
    """
    mask = torch.zeros(vocab_size, dtype=torch.bool)
    n_tok = len(tokenizer)
    if n_tok < vocab_size:
        mask[n_tok:] = True
    special = set(getattr(tokenizer, "all_special_ids", []) or [])
    for attr in ("bos_token_id", "eos_token_id", "pad_token_id", "unk_token_id"):
        v = getattr(tokenizer, attr, None)
        if isinstance(v, int):
            special.add(v)
    added = getattr(tokenizer, "added_tokens_decoder", {}) or {}
    special.update(int(i) for i, t in added.items() if getattr(t, "special", False))
    upto = min(n_tok, vocab_size)
    texts = tokenizer.batch_decode([[i] for i in range(upto)], clean_up_tokenization_spaces=False)
    for i, text in enumerate(texts):
        if text == "" or not allow_non_ascii and not (text.isascii() and text.isprintable()):
            mask[i] = True
    if not allow_special:
        for i in special:
            if 0 <= i < vocab_size:
                mask[i] = True
    for i in extra_ids:
        if 0 <= i < vocab_size:
            mask[i] = True
    return mask


# ---- losses ------------------------------------------------------------------------------------
def mellowmax(t: torch.Tensor, alpha: float = 1.0, dim: int = -1) -> torch.Tensor:
    """mm_α(t) = (1/α)·(logsumexp(α t) − log n) along ``dim``."""
    n = torch.tensor(t.shape[dim], dtype=t.dtype, device=t.device)
    return (torch.logsumexp(alpha * t, dim=dim) - torch.log(n)) / alpha


def target_loss_from_logits(
    logits: torch.Tensor,
    target_ids: torch.Tensor,
    target_mask: torch.Tensor | None = None,
    *,
    kind: str = "ce",
    mellowmax_alpha: float = 1.0,
) -> torch.Tensor:
    """Per-row loss [B] from target-position logits [B, T, V] and targets [B, T].

    ``target_mask`` [B, T] marks real target tokens (rows with shorter targets are left-padded
    with False). ``kind`` is ``"ce"`` (mean cross-entropy over real tokens) or ``"mellowmax"``.
    """
    if logits.dtype in (torch.float16, torch.bfloat16):
        logits = logits.float()  # half-precision logits are upcast; float64 stays float64
    if target_ids.dim() == 1:
        target_ids = target_ids.unsqueeze(0).expand(logits.shape[0], -1)
    if target_mask is None:
        target_mask = torch.ones_like(target_ids, dtype=torch.bool)
    safe_ids = target_ids.clamp(min=0)
    if kind == "ce":
        logp = torch.log_softmax(logits, dim=-1).gather(-1, safe_ids.unsqueeze(-1)).squeeze(-1)
        nll = -(logp * target_mask)
        return nll.sum(-1) / target_mask.sum(-1).clamp(min=1)
    if kind == "mellowmax":
        z = logits.gather(-1, safe_ids.unsqueeze(-1)).squeeze(-1)
        if bool(target_mask.all()):
            return mellowmax(-z, mellowmax_alpha, dim=-1)
        out = []
        for b in range(z.shape[0]):
            out.append(mellowmax(-z[b][target_mask[b]], mellowmax_alpha, dim=-1))
        return torch.stack(out)
    raise ConfigError(f"loss kind {kind!r} is unknown; use 'ce' or 'mellowmax'")


def target_matches(logits: torch.Tensor, target_ids: torch.Tensor, target_mask: torch.Tensor | None = None):
    """[B] bool: greedy decoding reproduces the target (argmax equals the target at every real position)."""
    if target_ids.dim() == 1:
        target_ids = target_ids.unsqueeze(0).expand(logits.shape[0], -1)
    ok = logits.argmax(-1) == target_ids
    if target_mask is not None:
        ok = ok | ~target_mask
    return ok.all(-1)


# ---- prefix KV cache ---------------------------------------------------------------------------
@dataclass
class PrefixCache:
    """KV cache of a shared prefix (batch 1): one (key, value) pair per layer, its length, the model config."""

    kv: list[tuple[torch.Tensor, torch.Tensor]]
    length: int
    config: Any = None

    def expand(self, batch: int) -> DynamicCache:
        """A fresh ``DynamicCache`` holding the prefix for ``batch`` rows.

        Plain dynamic layers get views expanded to ``batch`` rows (no B-fold copy of the prefix before
        the forward pass); any other layer type (e.g. sliding-window) is filled through its own
        ``update`` so that its bookkeeping stays right.
        """
        cache = DynamicCache(config=self.config)
        for i, (k, v) in enumerate(self.kv):
            kb, vb = k.expand(batch, *k.shape[1:]), v.expand(batch, *v.shape[1:])
            layer = cache.layers[i] if i < len(cache.layers) else None
            if type(layer) is DynamicLayer:
                layer.lazy_initialization(kb, vb)
                layer.keys, layer.values = kb, vb
            else:
                cache.update(kb, vb, i)
        return cache


def compute_prefix_cache(
    model: Any, prefix_ids: Sequence[int] | torch.Tensor | None = None, *, prefix_embeds: torch.Tensor | None = None
) -> PrefixCache | None:
    """Run the shared prefix once (no grad) and keep its KV cache; None for an empty prefix."""
    if prefix_embeds is None:
        if prefix_ids is None or len(prefix_ids) == 0:
            return None
        ids = torch.as_tensor(list(prefix_ids) if not torch.is_tensor(prefix_ids) else prefix_ids)
        prefix_embeds = embedding_matrix(model)[ids.to(model_device(model))].unsqueeze(0)
    if prefix_embeds.shape[1] == 0:
        return None
    with torch.no_grad():
        out = model(inputs_embeds=prefix_embeds.detach(), cache=DynamicCache(config=model.config), use_cache=True)
    kv = [(layer.keys.detach(), layer.values.detach()) for layer in out.cache.layers]
    return PrefixCache(kv=kv, length=int(prefix_embeds.shape[1]), config=model.config)


# ---- forward at target positions ---------------------------------------------------------------
def target_logits(
    model: Any,
    n_target: int,
    *,
    input_ids: torch.Tensor | None = None,
    inputs_embeds: torch.Tensor | None = None,
    attention_mask: torch.Tensor | None = None,
    prefix: PrefixCache | None = None,
) -> torch.Tensor:
    """Logits [B, n_target, V] predicting the last ``n_target`` tokens of each row.

    Rows end with their target (left padding, if any, marked by ``attention_mask``); ``prefix``
    is a shared prefix cache placed before every row. Only the last n_target+1 positions are
    projected to the vocabulary.
    """
    x = inputs_embeds if inputs_embeds is not None else input_ids
    batch, length = x.shape[0], x.shape[1]
    kwargs: dict[str, Any] = {"logits_to_keep": n_target + 1, "use_cache": prefix is not None}
    offset = prefix.length if prefix is not None else 0
    if prefix is not None:
        kwargs["cache"] = prefix.expand(batch)
    if attention_mask is not None:
        kwargs["position_ids"] = position_ids_from_mask(attention_mask, offset)
        if prefix is not None:
            ones = torch.ones(batch, offset, dtype=attention_mask.dtype, device=attention_mask.device)
            attention_mask = torch.cat([ones, attention_mask], dim=1)
        kwargs["attention_mask"] = attention_mask
    elif prefix is not None:
        kwargs["position_ids"] = torch.arange(offset, offset + length, device=x.device).unsqueeze(0).expand(batch, -1)
    if inputs_embeds is not None:
        out = model(inputs_embeds=inputs_embeds, **kwargs)
    else:
        out = model(input_ids=input_ids, **kwargs)
    return out.logits[:, :-1, :]


def is_oom(exc: BaseException) -> bool:
    """True for an out-of-memory error on any device."""
    oom_types = tuple(t for t in (getattr(torch, "OutOfMemoryError", None),) if t is not None)
    if oom_types and isinstance(exc, oom_types):
        return True
    return isinstance(exc, RuntimeError) and "out of memory" in str(exc).lower()


class AdaptiveChunker:
    """Run a function over row chunks, halving the chunk size whenever memory runs out.

    A size reduced by an OOM is remembered as a cap for later calls (so one OOM costs one retry).
    """

    def __init__(self, chunk_size: int | None = None) -> None:
        self.chunk_size = chunk_size
        self.ooms = 0

    def map(self, fn: Callable[[int, int], torch.Tensor], n: int) -> torch.Tensor:
        """Concatenate ``fn(start, stop)`` over [0, n) in chunks."""
        size = min(self.chunk_size or n, n) if n > 0 else 1
        while True:
            try:
                parts = [fn(s, min(s + size, n)) for s in range(0, n, size)]
                return torch.cat(parts, dim=0)
            except Exception as exc:  # noqa: BLE001 - only OOM is retried, the rest re-raised
                if not is_oom(exc) or size <= 1:
                    raise
                size = max(1, size // 2)
                self.chunk_size = size
                self.ooms += 1
                if torch.cuda.is_available():
                    torch.cuda.empty_cache()


def batch_target_loss(
    model: Any,
    rows: torch.Tensor,
    target_ids: torch.Tensor,
    *,
    prefix: PrefixCache | None = None,
    kind: str = "ce",
    mellowmax_alpha: float = 1.0,
    chunker: AdaptiveChunker | None = None,
    return_matches: bool = False,
) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """Target loss [B] of equal-length token rows [B, L] that end with ``target_ids`` [T] (no grad).

    ``prefix`` is placed before every row through an expanded cache; memory errors halve the chunk.
    With ``return_matches`` also returns [B] bool "greedy decoding reproduces the target".
    """
    chunker = chunker or AdaptiveChunker()
    n_t = int(target_ids.shape[-1])

    def run(s: int, e: int) -> torch.Tensor:
        with torch.no_grad():
            logits = target_logits(model, n_t, input_ids=rows[s:e], prefix=prefix)
            loss = target_loss_from_logits(logits, target_ids, kind=kind, mellowmax_alpha=mellowmax_alpha)
            match = target_matches(logits, target_ids)
        return torch.stack([loss, match.float()], dim=1)

    both = chunker.map(run, rows.shape[0])
    if return_matches:
        return both[:, 0], both[:, 1].bool()
    return both[:, 0]


def to_ids_tensor(ids: Sequence[int] | torch.Tensor, device: Any) -> torch.Tensor:
    return torch.as_tensor(list(ids) if not torch.is_tensor(ids) else ids, dtype=torch.long, device=device)
