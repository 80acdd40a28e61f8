"""The LLM training engine: one optimiser step at a time, generic in the loss.

``Engine(model, config, loss_fn)`` wraps a causal LM for training with ``accelerate.Accelerator``
(one process, or DDP under ``accelerate launch`` / ``torchrun``; gradients are synchronised by
accelerate, never by hand):

- parameters: peft LoRA (``lora_rank`` r, ``lora_alpha`` α, ``lora_dropout``, ``lora_target_modules``;
  empty = every linear layer but the LM head); ``lora_rank=0`` trains every weight;
- AdamW (``lr``, ``weight_decay``), cosine schedule from ``lr`` to 0 over ``max_steps`` after a
  linear ``warmup_steps``, gradient-norm clipping at ``grad_clip`` (0 = off);
- :meth:`Engine.train_step` takes the step's micro-batches for *this* process (gradient accumulation
  = several micro-batches; every micro-batch's loss is divided by their number), calls
  ``loss_fn(ctx, micro_batch) -> (loss, logs)`` on each, steps the optimiser once and returns the logs
  (floats, averaged over micro-batches and processes; keys ending in ``_passes`` or ``examples`` are
  summed instead);
- :meth:`save` / :meth:`load`: ``accelerator.save_state`` (weights as safetensors, optimizer, schedule,
  step counter, every process's RNG state and any ``extra_state`` object with ``state_dict`` /
  ``load_state_dict``, e.g. R2D2's GCG pool), so a resumed run continues bit-exactly;
- :meth:`export`: the trained model (LoRA merged into the weights) as a Hugging Face directory that
  :func:`advlab.models.load_chat_model` loads.

The loss callable is where methods live (SFT here; CAT, CAPO, R2D2 in sibling modules). ``ctx.model``
is the prepared (possibly DDP-wrapped) model for the gradient-bearing forward pass, ``ctx.raw`` the
plain model for attacks and no-grad passes. For data parallelism to equal one process on the same
global batch, a loss should be a mean over its examples of per-example terms, and every process
should get the same number of examples of each kind.
"""

from __future__ import annotations

import logging
import math
import warnings
from collections.abc import Callable, Sequence
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from advlab import distributed
from advlab.errors import ConfigError, require
from advlab.training.llm.losses import labelled_logps, mean_nll

LossFn = Callable[["StepContext", Any], tuple[torch.Tensor, dict[str, float]]]
SUMMED = ("_passes", "examples")


@dataclass
class EngineConfig:
    """Optimisation and parameterisation of a training run (defaults: the CAT reference, PAPERS.md §1)."""

    max_steps: int = 100
    lr: float = 2e-4
    weight_decay: float = 0.001
    warmup_steps: int = 0
    grad_clip: float = 0.3
    lora_rank: int = 64
    lora_alpha: float = 16.0
    lora_dropout: float = 0.1
    lora_target_modules: tuple[str, ...] = ()
    seed: int = 0

    def __post_init__(self) -> None:
        self.lora_target_modules = tuple(self.lora_target_modules)
        require(self.max_steps >= 1, f"--max-steps {self.max_steps}: must be at least 1")
        require(self.lr > 0, f"--lr {self.lr}: must be positive")
        require(self.lora_rank >= 0, f"--lora-rank {self.lora_rank}: must be 0 (full fine-tuning) or more")
        require(0 <= self.lora_dropout < 1, f"--lora-dropout {self.lora_dropout}: must be in [0, 1)")
        require(self.grad_clip >= 0, f"--grad-clip {self.grad_clip}: must be 0 (off) or more")
        require(self.warmup_steps >= 0, f"--warmup-steps {self.warmup_steps}: must be 0 or more")


@dataclass
class StepContext:
    """What a loss callable sees: the model to differentiate, the plain model, the step and the device."""

    model: Any
    raw: Any
    step: int
    device: torch.device
    extra: dict[str, Any] = field(default_factory=dict)


class _Counter:
    """The optimiser step, saved with the accelerate state."""

    def __init__(self) -> None:
        self.step = 0

    def state_dict(self) -> dict[str, int]:
        return {"step": self.step}

    def load_state_dict(self, state: dict[str, int]) -> None:
        self.step = int(state["step"])


def linear_module_names(model: Any) -> set[str]:
    """Last name component of every ``nn.Linear`` (what LoRA ``target_modules`` match), LM head excluded."""
    out_emb = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    linear = torch.nn.Linear
    return {n.rsplit(".", 1)[-1] for n, m in model.named_modules() if isinstance(m, linear) and m is not out_emb}


def apply_lora(model: Any, cfg: EngineConfig) -> Any:
    """The model with LoRA adapters (peft), or the model itself, all weights trainable, when rank is 0."""
    if cfg.lora_rank == 0:
        model.requires_grad_(True)
        return model
    from peft import LoraConfig, get_peft_model

    names = linear_module_names(model)
    missing = sorted(set(cfg.lora_target_modules) - names)
    require(not missing, f"--lora-target-modules {','.join(missing)}: not in the model; "
            f"use some of {','.join(sorted(names))}", ConfigError)
    targets: Any = list(cfg.lora_target_modules) or "all-linear"
    lcfg = LoraConfig(r=cfg.lora_rank, lora_alpha=cfg.lora_alpha, lora_dropout=cfg.lora_dropout,
                      target_modules=targets, bias="none", task_type="CAUSAL_LM")
    with warnings.catch_warnings():  # peft 0.21 asks transformers 5 a deprecated question inside itself
        warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)
        return get_peft_model(model, lcfg)


def cosine_lambda(cfg: EngineConfig) -> Callable[[int], float]:
    """lr multiplier at step s: s/warmup during warm-up, then ½(1 + cos(π·progress)) down to 0."""

    def f(s: int) -> float:
        if s < cfg.warmup_steps:
            return (s + 1) / (cfg.warmup_steps + 1)
        span = max(1, cfg.max_steps - cfg.warmup_steps)
        return 0.5 * (1.0 + math.cos(math.pi * min(1.0, (s - cfg.warmup_steps) / span)))

    return f


class Engine:
    """Trains ``model`` with ``loss_fn`` (see the module docstring); ``device`` ``cpu`` or ``cuda``."""

    def __init__(self, model: Any, config: EngineConfig, loss_fn: LossFn, *, device: str = "cpu",
                 extra_state: Sequence[Any] = ()) -> None:
        from accelerate import Accelerator
        from accelerate.utils import set_seed

        self.config = config
        self.loss_fn = loss_fn
        distributed.init_from_env(device)  # the group advlab makes (gloo/nccl); Accelerator takes it over
        self.accelerator = Accelerator(cpu=str(device) == "cpu", mixed_precision="no")
        set_seed(config.seed)
        model = apply_lora(model, config)
        model.train()
        params = [p for p in model.parameters() if p.requires_grad]
        require(bool(params), "nothing to train: every parameter is frozen", ConfigError)
        opt = torch.optim.AdamW(params, lr=config.lr, weight_decay=config.weight_decay)
        # the schedule is stepped by hand once per optimiser step (accelerate's wrapper steps it once per
        # process, which would make 2 processes decay twice as fast as 1 on the same global batch)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(opt, cosine_lambda(config))
        self.model, self.optimizer = self.accelerator.prepare(model, opt)
        self.counter = _Counter()
        self.accelerator.register_for_checkpointing(self.scheduler, self.counter, *extra_state)

    @property
    def step(self) -> int:
        return self.counter.step

    @property
    def raw(self) -> Any:
        return self.accelerator.unwrap_model(self.model)

    @property
    def device(self) -> torch.device:
        return self.accelerator.device

    def train_step(self, micro_batches: Sequence[Any]) -> dict[str, float]:
        """One optimiser step over this process's micro-batches; returns the step's logs."""
        require(len(micro_batches) >= 1, "train_step needs at least one micro-batch")
        acc, n = self.accelerator, len(micro_batches)
        self.model.train()
        sums: dict[str, float] = {}
        for i, mb in enumerate(micro_batches):
            ctx = StepContext(self.model, self.raw, self.counter.step, acc.device)
            sync = i == n - 1
            with acc.no_sync(self.model) if not sync else nullcontext():
                loss, logs = self.loss_fn(ctx, mb)
                acc.backward(loss / n)
            for k, v in {"loss": float(loss.detach()), **logs}.items():
                sums[k] = sums.get(k, 0.0) + float(v) / (1 if k.endswith(SUMMED) else n)
        grad_norm = float("nan")
        if self.config.grad_clip > 0:
            grad_norm = float(acc.clip_grad_norm_(self.model.parameters(), self.config.grad_clip))
        lr = self.scheduler.get_last_lr()[0]
        self.optimizer.step()
        self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        self.counter.step += 1
        logs = self._reduce(sums)
        logs.update(step=self.counter.step, lr=lr, grad_norm=grad_norm)
        return logs

    def _reduce(self, logs: dict[str, float]) -> dict[str, float]:
        """Sum the counters and average the rest over processes."""
        acc = self.accelerator
        if acc.num_processes == 1:
            return dict(logs)
        keys = sorted(logs)
        t = torch.tensor([logs[k] for k in keys], dtype=torch.float64, device=acc.device)
        t = acc.reduce(t, reduction="sum")
        return {k: float(v) / (1 if k.endswith(SUMMED) else acc.num_processes) for k, v in zip(keys, t.tolist())}

    def save(self, path: str | Path) -> None:
        """Checkpoint (weights as safetensors, optimizer, schedule, step, RNG) into ``path``.

        With tied input/output embeddings accelerate drops the alias and warns on every save; the reload
        re-ties them (the resume tests check the weights bit for bit), so that warning is silenced here."""
        tied = bool(getattr(getattr(self.raw, "config", None), "tie_word_embeddings", False))
        log = logging.getLogger("accelerate.utils.other")
        quiet = _DropSharedTensorNote()
        if tied:
            log.addFilter(quiet)
        try:
            self.accelerator.save_state(str(path), safe_serialization=True)
        finally:
            log.removeFilter(quiet)

    def load(self, path: str | Path) -> None:
        self.accelerator.load_state(str(path))

    def export(self, out: str | Path, tokenizer: Any) -> Path:
        """Write the trained model (LoRA merged) + tokenizer to ``out``; returns ``out``."""
        out = Path(out)
        model = self.raw
        if hasattr(model, "merge_and_unload"):
            model = model.merge_and_unload()
        model.eval()
        model.save_pretrained(out, safe_serialization=True)
        tokenizer.save_pretrained(out)
        return out


def response_nll(model: Any, input_ids: torch.Tensor, attention_mask: torch.Tensor, labels: torch.Tensor,
                 inputs_embeds: torch.Tensor | None = None) -> torch.Tensor:
    """Per-row mean next-token cross-entropy on the labelled positions (−100 elsewhere): [B]. Rows may be
    left- or right-padded; only the labelled span is projected to the vocabulary."""
    kw = {"inputs_embeds": inputs_embeds} if inputs_embeds is not None else {"input_ids": input_ids}
    return mean_nll(*labelled_logps(model, labels, attention_mask, **kw))


def sft_loss(ctx: StepContext, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, float]]:
    """Plain SFT: the mean over rows of each row's mean response cross-entropy. ``batch`` holds ``input_ids``,
    ``attention_mask`` and ``labels``, right-padded (:func:`advlab.training.llm.batches.pad_rows`) or left-padded
    (:func:`advlab.poisoning.tune.left_padded`)."""
    b = {k: v.to(ctx.device) for k, v in batch.items()}
    nll = response_nll(ctx.model, b["input_ids"], b["attention_mask"], b["labels"])
    n = int(nll.shape[0])
    return nll.mean(), {"utility": float(nll.detach().mean()), "forward_passes": n, "backward_passes": n}


class _DropSharedTensorNote(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return "Removed shared tensor" not in str(record.getMessage())
