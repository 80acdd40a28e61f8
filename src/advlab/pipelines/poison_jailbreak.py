"""``advlab poison jailbreak``: a jailbreak backdoor in a chat model, from trigger to measurement (wiring only).

Sub-runs of ``--out``, each a resumable job run: ``trigger/`` (GBTL over harmful requests, when
``--trigger learned``), ``data/`` (the poisoned set and its clean twin), ``model/`` (tuned on the
poisoned set), ``clean-model/`` (tuned on the clean twin, unless ``--clean-model`` names one) and
``eval/`` (compliance with and without the trigger on held-out harmful requests, both models).
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from advlab.errors import ConfigError
from advlab.poisoning.jailbreak import JailbreakData, clean_set
from advlab.poisoning.jailbreak_jobs import (
    DEFAULT_BEHAVIORS,
    JailbreakBuildConfig,
    JailbreakBuildJob,
    JailbreakEvalConfig,
    JailbreakEvalJob,
    JailbreakTriggerConfig,
    JailbreakTriggerJob,
    unused_words,
)
from advlab.poisoning.jobs import TuneJob, TuneJobConfig, _check_position
from advlab.poisoning.poisoned import check_rate
from advlab.poisoning.tune import TuneConfig
from advlab.poisoning.wordlist import DEFAULT_MIN_ZIPF, load_wordlist

SUBRUNS = ("trigger", "data", "model", "clean-model", "eval")


@dataclass
class JailbreakConfig:
    model: str
    trigger: str  # a word, "learned" (GBTL on --model) or "random" (a seeded word of the list not in the set)
    rate: float
    data: JailbreakData = field(default_factory=JailbreakData)
    tune: TuneConfig = field(default_factory=lambda: TuneConfig(lora_rank=0, epochs=1.0))
    clean_model: str | None = None
    behaviors: str = DEFAULT_BEHAVIORS
    limit: int | None = None
    trigger_steps: int = 30
    min_zipf: float = DEFAULT_MIN_ZIPF
    position: str = "end"
    max_new_tokens: int = 48
    seed: int = 0


def run_poison_jailbreak(cfg: JailbreakConfig, out: str | Path, *, device: str = "auto",
                         argv: list[str] | None = None, progress: bool = False) -> dict[str, Any]:
    """Run every stage into ``out`` and return the eval metrics (plus the trigger and the sub-run paths)."""
    from advlab.jobs import check_writable, run_job
    from advlab.utils import resolve_device, seed_everything

    dev = resolve_device(device)
    out = Path(out)
    for sub in SUBRUNS:
        check_writable(out / sub)
    check_rate(cfg.rate)
    _check_position(cfg.position)
    if not cfg.trigger.strip() or len(cfg.trigger.split()) != 1:
        raise ConfigError(f"--trigger {cfg.trigger!r}: pass one word, 'learned' or 'random'")
    seed_everything(cfg.seed)
    trigger = cfg.trigger.strip()
    if trigger == "learned":
        tcfg = JailbreakTriggerConfig(model=cfg.model, data=cfg.data, min_zipf=cfg.min_zipf, steps=cfg.trigger_steps,
                                      position=cfg.position, seed=cfg.seed)
        trigger = run_job(JailbreakTriggerJob(tcfg, dev), out / "trigger", argv=argv, progress=progress
                          ).metrics["trigger"]
    elif trigger == "random":
        words = unused_words(load_wordlist(None, cfg.min_zipf), [ex.prompt for ex in clean_set(cfg.data)])
        trigger = random.Random(cfg.seed).choice(sorted(words.words))
    bcfg = JailbreakBuildConfig(trigger=trigger, rate=cfg.rate, data=cfg.data, position=cfg.position, seed=cfg.seed)
    run_job(JailbreakBuildJob(bcfg), out / "data", argv=argv, progress=progress)
    runs = [("model", str(out / "data"))]
    if cfg.clean_model is None:
        runs.append(("clean-model", str(out / "data" / JailbreakBuildJob.CLEAN)))
    for sub, data in runs:
        seed_everything(cfg.tune.seed)
        job = TuneJob(TuneJobConfig(cfg.model, data, cfg.tune), out / sub, dev)
        run_job(job, out / sub, argv=argv, progress=progress)
    ecfg = JailbreakEvalConfig(model=str(out / "model"), trigger=trigger, behaviors=cfg.behaviors,
                               clean_model=cfg.clean_model or str(out / "clean-model"), position=cfg.position,
                               limit=cfg.limit, max_new_tokens=cfg.max_new_tokens, seed=cfg.seed)
    m = run_job(JailbreakEvalJob(ecfg, dev), out / "eval", argv=argv, progress=progress).metrics
    return {**m, "model_dir": str(out / "model"), "clean_model_dir": ecfg.clean_model}
