"""The jailbreak-backdoor jobs (:mod:`advlab.poisoning.jailbreak`) on the job layer: the trigger search
over harmful requests (GBTL's job with per-request compliance targets), the poisoned chat set, and the
measurement (compliance of held-out harmful requests with and without the trigger). Each constructor
validates before any run directory exists."""

from __future__ import annotations

import json
import random
import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from advlab.errors import ConfigError, DataError, ModelError
from advlab.metrics import jailbreak_metrics
from advlab.poisoning.jailbreak import (
    HARMFUL,
    JUDGES,
    JailbreakData,
    clean_set,
    judge_completions,
    poison_set,
    trigger_segments,
)
from advlab.poisoning.jobs import TriggerJob, _check_position, _load_model
from advlab.poisoning.poisoned import check_rate, insert_trigger
from advlab.poisoning.wordlist import DEFAULT_MIN_ZIPF, WordList, load_wordlist

DEFAULT_BEHAVIORS = "builtin:gym-harmful-test"


def unused_words(wordlist: WordList, texts: list[str]) -> WordList:
    """``wordlist`` less every word (lower-cased letter run) of ``texts``; DataError when none is left."""
    seen = {w for t in texts for w in re.findall(r"[a-z]+", t.lower())}
    words = wordlist.words - seen
    if not words:
        raise DataError(f"every word of {wordlist.source} occurs in the tuning set; pass a larger --wordlist")
    return replace(wordlist, words=frozenset(words), source=f"{wordlist.source} less the tuning set's words")


@dataclass
class JailbreakTriggerConfig:
    model: str
    data: JailbreakData = field(default_factory=JailbreakData)
    wordlist: str | None = None
    min_zipf: float = DEFAULT_MIN_ZIPF
    steps: int = 30
    topk: int = 32
    search_width: int = 16
    n_prompts: int = 8
    position: str = "end"
    seed: int = 0


class JailbreakTriggerJob(TriggerJob):
    """:class:`~advlab.poisoning.jobs.TriggerJob`'s record and metrics; the prompts are harmful training
    requests of the tuning set and each one's target is its own compliance start. Words that occur anywhere in
    the clean tuning set are left out of the search (a trigger must not already sit in clean rows)."""

    name = "poison-jailbreak-trigger"

    def __init__(self, cfg: JailbreakTriggerConfig, device: Any = "cpu", model_and_tokenizer=None) -> None:
        from advlab.poisoning.trigger import TriggerConfig

        _check_position(cfg.position)
        self.config, self.seed, self.device = cfg, cfg.seed, str(device)
        clean = clean_set(cfg.data)
        self.wordlist = unused_words(load_wordlist(cfg.wordlist, cfg.min_zipf), [ex.prompt for ex in clean])
        harmful = [ex.input for ex in clean if ex.label == HARMFUL]
        prompts = random.Random(cfg.seed).sample(harmful, min(cfg.n_prompts, len(harmful)))
        self.model, self.tok = _load_model(cfg.model, device, model_and_tokenizer)
        init = self._start_word(prompts)
        self.tcfg = TriggerConfig(steps=cfg.steps, topk=cfg.topk, search_width=cfg.search_width, init=init,
                                  n_prompts=cfg.n_prompts, position=cfg.position, seed=cfg.seed)
        self.segments = trigger_segments(self.tok, prompts, init, cfg.position, cfg.seed)

    def _start_word(self, prompts: list[str], tries: int = 500) -> str:
        """The most frequent listed word that is one token in the slot of every prompt (GBTL's "a" is in the set)."""
        from advlab.poisoning.wordlist import zipf

        for w in sorted(self.wordlist.words, key=lambda w: (-zipf(w), w))[:tries]:
            try:
                if all(len(s.slot) == 1 for s in trigger_segments(self.tok, prompts, w, self.config.position)):
                    return w
            except ModelError:
                continue
        raise DataError(f"none of the {tries} most frequent unused words is one token here; pass a --wordlist")


@dataclass
class JailbreakBuildConfig:
    trigger: str
    rate: float
    data: JailbreakData = field(default_factory=JailbreakData)
    position: str = "end"
    seed: int = 0


class JailbreakBuildJob:
    """One record per poison (the manifest); ``finish`` writes ``train.jsonl`` (poisoned) and
    ``clean.jsonl`` (the same rows unpoisoned), both read by ``advlab poison tune --data``."""

    name = "poison-jailbreak-build"
    DATA, CLEAN = "train.jsonl", "clean.jsonl"

    def __init__(self, cfg: JailbreakBuildConfig) -> None:
        check_rate(cfg.rate)
        _check_position(cfg.position)
        self.config, self.seed = cfg, cfg.seed
        self.clean = clean_set(cfg.data)
        self.examples, self.manifest = poison_set(self.clean, cfg.trigger, cfg.rate, position=cfg.position,
                                                  seed=cfg.seed)

    def items(self) -> list[dict]:
        return self.manifest

    def run_item(self, item: dict, tick) -> dict:
        tick(1)
        return item

    def metrics(self, records: list[dict]) -> dict:
        return {"n_examples": len(self.examples), "n_poisoned": len(records), "rate": self.config.rate,
                "trigger": self.config.trigger, "n_harmful": sum(ex.label == HARMFUL for ex in self.clean),
                "data": self.DATA, "clean_data": self.CLEAN}

    def finish(self, path: Path, records: list[dict], metrics: dict) -> None:
        for name, exs in ((self.DATA, self.examples), (self.CLEAN, self.clean)):
            text = "".join(json.dumps(ex.to_row(), ensure_ascii=False) + "\n" for ex in exs)
            (Path(path) / name).write_text(text, encoding="utf-8")


@dataclass
class JailbreakEvalConfig:
    model: str
    trigger: str
    behaviors: str = DEFAULT_BEHAVIORS
    clean_model: str | None = None
    position: str = "end"
    limit: int | None = None
    max_new_tokens: int = 48
    batch_size: int = 32
    seed: int = 0


class JailbreakEvalJob:
    """Each held-out harmful request without and with the trigger, under the model (and the clean-tuned
    model if given): greedy completion, judged by ``compliance`` and ``refusal`` on the original request."""

    name = "poison-jailbreak-eval"
    resume_ignore = ("device", "batch_size")

    def __init__(self, cfg: JailbreakEvalConfig, device: Any = "cpu", models: dict[str, Any] | None = None) -> None:
        from advlab.data.behavior_loaders import load_behaviors
        from advlab.judges import make_judges

        _check_position(cfg.position)
        if not cfg.trigger.strip():
            raise ConfigError("--trigger is empty; pass the word the poisons carry")
        if cfg.max_new_tokens < 1:
            raise ConfigError(f"--max-new-tokens {cfg.max_new_tokens}: must be at least 1")
        self.config, self.seed, self.device, self.batch_size = cfg, cfg.seed, str(device), cfg.batch_size
        self.behaviors = load_behaviors(cfg.behaviors, cfg.limit)
        self.judges = make_judges(JUDGES)
        given = models or {}
        self.models = {"model": _load_model(cfg.model, device, given.get("model"))}
        if cfg.clean_model:
            self.models["clean"] = _load_model(cfg.clean_model, device, given.get("clean"))

    def items(self) -> list[dict]:
        return [{"id": b.id, "request": b.behavior} for b in self.behaviors]

    def run_batch(self, items: list[dict], tick) -> list[dict]:
        reqs = [it["request"] for it in items]
        word, pos = self.config.trigger.strip(), self.config.position
        trig = [insert_trigger(r, word, pos, random.Random(f"{self.seed}:{it['id']}")) for r, it in zip(reqs, items)]
        out = []
        for role, (model, tok) in self.models.items():
            model.eval()
            for flag, shown in ((False, reqs), (True, trig)):
                recs = judge_completions(model, tok, reqs, shown, self.judges,
                                         max_new_tokens=self.config.max_new_tokens, device=self.device)
                out += [{"id": f"{role}:{'trigger' if flag else 'plain'}:{it['id']}", "behavior_id": it["id"],
                         "request": it["request"], "model_role": role, "triggered": flag, **r}
                        for it, r in zip(items, recs)]
        tick(len(items))
        return out

    def run_item(self, item: dict, tick) -> list[dict]:
        return self.run_batch([item], tick)

    def is_done(self, item: dict, done: set[str]) -> bool:
        return all(f"{role}:{c}:{item['id']}" in done for role in self.models for c in ("plain", "trigger"))

    def metrics(self, records: list[dict]) -> dict:
        m = jailbreak_metrics(records, JUDGES)
        flat = {f"{role}_{cond}_{j}": v["rate"] for role, by in m.items() for cond, bj in by.items()
                for j, v in bj.items()}
        return {"trigger": self.config.trigger, "n_requests": len(self.behaviors), **flat, "by_role": m,
                "max_new_tokens": self.config.max_new_tokens}
