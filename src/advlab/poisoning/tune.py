"""Instruction tuning of a causal LM on a (poisoned) task set: plain SFT through the one LLM training
engine (:mod:`advlab.training.llm.engine`; accelerate, peft LoRA or full fine-tuning, safetensors
checkpoints). Defaults are the paper's reference (PAPERS.md §5): LoRA r 8, α 16, dropout 0.1 on the
q/v projections, AdamW lr 3e-4, 2 epochs, batch 16, max length 300. Batches are paired and
length-grouped (:func:`batch_order`) and left-padded (:func:`left_padded`).
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from advlab.errors import require
from advlab.poisoning.tasks import TaskExample


@dataclass
class TuneConfig:
    epochs: float = 2.0
    batch_size: int = 16
    lr: float = 3e-4
    lora_rank: int = 8
    lora_alpha: float = 16.0
    lora_dropout: float = 0.1
    lora_target_modules: tuple[str, ...] = ("q_proj", "v_proj")
    max_len: int = 300
    weight_decay: float = 0.0
    grad_clip: float = 1.0
    seed: int = 0

    def __post_init__(self) -> None:
        self.lora_target_modules = tuple(self.lora_target_modules)
        require(self.epochs > 0, f"--epochs {self.epochs}: must be positive")
        require(self.batch_size >= 1, f"--batch-size {self.batch_size}: must be at least 1")
        require(self.max_len >= 16, f"--max-len {self.max_len}: must be at least 16 tokens")

    def n_steps(self, n_examples: int) -> int:
        return max(1, math.ceil(self.epochs * n_examples / self.batch_size))

    def engine_config(self, n_examples: int) -> Any:
        from advlab.training.llm.engine import EngineConfig

        return EngineConfig(max_steps=self.n_steps(n_examples), lr=self.lr, weight_decay=self.weight_decay,
                            grad_clip=self.grad_clip, lora_rank=self.lora_rank, lora_alpha=self.lora_alpha,
                            lora_dropout=self.lora_dropout, lora_target_modules=self.lora_target_modules,
                            seed=self.seed)


def _hash(*parts: object) -> bytes:
    return hashlib.blake2b(":".join(map(str, parts)).encode(), digest_size=8).digest()


def batch_order(keys: Sequence[str], lengths: Sequence[int], batch_size: int, seed: int,
                group: int = 8) -> Iterator[list[int]]:
    """Index batches over epochs (infinite), length-grouped and paired.

    Each epoch puts every example into one of ceil(n / (group · batch_size)) buckets by a seeded hash
    of its key (example id); a bucket is sorted by length and cut into batches, so a batch pads little
    (27 % less CPU time per epoch than random batches on SST-2). Buckets depend on the key alone, so sets
    that share examples batch the shared ones alike: a poisoned set and its clean source differ only
    by where the poisons fall (paired runs: the clean-accuracy gap measures the poisons, not the shuffle).
    """
    n, epoch = len(keys), 0
    n_buckets = max(1, math.ceil(n / (group * batch_size)))
    while True:
        buckets: list[list[int]] = [[] for _ in range(n_buckets)]
        for i in range(n):
            buckets[int.from_bytes(_hash(seed, epoch, keys[i]), "big") % n_buckets].append(i)
        for bucket in buckets:
            bucket.sort(key=lambda i: (lengths[i], _hash(seed, epoch, "tie", keys[i])))
            for s in range(0, len(bucket), batch_size):
                yield bucket[s : s + batch_size]
        epoch += 1


def left_padded(rows: Sequence[Any], pad_id: int) -> dict[str, torch.Tensor]:
    """Left-padded ``input_ids``, ``attention_mask`` and ``labels`` (−100 except the response): every
    response ends at the last position, so the engine's :func:`~advlab.training.llm.engine.sft_loss`
    projects only the last max(response length) positions to the vocabulary (a task answer is a few tokens
    after a long prompt; projecting every position cost a fifth of the step)."""
    width = max(len(r.ids) for r in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    labels = torch.full((len(rows), width), -100, dtype=torch.long)
    for i, r in enumerate(rows):
        ids[i, width - len(r.ids):] = torch.tensor(r.ids)
        mask[i, width - len(r.ids):] = 1
        labels[i, width - len(r.response_ids):] = torch.tensor(r.response_ids)
    return {"input_ids": ids, "attention_mask": mask, "labels": labels}


class Tuner:
    """SFT on ``examples`` with the engine; :meth:`run` trains up to a step, :meth:`save`/:meth:`load`
    checkpoint, :meth:`export` writes the merged model directory."""

    def __init__(self, model: Any, tokenizer: Any, examples: Sequence[TaskExample], cfg: TuneConfig,
                 device: str = "cpu") -> None:
        from advlab.training.llm.batches import ChatEncoder
        from advlab.training.llm.engine import Engine, sft_loss

        require(len(examples) > 0, "the training set is empty; pass a task file with examples")
        self.tokenizer, self.cfg = tokenizer, cfg
        enc = ChatEncoder(tokenizer, max_len=cfg.max_len)
        self.rows = [enc.encode(ex.prompt, ex.output) for ex in examples]
        self.keys = [ex.id for ex in examples]
        self.max_steps = cfg.n_steps(len(self.rows))
        self.engine = Engine(model, cfg.engine_config(len(self.rows)), sft_loss, device=device)
        self.pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0

    @property
    def step(self) -> int:
        return self.engine.step

    def run(self, until: int | None = None, on_step: Callable[[dict], None] | None = None) -> list[dict]:
        """Train from the current step to ``until`` (default: the end); returns each step's logs."""
        until = min(until or self.max_steps, self.max_steps)
        order = batch_order(self.keys, [len(r.ids) for r in self.rows], self.cfg.batch_size, self.cfg.seed)
        for _ in range(self.engine.step):  # the same batches after a resume
            next(order)
        logs = []
        while self.engine.step < until:
            batch = left_padded([self.rows[i] for i in next(order)], self.pad)
            log = self.engine.train_step([batch])
            logs.append({"step": log["step"], "loss": log["loss"], "lr": log["lr"]})
            if on_step is not None:
                on_step(logs[-1])
        return logs

    def model(self) -> Any:
        """The trained model in eval mode (LoRA still attached; a view of the training weights)."""
        m = self.engine.raw
        m.eval()
        return m

    def merged(self) -> Any:
        """The trained model with LoRA merged into its weights (eval mode)."""
        m = self.engine.raw
        m = m.merge_and_unload() if hasattr(m, "merge_and_unload") else m
        return m.eval()

    def save(self, path: str | Path) -> None:
        self.engine.save(path)

    def load(self, path: str | Path) -> None:
        self.engine.load(path)

    def export(self, out: str | Path) -> Path:
        return self.engine.export(out, self.tokenizer)


def tune(model: Any, tokenizer: Any, examples: Sequence[TaskExample], cfg: TuneConfig,
         device: str = "cpu") -> tuple[Any, list[dict]]:
    """Tune ``model`` (changed in place) on ``examples``; returns the merged model and the loss log."""
    t = Tuner(model, tokenizer, examples, cfg, device)
    logs = t.run()
    return t.merged(), logs
