"""``advlab train llm``: continuous adversarial training (CAT, CAPO) or R2D2 as a resumable job.

Items are chunks of ``save_every`` optimiser steps. ``run_item`` trains one chunk, saves the accelerate
state to ``OUT/checkpoints/step-N`` and returns one record per step; a re-run skips finished chunks and
loads the checkpoint its first pending chunk starts from. Every rank runs every chunk (data parallel,
``replicated``); rank 0 writes. At the end ``OUT`` itself becomes a Hugging Face model directory (LoRA
merged) that ``load_chat_model`` / ``--model OUT`` accept, plus ``training_metrics.json``.
"""

from __future__ import annotations

import json
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from advlab import distributed
from advlab.errors import ConfigError, require
from advlab.metrics import training_totals
from advlab.training.llm.adversary import AdversaryConfig, check_layers
from advlab.training.llm.data import (
    DEFAULT_BEHAVIORS,
    DEFAULT_EVAL_BEHAVIORS,
    GYM_SUFFIX,
    GYM_UTILITY,
    adversarial_examples,
    check_disjoint,
    retain_examples,
    utility_pairs,
    with_suffix,
)
from advlab.training.llm.engine import EngineConfig, linear_module_names
from advlab.training.llm.methods import METHODS, LossWeights
from advlab.training.llm.r2d2 import R2D2Config
from advlab.training.llm.sampling import check_sizes, cumulative_weights, step_batches

UTILITY_PER_STEP = 12  # the paper's mix: 1 adversarial example to about 7 utility ones (4 + 2 retain : 12 here)


@dataclass
class TrainLLMConfig:
    """Everything ``advlab train llm`` takes (see its ``--help``)."""

    method: str = "cat"
    model: str = ""
    max_steps: int = 200
    eps: float = 1.0
    attack_steps: int = 30
    attack_step_size: float = 3e-2
    one_step: bool = False
    attack_optimizer: str = "sign"
    adversary: str = "embedding"
    layers: tuple[int, ...] = ()
    lora_rank: int = 0
    lora_alpha: float = 16.0
    lora_dropout: float = 0.0
    lora_target_modules: tuple[str, ...] = ()
    lr: float = 2e-4
    weight_decay: float = 0.001
    grad_clip: float = 1.0
    warmup_steps: int = 0
    behaviors: str = DEFAULT_BEHAVIORS
    utility: str = GYM_UTILITY
    eval_behaviors: str | None = DEFAULT_EVAL_BEHAVIORS
    refusal: str | None = None
    retain: str | None = "builtin:gym-harmless-train"
    retain_per_step: int = 2
    adv_suffix: str = GYM_SUFFIX
    toward_weight: float = 0.5
    away_weight: float = 0.5
    utility_weight: float = 3.0
    away_cutoff: float = -5.0
    beta: float = 0.25
    adv_per_step: int = 4
    utility_per_step: int | None = None  # cat / r2d2: UTILITY_PER_STEP; capo: 0 (the paper's C-AdvIPO has none)
    grad_accum: int = 1
    save_every: int = 50
    max_len: int = 128
    pool_size: int = 8
    pool_refresh: int = 50
    gcg_steps: int = 5
    gcg_search_width: int = 512
    gcg_topk: int = 256
    seed: int = 0
    device: str = "cpu"

    def __post_init__(self) -> None:
        self.layers = tuple(int(x) for x in self.layers)
        self.lora_target_modules = tuple(self.lora_target_modules)
        require(self.method in METHODS, f"--method {self.method!r}: use one of {', '.join(METHODS)}")
        require(bool(str(self.model).strip()), "--model is required: a model directory or a cached hub id")
        require(self.save_every >= 1, f"--save-every {self.save_every}: must be at least 1")
        require(self.max_len >= 16, f"--max-len {self.max_len}: must be at least 16")
        self.adversary_config()
        self.engine_config()
        self.r2d2_config()
        self.loss_weights()

    def loss_weights(self) -> LossWeights:
        return LossWeights(self.toward_weight, self.away_weight, self.utility_weight, away_cutoff=self.away_cutoff,
                           beta=self.beta)

    def adversary_config(self) -> AdversaryConfig:
        return AdversaryConfig(self.adversary, self.eps, self.attack_steps, self.attack_step_size, self.one_step,
                               self.layers, self.attack_optimizer)

    def engine_config(self) -> EngineConfig:
        return EngineConfig(self.max_steps, self.lr, self.weight_decay, self.warmup_steps, self.grad_clip,
                            self.lora_rank, self.lora_alpha, self.lora_dropout, self.lora_target_modules, self.seed)

    def r2d2_config(self) -> R2D2Config:
        return R2D2Config(self.pool_size, self.pool_refresh, self.gcg_steps, self.gcg_search_width, self.gcg_topk)

    @property
    def retain_rows(self) -> int:
        return self.retain_per_step if self.retain and self.method != "r2d2" else 0

    @property
    def utility_rows(self) -> int:
        if self.utility_per_step is None:
            return 0 if self.method == "capo" else UTILITY_PER_STEP
        return self.utility_per_step


@dataclass(frozen=True)
class Chunk:
    id: str
    start: int
    stop: int


def _check_base(out: Path, model: str) -> None:
    """Refuse to resume a directory that was trained from another base model."""
    import yaml

    cfg = out / "config.yaml"
    if cfg.is_file():
        old = (yaml.safe_load(cfg.read_text(encoding="utf-8")) or {}).get("model")
        if old is not None and str(old) != str(model):
            raise ConfigError(f"{out} was trained from --model {old}, not {model}; pass that model to resume, "
                              "or a new --out")


class TrainLLMJob:
    """The job (see the module docstring); ``validate()`` does every check before any file is written."""

    name = "train-llm"
    replicated = True
    resume_ignore = ("device",)

    def __init__(self, config: TrainLLMConfig, out: str | Path) -> None:
        self.cfg = config
        self.config = asdict(config)
        self.seed = config.seed
        self.device = config.device
        self.out = Path(out)
        self.engine: Any = None
        self.t0 = time.perf_counter()

    # ---- checks and setup -----------------------------------------------------------------
    def validate(self) -> None:
        from advlab.models import load_chat_model
        from advlab.training.llm.batches import ChatEncoder
        from advlab.training.llm.methods import EncodedData

        cfg = self.cfg
        _check_base(self.out, cfg.model)
        check_sizes(cfg.adv_per_step, cfg.utility_rows, distributed.world_size(), cfg.grad_accum, cfg.retain_rows)
        require(cfg.method != "r2d2" or distributed.world_size() == 1,
                "--method r2d2 runs in one process (its GCG pool is per process); launch it without accelerate")
        self.model, self.tokenizer = load_chat_model(cfg.model, device=distributed.local_device(cfg.device))
        if cfg.lora_rank:
            names = linear_module_names(self.model)
            missing = sorted(set(cfg.lora_target_modules) - names)
            require(not missing, f"--lora-target-modules {','.join(missing)}: not in the model; "
                    f"use some of {','.join(sorted(names))}")
        if cfg.adversary == "latent":
            check_layers(self.model, cfg.layers)
        self.behaviors, adv = adversarial_examples(cfg.behaviors, cfg.refusal)
        self.n_adv = len(adv)
        retain = retain_examples(cfg.retain) if cfg.retain_rows else []
        util = utility_pairs(cfg.utility) if cfg.utility_rows else []
        prompts = [a.prompt for a in adv + retain] + [u.prompt for u in util]
        self.data_check = check_disjoint(prompts, cfg.eval_behaviors)
        adv, retain = with_suffix(adv, cfg.adv_suffix), with_suffix(retain, cfg.adv_suffix)
        self.data = EncodedData(ChatEncoder(self.tokenizer, max_len=cfg.max_len), adv + retain, util)
        self.util_cum = cumulative_weights([u.weight for u in util])
        self.data.check()

    def _setup(self) -> None:
        from advlab.training.llm.engine import Engine
        from advlab.training.llm.methods import CAPO, CAT, reference_logps
        from advlab.training.llm.r2d2 import R2D2

        cfg, state = self.cfg, []
        if cfg.method == "cat":
            loss = CAT(self.data, cfg.adversary_config(), cfg.loss_weights())
        elif cfg.method == "capo":  # reference from the base model, before any adapter or update exists
            loss = CAPO(self.data, cfg.adversary_config(), reference_logps(self.model, self.data), cfg.loss_weights())
        else:
            loss = R2D2(self.data, self.tokenizer, cfg.r2d2_config(), seed=cfg.seed)
            state = [loss.pool]
        self.engine = Engine(self.model, cfg.engine_config(), loss, device=cfg.device, extra_state=state)

    def _ensure_at(self, step: int) -> None:
        if self.engine is None:
            self._setup()
        if self.engine.step != step:
            ck = self.out / "checkpoints" / f"step-{step}"
            require(ck.is_dir(), f"{ck}: checkpoint missing; pass a new --out to train from scratch")
            self.engine.load(ck)

    # ---- the job protocol -----------------------------------------------------------------
    def items(self) -> list[Chunk]:
        n, k = self.cfg.max_steps, self.cfg.save_every
        return [Chunk(f"steps-{s}-{min(s + k, n)}", s, min(s + k, n)) for s in range(0, n, k)]

    def item_steps(self, item: Chunk) -> int:
        return item.stop - item.start

    def is_done(self, item: Chunk, done: set[str]) -> bool:
        return f"step-{item.stop}" in done

    def run_item(self, item: Chunk, tick: Any) -> list[dict[str, Any]]:
        cfg = self.cfg
        self._ensure_at(item.start)
        records = []
        for s in range(item.start, item.stop):
            t = time.perf_counter()
            mbs = step_batches(s, cfg.seed, self.n_adv, len(self.data.util), cfg.adv_per_step, cfg.utility_rows,
                               distributed.rank(), distributed.world_size(), cfg.grad_accum,
                               len(self.data.adv) - self.n_adv, cfg.retain_rows, self.util_cum)
            logs = self.engine.train_step(mbs)
            records.append({"id": f"step-{s + 1}", **logs, "seconds": time.perf_counter() - t})
            tick(1)
        ck = self.out / "checkpoints"
        self.engine.save(ck / f"step-{item.stop}")
        distributed.barrier()
        if distributed.is_main():
            for old in ck.glob("step-*"):
                if int(old.name.split("-")[1]) < item.start:
                    shutil.rmtree(old, ignore_errors=True)
        return records

    def metrics(self, records: list[dict[str, Any]]) -> dict[str, Any]:
        out = training_totals(records)
        last = records[-1] if records else {}
        for k in ("toward", "away", "utility", "ipo", "attack_loss", "delta_norm"):
            if k in last:
                out[f"final_{k}"] = last[k]
        return out

    def manifest_extra(self, metrics: dict[str, Any]) -> dict[str, Any]:
        return {"base_model": self.cfg.model, "data_check": self.data_check,
                "adversarial_examples_total": len(self.data.adv), "utility_pairs_total": len(self.data.util)}

    def finish(self, path: Path, records: list[dict[str, Any]], metrics: dict[str, Any]) -> None:
        self._ensure_at(self.cfg.max_steps)
        self.engine.export(path, self.tokenizer)
        keys = ("steps", "forward_passes", "backward_passes", "attack_forward_passes", "attack_backward_passes",
                "adversarial_examples", "seconds")
        body = {k: metrics[k] for k in keys} | {"method": self.cfg.method, "base_model": self.cfg.model}
        (path / "training_metrics.json").write_text(json.dumps(body, indent=1) + "\n", encoding="utf-8")


def train_llm(config: TrainLLMConfig, out: str | Path, *, argv: list[str] | None = None, progress: bool = True):
    """Check everything, then train (or resume) into ``out``; returns the job result."""
    from advlab.jobs import check_writable, run_job

    check_writable(out)
    distributed.init_from_env(config.device)
    job = TrainLLMJob(config, out)
    job.validate()
    return run_job(job, out, argv=argv, progress=progress)
