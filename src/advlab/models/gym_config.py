"""How the safety gym is built: :class:`GymConfig`, its quick preset and the task sampling weights."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from advlab.errors import ConfigError

# Sampling weight of each task category (the algorithmic ones need more examples than look-ups).
TASK_WEIGHTS = {
    "add": 1.5,
    "sub": 1.5,
    "mul": 1.0,
    "max": 2.0,
    "reverse": 1.5,
    "upper": 1.2,
    "length": 0.5,
    "count": 0.5,
    "fact": 0.7,
    "sentiment": 0.5,
    "repeat": 4.0,
}
# Wall-clock minutes of a build on two idle CPU cores (measured; a busy machine takes several times longer).
BUILD_MINUTES = {"full": 8, "quick": 2}


@dataclass
class GymConfig:
    """How the safety gym is built. ``quick_preset()`` gives the ~1 minute preset used by tests.

    Sizes: ``hidden_size`` / ``num_layers`` / ``num_heads`` / ``intermediate_size`` / ``vocab_size``.
    Training: ``steps`` optimiser steps of ``batch_size`` sequences, peak ``lr`` after ``warmup``
    steps, cosine decay to ``lr * min_lr_ratio``. Data mix: sampling weights of the three kinds;
    ``augment_prob`` is the chance a request gets a random prefix/suffix/casing change;
    ``public_weight`` the share of public behaviours among harmful (and harmless) samples when
    public files are given; ``task_weights`` the sampling weight of each task category.
    ``micro_batches``: each batch is sorted by length and cut into this many chunks (less padding,
    same gradient). ``threads`` fixes torch's thread count (bit-identity needs the same).

    The defaults (about 1M parameters, 2,600 steps, lr 1e-3) were chosen by measurement: at lr 3e-3
    the model never learned to copy from its prompt (arithmetic, comparisons and letter tasks near
    0 %); at 1e-3 it learns them after a few hundred steps. The repeat-after-me task (weight 4) makes
    the gym able to *say* harmful words, so a broken refusal gives an on-topic completion; with it
    at weight 1.2 and 2,000 steps, repeat was 50 % exact and GCG reached best losses near 1.3. The
    full build takes about 7.5 minutes on two idle CPU cores.
    """

    vocab_size: int = 1536
    hidden_size: int = 128
    num_layers: int = 4
    num_heads: int = 4
    intermediate_size: int = 384
    max_len: int = 96
    steps: int = 2600
    batch_size: int = 40
    lr: float = 1e-3
    warmup: int = 50
    min_lr_ratio: float = 0.05
    weight_decay: float = 0.01
    grad_clip: float = 1.0
    micro_batches: int = 2
    task_weights: dict[str, float] = field(default_factory=lambda: dict(TASK_WEIGHTS))
    mix_harmful: float = 0.16
    mix_harmless: float = 0.24
    mix_task: float = 0.60
    augment_prob: float = 0.35
    public_weight: float = 0.5
    threads: int = 2
    eval_per_kind: int = 96
    quick: bool = False

    @classmethod
    def quick_preset(cls, **overrides: Any) -> GymConfig:
        """The ~1 minute build: smaller model, fewer steps (refuses most harmful, complies on harmless)."""
        base = dict(
            vocab_size=1024,
            hidden_size=128,
            num_layers=2,
            num_heads=4,
            intermediate_size=384,
            steps=400,
            batch_size=32,
            lr=2e-3,
            warmup=20,
            mix_harmful=0.35,
            mix_harmless=0.35,
            mix_task=0.3,
            threads=1,
            eval_per_kind=32,
            quick=True,
        )
        base.update(overrides)
        return cls(**base)

    def __post_init__(self) -> None:
        checks = [
            (self.vocab_size >= 300, "vocab_size must be >= 300 (256 bytes + special tokens + merges)"),
            (
                self.hidden_size > 0 and self.num_heads > 0 and self.hidden_size % self.num_heads == 0,
                "hidden_size must be a positive multiple of num_heads",
            ),
            (
                (self.hidden_size // max(self.num_heads, 1)) % 2 == 0,
                "head size (hidden_size/num_heads) must be even",
            ),
            (
                self.num_layers > 0 and self.intermediate_size > 0,
                "num_layers and intermediate_size must be > 0",
            ),
            (self.max_len >= 16, "max_len must be >= 16 tokens"),
            (self.steps > 0 and self.batch_size > 0, "steps and batch_size must be > 0"),
            (0 < self.lr < 1, "lr must be in (0, 1)"),
            (0 <= self.warmup <= self.steps, "warmup must be in [0, steps]"),
            (0 <= self.min_lr_ratio <= 1, "min_lr_ratio must be in [0, 1]"),
            (
                min(self.mix_harmful, self.mix_harmless, self.mix_task) >= 0
                and self.mix_harmful + self.mix_harmless + self.mix_task > 0,
                "mix weights must be >= 0, not all 0",
            ),
            (
                0 <= self.augment_prob <= 1 and 0 <= self.public_weight <= 1,
                "augment_prob, public_weight in [0, 1]",
            ),
            (self.threads >= 1, "threads must be >= 1"),
            (self.micro_batches >= 1, "micro_batches must be >= 1"),
            (self.eval_per_kind >= 0, "eval_per_kind must be >= 0"),
        ]
        for ok, msg in checks:
            if not ok:
                raise ConfigError(f"GymConfig: {msg}")
