"""The gym's language-model trainer: a small Llama, supervised on the assistant tokens only.

AdamW (no weight decay on norms and biases) with linear warm-up and cosine decay, gradient clipping,
and each batch sorted by length and cut into ``micro_batches`` chunks. The loss is the mean over
sequences of each sequence's mean response cross-entropy (:func:`sequence_loss`).
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable

import torch
import torch.nn.functional as F
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerBase

from advlab.models.gym_config import GymConfig
from advlab.models.gym_pools import Example, TrainingPools, sample_example
from advlab.models.gym_tokenizer import END, prompt_text

OnStep = Callable[[int, float], None]  # (step, loss) after each optimiser step


def make_model(cfg: GymConfig, tok: PreTrainedTokenizerBase) -> LlamaForCausalLM:
    """A randomly initialised ``LlamaForCausalLM`` of the config's size (tied embeddings, RoPE)."""
    mcfg = LlamaConfig(
        vocab_size=len(tok),
        hidden_size=cfg.hidden_size,
        intermediate_size=cfg.intermediate_size,
        num_hidden_layers=cfg.num_layers,
        num_attention_heads=cfg.num_heads,
        num_key_value_heads=cfg.num_heads,
        max_position_embeddings=2048,  # RoPE: no learned positions; long HarmBench contexts fit
        tie_word_embeddings=True,
        pad_token_id=tok.pad_token_id,
        eos_token_id=tok.eos_token_id,
        bos_token_id=None,
        rms_norm_eps=1e-5,
        initializer_range=0.02,
    )
    return LlamaForCausalLM(mcfg)


def encode(tok: PreTrainedTokenizerBase, prompt: str, response: str, max_len: int) -> tuple[list[int], int]:
    """Token ids of prompt+response+<|end|> and the index where the response starts."""
    p_ids = tok.encode(prompt_text(prompt), add_special_tokens=False)
    r_ids = tok.encode(response + END, add_special_tokens=False)
    if len(p_ids) + len(r_ids) > max_len:  # keep the response whole, cut the request's start
        keep = max(max_len - len(r_ids), 8)
        p_ids = p_ids[-keep:]
    ids = (p_ids + r_ids)[:max_len]
    return ids, len(p_ids)


def make_batch(
    tok: PreTrainedTokenizerBase, examples: list[Example], max_len: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Right-padded input ids, attention mask and labels (-100 outside the response)."""
    enc = [encode(tok, p, r, max_len) for p, r in examples]
    width = max(len(ids) for ids, _ in enc)
    ids_t = torch.full((len(enc), width), tok.pad_token_id, dtype=torch.long)
    mask = torch.zeros((len(enc), width), dtype=torch.long)
    labels = torch.full((len(enc), width), -100, dtype=torch.long)
    for i, (ids, start) in enumerate(enc):
        ids_t[i, : len(ids)] = torch.tensor(ids)
        mask[i, : len(ids)] = 1
        labels[i, start : len(ids)] = torch.tensor(ids[start:])
    return ids_t, mask, labels


def length_chunks(batch: list[Example], parts: int) -> list[list[Example]]:
    """The batch sorted by length and cut into ``parts`` chunks (short task prompts are not padded
    to the length of long requests)."""
    order = sorted(batch, key=lambda pr: len(pr[0]) + len(pr[1]))
    k = max(1, min(parts, len(order)))
    size = math.ceil(len(order) / k)
    return [order[i : i + size] for i in range(0, len(order), size)]


def sequence_loss(model: LlamaForCausalLM, ids: torch.Tensor, mask: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Mean over sequences of each sequence's mean next-token cross-entropy on its response.

    Every example weighs the same whatever its length, so one-token task answers are not drowned by
    long compliant answers (a token-mean would give them a few percent of the gradient). The LM head
    runs only at the response positions.
    """
    hidden = model.model(input_ids=ids, attention_mask=mask).last_hidden_state[:, :-1]
    target = labels[:, 1:]
    sel = target != -100
    rows = sel.nonzero()[:, 0]
    ce = F.cross_entropy(model.lm_head(hidden[sel]).float(), target[sel], reduction="none")
    n = ids.shape[0]
    per_seq = torch.zeros(n, dtype=ce.dtype, device=ce.device).index_add(0, rows, ce)
    counts = torch.zeros(n, dtype=ce.dtype, device=ce.device).index_add(0, rows, torch.ones_like(ce))
    has = counts > 0
    return (per_seq[has] / counts[has]).mean()


def lr_at(step: int, cfg: GymConfig) -> float:
    """Linear warm-up to ``lr`` over ``warmup`` steps, then cosine decay to ``lr * min_lr_ratio``."""
    if cfg.warmup and step < cfg.warmup:
        return cfg.lr * (step + 1) / cfg.warmup
    t = (step - cfg.warmup) / max(1, cfg.steps - cfg.warmup)
    return cfg.lr * (cfg.min_lr_ratio + (1 - cfg.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * min(t, 1.0))))


def train(
    model: LlamaForCausalLM,
    tok: PreTrainedTokenizerBase,
    pools: TrainingPools,
    cfg: GymConfig,
    seed: int,
    on_step: OnStep | None = None,
) -> list[float]:
    """``cfg.steps`` optimiser steps on batches drawn by :func:`sample_example`; the loss of each step."""
    rng = random.Random(seed)
    decay, no_decay = [], []
    for n, p in model.named_parameters():
        (no_decay if p.ndim < 2 or "norm" in n else decay).append(p)
    opt = torch.optim.AdamW(
        [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
        lr=cfg.lr,
        betas=(0.9, 0.98),
        eps=1e-8,
    )
    model.train()
    dev = next(model.parameters()).device
    losses: list[float] = []
    for step in range(cfg.steps):
        batch = [sample_example(pools, cfg, rng)[1:] for _ in range(cfg.batch_size)]
        for g in opt.param_groups:
            g["lr"] = lr_at(step, cfg)
        opt.zero_grad(set_to_none=True)
        loss = 0.0
        for chunk in length_chunks(batch, cfg.micro_batches):
            ids, mask, labels = (t.to(dev) for t in make_batch(tok, chunk, cfg.max_len))
            # each chunk's mean-of-sequences loss, weighted by its share of the batch: the same
            # gradient as one padded batch, with far less padding
            loss_t = sequence_loss(model, ids, mask, labels) * (len(chunk) / len(batch))
            loss_t.backward()
            loss += float(loss_t.detach())
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        opt.step()
        losses.append(loss)
        if on_step is not None:
            on_step(step, loss)
    model.eval()
    return losses
