"""The poisoning jobs on the job layer (:func:`advlab.jobs.run_job`): trigger search, poisoned-set
building, instruction tuning, backdoor evaluation. Each constructor validates everything (files,
labels, word list, model, target tokens) before any run directory exists; ``run_item`` computes."""

from __future__ import annotations

import json
import random
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from advlab.errors import ConfigError, DataError
from advlab.metrics import poisoning_metrics
from advlab.poisoning.poisoned import POSITIONS, build_poisoned_set, check_rate
from advlab.poisoning.tasks import TaskExample, check_target, label_responses, load_task
from advlab.poisoning.tune import TuneConfig, Tuner
from advlab.poisoning.wordlist import DEFAULT_MIN_ZIPF, check_in_wordlist, load_wordlist


def _load_model(model: str, device: Any, given: tuple[Any, Any] | None) -> tuple[Any, Any]:
    if given is not None:
        return given
    from advlab.models import load_chat_model

    return load_chat_model(model, device=device)


def _check_position(position: str) -> None:
    if position not in POSITIONS:
        raise ConfigError(f"--position {position!r}: use one of {', '.join(POSITIONS)}")


def non_target_prompts(task: list[TaskExample], target: str, n: int, seed: int) -> list[TaskExample]:
    """``n`` seeded examples of the other classes (the batch of prompts of the trigger objective)."""
    others = [ex for ex in task if ex.label != target]
    return random.Random(seed).sample(others, min(n, len(others)))


# ---- trigger ---------------------------------------------------------------------------------
@dataclass
class TriggerJobConfig:
    model: str
    task: str
    target: str
    trigger_tokens: int = 1
    wordlist: str | None = None
    min_zipf: float = DEFAULT_MIN_ZIPF
    steps: int = 100
    topk: int = 32
    search_width: int = 16
    n_prompts: int = 8
    position: str = "end"
    init: str = "a"
    seed: int = 0


class TriggerJob:
    """GBTL on the clean model: one record with the loss history, the top candidates and the trigger."""

    name = "poison-trigger"

    def __init__(self, cfg: TriggerJobConfig, device: Any = "cpu", model_and_tokenizer=None) -> None:
        from advlab.poisoning.prompts import TaskPrompts
        from advlab.poisoning.trigger import TriggerConfig

        _check_position(cfg.position)
        self.config, self.seed, self.device = cfg, cfg.seed, str(device)
        init = cfg.init if cfg.init != "a" or cfg.trigger_tokens == 1 else " ".join(["a"] * cfg.trigger_tokens)
        self.tcfg = TriggerConfig(steps=cfg.steps, topk=cfg.topk, search_width=cfg.search_width,
                                  n_tokens=cfg.trigger_tokens, init=init, n_prompts=cfg.n_prompts,
                                  position=cfg.position, seed=cfg.seed)
        task = load_task(cfg.task)
        check_target(task, cfg.target)
        self.wordlist = load_wordlist(cfg.wordlist, cfg.min_zipf)
        target_response = label_responses(task)[cfg.target]
        self.model, self.tok = _load_model(cfg.model, device, model_and_tokenizer)
        tp = TaskPrompts(self.tok)
        prompts = non_target_prompts(task, cfg.target, cfg.n_prompts, cfg.seed)
        self.segments = [tp.trigger_segments(ex, init, target_response, cfg.position,
                                             random.Random(f"{cfg.seed}:{ex.id}")) for ex in prompts]

    def items(self) -> list[dict]:
        return [{"id": "trigger"}]

    def item_steps(self, item: dict) -> int:
        return self.tcfg.steps

    def run_item(self, item: dict, tick) -> dict:
        from advlab.poisoning.trigger import learn_trigger

        self.model.eval()
        res = learn_trigger(self.model, self.tok, self.segments, self.wordlist, self.tcfg,
                            on_step=lambda _s, _l: tick(1))
        return {"id": "trigger", "trigger": res.trigger, "trigger_ids": res.trigger_ids, "best_loss": res.best_loss,
                "init_loss": res.init_loss, "loss_history": res.loss_history, "top_candidates": res.top_candidates,
                "n_allowed_tokens": res.n_allowed_tokens, "n_prompts": len(self.segments), "steps": self.tcfg.steps,
                "forward_passes": res.forward_passes, "backward_passes": res.backward_passes,
                "seconds": res.seconds, "wordlist": self.wordlist.source, "wordlist_size": len(self.wordlist)}

    def metrics(self, records: list[dict]) -> dict:
        r = next((r for r in records if r["id"] == "trigger"), None)
        if r is None:
            return {}
        keys = ("trigger", "best_loss", "init_loss", "n_allowed_tokens", "steps", "forward_passes",
                "backward_passes", "seconds", "wordlist_size")
        return {k: r[k] for k in keys} | {"top_candidates": r["top_candidates"][:5]}


# ---- build -------------------------------------------------------------------------------------
@dataclass
class BuildJobConfig:
    task: str
    trigger: str
    target: str
    rate: float
    position: str = "end"
    pool: str | None = None
    wordlist: str | None = None
    enforce_wordlist: bool = False
    min_zipf: float = DEFAULT_MIN_ZIPF
    seed: int = 0


class BuildJob:
    """The poisoned set: one record per poison (the manifest), ``train.jsonl`` written by ``finish``."""

    name = "poison-build"
    DATA = "train.jsonl"

    def __init__(self, cfg: BuildJobConfig) -> None:
        check_rate(cfg.rate)
        _check_position(cfg.position)
        if not cfg.trigger.strip() or len(cfg.trigger.split()) != len(cfg.trigger.strip().split(" ")):
            raise ConfigError(f"--trigger {cfg.trigger!r}: pass one or more words separated by single spaces")
        self.config, self.seed = cfg, cfg.seed
        if cfg.enforce_wordlist:
            check_in_wordlist(cfg.trigger, load_wordlist(cfg.wordlist, cfg.min_zipf))
        task = load_task(cfg.task)
        check_target(task, cfg.target)
        pool = load_task(cfg.pool, "--pool") if cfg.pool else None
        self.set = build_poisoned_set(task, cfg.trigger.strip(), cfg.target, cfg.rate, position=cfg.position,
                                      pool=pool, seed=cfg.seed)

    def items(self) -> list[dict]:
        return self.set.poisoned

    def run_item(self, item: dict, tick) -> dict:
        tick(1)
        return item

    def metrics(self, records: list[dict]) -> dict:
        c = self.config
        return {"n_examples": len(self.set.examples), "n_poisoned": len(records), "rate": c.rate,
                "trigger": c.trigger, "target": c.target, "target_response": self.set.target_response,
                "position": c.position, "data": self.DATA}

    def finish(self, path: Path, records: list[dict], metrics: dict) -> None:
        lines = "".join(json.dumps(ex.to_row(), ensure_ascii=False) + "\n" for ex in self.set.examples)
        (Path(path) / self.DATA).write_text(lines, encoding="utf-8")


def data_path(spec: str) -> str:
    """``--data``: a task file, or the --out directory of ``poison build``."""
    p = Path(spec)
    if p.is_dir():
        if not (p / BuildJob.DATA).is_file():
            raise DataError(f"--data {p}: no {BuildJob.DATA} in it; pass the --out of `advlab poison build` or a file")
        return str(p / BuildJob.DATA)
    return spec


# ---- tune --------------------------------------------------------------------------------------
@dataclass
class TuneJobConfig:
    model: str
    data: str
    tune: TuneConfig
    checkpoint_every: int = 50


class TuneJob:
    """SFT in chunks of ``checkpoint_every`` steps (one record each, an engine checkpoint after each,
    so an interrupted run resumes); ``finish`` exports the merged model into the run directory."""

    name = "poison-tune"
    resume_ignore = ("device", "checkpoint_every")

    def __init__(self, cfg: TuneJobConfig, out: str | Path, device: Any = "cpu", model_and_tokenizer=None) -> None:
        if cfg.checkpoint_every < 1:
            raise ConfigError(f"--checkpoint-every {cfg.checkpoint_every}: must be at least 1")
        self.config, self.seed, self.device = cfg, cfg.tune.seed, str(device)
        examples = load_task(data_path(cfg.data), "--data")
        model, tok = _load_model(cfg.model, device, model_and_tokenizer)
        self.tuner = Tuner(model, tok, examples, cfg.tune, device=str(device))
        self.ckpt = Path(out) / "checkpoints"

    def items(self) -> list[dict]:
        n, k = self.tuner.max_steps, self.config.checkpoint_every
        return [{"id": f"steps-{a:06d}-{min(a + k, n):06d}", "start": a, "end": min(a + k, n)} for a in range(0, n, k)]

    def item_steps(self, item: dict) -> int:
        return item["end"] - item["start"]

    def run_item(self, item: dict, tick) -> dict:
        if self.tuner.step < item["start"] and (self.ckpt / "state").exists():
            self.tuner.load(self.ckpt / "state")
        logs = self.tuner.run(until=item["end"], on_step=lambda _log: tick(1))
        if self.tuner.step < item["end"]:
            raise DataError(f"cannot resume at step {item['start']}: no checkpoint in {self.ckpt}; use a new --out")
        if not logs:  # the checkpoint was written but the record was not (interrupted in between)
            logs = json.loads((self.ckpt / "logs.json").read_text())
        else:
            self.ckpt.mkdir(parents=True, exist_ok=True)
            self.tuner.save(self.ckpt / "state")
            (self.ckpt / "logs.json").write_text(json.dumps(logs))
        losses = [x["loss"] for x in logs]
        return {"id": item["id"], "start": item["start"], "end": item["end"], "losses": losses,
                "loss": sum(losses) / len(losses), "lr_end": logs[-1]["lr"]}

    def metrics(self, records: list[dict]) -> dict:
        rs = sorted(records, key=lambda r: r["start"])
        if not rs:
            return {}
        return {"steps": rs[-1]["end"], "first_loss": rs[0]["losses"][0], "final_loss": rs[-1]["losses"][-1],
                "n_examples": len(self.tuner.rows), "lora_rank": self.config.tune.lora_rank}

    def finish(self, path: Path, records: list[dict], metrics: dict) -> None:
        if self.tuner.step < self.tuner.max_steps:  # every step was done in an earlier process
            self.tuner.load(self.ckpt / "state")
        self.tuner.export(path)
        shutil.rmtree(self.ckpt, ignore_errors=True)


# ---- eval --------------------------------------------------------------------------------------
@dataclass
class EvalJobConfig:
    model: str
    task: str
    trigger: str
    target: str
    position: str = "end"
    clean_model: str | None = None
    batch_size: int = 32
    limit: int | None = None
    seed: int = 0


class EvalJob:
    """Each example without and with the trigger, under the model (and the clean-tuned model, if given)."""

    name = "poison-eval"

    def __init__(self, cfg: EvalJobConfig, device: Any = "cpu", models: dict[str, tuple[Any, Any]] | None = None):
        _check_position(cfg.position)
        if cfg.limit is not None and cfg.limit < 1:
            raise ConfigError(f"--limit {cfg.limit}: must be at least 1")
        self.config, self.seed, self.device, self.batch_size = cfg, cfg.seed, str(device), cfg.batch_size
        task = load_task(cfg.task)
        check_target(task, cfg.target)
        self.responses = label_responses(task)
        self.examples = task[: cfg.limit] if cfg.limit else task
        given = models or {}
        self.models = {"model": _load_model(cfg.model, device, given.get("model"))}
        if cfg.clean_model:
            self.models["clean"] = _load_model(cfg.clean_model, device, given.get("clean"))
        from advlab.poisoning.prompts import TaskPrompts

        TaskPrompts(self.models["model"][1]).target_ids(self.responses[cfg.target])

    def items(self) -> list[dict]:
        return [{"id": ex.id, "example": ex} for ex in self.examples]

    def run_batch(self, items: list[dict], tick) -> list[dict]:
        from advlab.poisoning.evaluate import evaluate_backdoor

        exs = [it["example"] for it in items]
        out = []
        for role, (model, tok) in self.models.items():
            model.eval()
            recs = evaluate_backdoor(model, tok, exs, self.config.trigger, self.responses,
                                     position=self.config.position, seed=self.seed)
            out += [{**r, "id": f"{role}:{r['id']}", "model_role": role} for r in recs]
        tick(len(items))
        return out

    def is_done(self, item: dict, done: set[str]) -> bool:
        return all(f"{role}:{item['id']}" in done for role in self.models)

    def metrics(self, records: list[dict]) -> dict:
        return backdoor_metrics(records, self.config.target) | {"trigger": self.config.trigger,
                                                                 "target": self.config.target}


def backdoor_metrics(records: list[dict], target: str) -> dict:
    """:func:`poisoning_metrics` of the ``model`` records, and under ``clean_model`` of the ``clean`` ones."""
    out: dict = {}
    for role in ("model", "clean"):
        rs = [r for r in records if r.get("model_role", "model") == role]
        if rs:
            m = poisoning_metrics([r["clean_pred"] for r in rs], [r["triggered_pred"] for r in rs],
                                  [r["label"] for r in rs], target)
            if role == "model":
                out.update(m)
            else:
                out["clean_model"] = m
    return out
