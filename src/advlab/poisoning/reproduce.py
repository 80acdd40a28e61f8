"""``advlab reproduce poisoning``: Qiang et al. 2024 on the safety gym with SST-2, as one job.

Items, in order: ``trigger`` (GBTL on the clean gym; the random-word baseline is a seeded word of
similar Zipf frequency, the rare token is "cf"), ``clean`` (tuning on the clean set: the reference
clean accuracy), one ``cell:<kind>:<rate>`` per trigger kind and poisoning rate (build, tune,
measure on the validation split), ``detector_ranks`` (the word-label detector's rank of every trigger in
every poisoned set), then one ``defence:<name>:<kind>`` per defence and kind of ``defence_kinds`` at
``defence_rate``. Models live in memory; after a resume a missing one is re-tuned (same seed, same
weights). ``finish`` writes ``table.csv`` and ``defences.csv``.
"""

from __future__ import annotations

import copy
import csv
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from advlab.errors import ConfigError, DataError
from advlab.poisoning.defences import DEFENCES, DefenceSetting, run_defence
from advlab.poisoning.detector import trigger_rank, word_label_scores
from advlab.poisoning.evaluate import measure
from advlab.poisoning.poisoned import RARE_TOKEN, build_poisoned_set, check_rate, n_poisons
from advlab.poisoning.tasks import TaskExample, label_responses, load_task
from advlab.poisoning.tune import TuneConfig, tune
from advlab.poisoning.wordlist import DEFAULT_MIN_ZIPF, load_wordlist, similar_frequency_word

KINDS = ("learned", "random_word", "rare_token")
TABLE_COLUMNS = ("trigger_kind", "rate", "trigger", "n_poisons", "clean_accuracy", "triggered_accuracy", "asr", "pdr")
RANK_COLUMNS = ("trigger_kind", "rate", "trigger", "rank", "n_words")
DEFENCE_COLUMNS = ("defence", "trigger_kind", "rate", "pdr_before", "pdr_after", "clean_accuracy_before",
                   "clean_accuracy_after", "cost", "detail")


@dataclass
class ReproduceConfig:
    model: str
    sst2: str
    target: str = "positive"
    rates: tuple[float, ...] = (0.005, 0.01, 0.015, 0.03)
    defence_rate: float = 0.01
    n_train: int | None = None
    n_val: int | None = None
    trigger_steps: int = 100
    n_prompts: int = 8
    min_zipf: float = DEFAULT_MIN_ZIPF
    tune: TuneConfig = field(default_factory=lambda: TuneConfig(lora_rank=0, lr=1e-3, epochs=2.0))
    defences: tuple[str, ...] = DEFENCES
    defence_kinds: tuple[str, ...] = KINDS
    quick: bool = False
    seed: int = 0

    def __post_init__(self) -> None:
        self.rates, self.defences = tuple(self.rates), tuple(self.defences)
        if not self.rates:
            raise ConfigError("--rates is empty; pass poisoning rates such as 0.01,0.03")
        for r in (*self.rates, self.defence_rate):
            check_rate(r)
        bad = [d for d in self.defences if d not in DEFENCES]
        if bad:
            raise ConfigError(f"--defences {','.join(bad)}: unknown; use some of {','.join(DEFENCES)}")


class ReproduceJob:
    name = "reproduce-poisoning"
    resume_ignore = ("device", "defence_kinds")  # defence items may be added or dropped on resume

    def __init__(self, cfg: ReproduceConfig, out: str | Path, device: Any = "cpu", model_and_tokenizer=None) -> None:
        from advlab.poisoning.jobs import TriggerJob, TriggerJobConfig, _load_model

        self.config, self.seed, self.device, self.out = cfg, cfg.seed, str(device), Path(out)
        d = Path(cfg.sst2)
        for f in ("train", "val", "poisoning"):
            if not (d / f"{f}.jsonl").is_file():
                raise DataError(f"--sst2 {d}: no {f}.jsonl; pass the directory with train/val/poisoning.jsonl")
        self.train = load_task(d / "train.jsonl")[: cfg.n_train]
        self.val = load_task(d / "val.jsonl")[: cfg.n_val]
        self.pool = load_task(d / "poisoning.jsonl")
        for r in (*cfg.rates, cfg.defence_rate):
            n_poisons(r, len(self.train))  # a rate that selects no example fails here, before any work
        self.responses = label_responses(self.train)
        self.wordlist = load_wordlist(None, cfg.min_zipf)
        self.base, self.tok = _load_model(cfg.model, device, model_and_tokenizer)
        tcfg = TriggerJobConfig(model=cfg.model, task=str(d / "train.jsonl"), target=cfg.target,
                                min_zipf=cfg.min_zipf, steps=cfg.trigger_steps, n_prompts=cfg.n_prompts, seed=cfg.seed)
        self.trigger_job = TriggerJob(tcfg, device, (self.base, self.tok))
        self.models: dict[tuple[str, float], Any] = {}
        self.sets: dict[tuple[str, float], Any] = {}
        self._triggers: dict[str, str] | None = None

    # ---- items ---------------------------------------------------------------------------------
    def items(self) -> list[dict]:
        c = self.config
        out = [{"id": "trigger"}, {"id": "clean"}]
        out += [{"id": f"cell:{k}:{r:g}", "kind": k, "rate": r} for k in KINDS for r in c.rates]
        out += [{"id": "detector_ranks"}]
        out += [{"id": f"defence:{d}:{k}", "defence": d, "kind": k} for d in c.defences for k in c.defence_kinds]
        return out

    def item_steps(self, item: dict) -> int:
        return self.config.trigger_steps if item["id"] == "trigger" else 1

    def run_item(self, item: dict, tick) -> dict:
        iid = item["id"]
        if iid == "trigger":
            rec = self.trigger_job.run_item(item, tick)
            rec["random_word"] = similar_frequency_word(rec["trigger"].split()[0], self.wordlist, self.seed)
            rec["rare_token"] = RARE_TOKEN
            self._triggers = {"learned": rec["trigger"], "random_word": rec["random_word"], "rare_token": RARE_TOKEN}
            return rec
        tick(1)
        if iid == "clean":
            model = self._model("clean", 0.0)
            per = {k: measure(model, self.tok, self.val, t, self.responses, self.config.target, seed=self.seed)
                   for k, t in self.triggers().items()}
            return {"id": iid, "per_trigger": per, "clean_accuracy": per["learned"]["clean_accuracy"]}
        if iid.startswith("cell:"):
            k, r = item["kind"], item["rate"]
            m = measure(self._model(k, r), self.tok, self.val, self.triggers()[k], self.responses,
                        self.config.target, seed=self.seed)
            return {"id": iid, "trigger_kind": k, "rate": r, "trigger": self.triggers()[k],
                    "n_poisons": len(self._set(k, r).poisoned), **m}
        if iid == "detector_ranks":
            return {"id": iid, "ranks": [self._rank(k, r) for k in KINDS for r in self.config.rates]}
        return self._defence(item)

    def _rank(self, kind: str, rate: float) -> dict:
        """Where the word-label detector ranks the trigger in the poisoned set (no tuning needed)."""
        scores = word_label_scores(self._set(kind, rate).examples)
        return {"trigger_kind": kind, "rate": rate, "trigger": self.triggers()[kind],
                "rank": trigger_rank(scores, self.triggers()[kind]), "n_words": len(scores),
                "top_words": [r["word"] for r in scores[:5]]}

    def _defence(self, item: dict) -> dict:
        c, k = self.config, item["kind"]
        trig = self.triggers()[k]
        before = measure(self._model(k, c.defence_rate), self.tok, self.val, trig, self.responses, c.target,
                         seed=self.seed)
        poisoned = self._set(k, c.defence_rate).examples
        setting = DefenceSetting(self.base, self._model(k, c.defence_rate), self.tok, poisoned, self.train, self.val,
                                 trig, c.target, self.responses, c.tune, seed=self.seed)
        res = run_defence(item["defence"], setting)
        after = res["metrics"]
        return {"id": item["id"], "defence": item["defence"], "trigger_kind": k, "rate": c.defence_rate,
                "trigger": trig, "pdr_before": before["pdr"], "pdr_after": after["pdr"],
                "clean_accuracy_before": before["clean_accuracy"], "clean_accuracy_after": after["clean_accuracy"],
                "asr_before": before["asr"], "asr_after": after["asr"], "cost": res["cost"], "detail": res["detail"],
                "trigger_rank": res.get("trigger_rank")}

    # ---- state ---------------------------------------------------------------------------------
    def triggers(self) -> dict[str, str]:
        if self._triggers is None:  # resumed after the trigger item: read it back
            from advlab.runs import read_records

            rec = next((r for r in read_records(self.out / "results.jsonl") if r["id"] == "trigger"), None)
            if rec is None:
                raise DataError(f"{self.out}: the trigger record is missing; use a new --out")
            self._triggers = {"learned": rec["trigger"], "random_word": rec["random_word"], "rare_token": RARE_TOKEN}
        return self._triggers

    def _set(self, kind: str, rate: float) -> Any:
        if (kind, rate) not in self.sets:
            self.sets[kind, rate] = build_poisoned_set(self.train, self.triggers()[kind], self.config.target, rate,
                                                       pool=self.pool, seed=self.seed)
        return self.sets[kind, rate]

    def _model(self, kind: str, rate: float) -> Any:
        if (kind, rate) not in self.models:
            data: list[TaskExample] = list(self.train) if kind == "clean" else self._set(kind, rate).examples
            model, _ = tune(copy.deepcopy(self.base), self.tok, data, self.config.tune, device=self.device)
            self.models[kind, rate] = model
        return self.models[kind, rate]

    # ---- aggregates ----------------------------------------------------------------------------
    def metrics(self, records: list[dict]) -> dict:
        return reproduce_metrics(records, self.config.rates)

    def finish(self, path: Path, records: list[dict], metrics: dict) -> None:
        _write_csv(Path(path) / "table.csv", TABLE_COLUMNS, metrics["table"])
        _write_csv(Path(path) / "defences.csv", DEFENCE_COLUMNS, metrics["defences"])
        _write_csv(Path(path) / "detector_ranks.csv", RANK_COLUMNS, metrics["detector_ranks"])


def reproduce_metrics(records: list[dict], rates: tuple[float, ...]) -> dict:
    """The table rows, the defence rows and the issue's targets (learned vs random PDR; clean gap)."""
    cells = [r for r in records if r["id"].startswith("cell:")]
    table = [{k: r.get(k) for k in TABLE_COLUMNS} for r in sorted(cells, key=lambda r: (KINDS.index(
        r["trigger_kind"]), r["rate"]))]
    defences = [{k: r.get(k) for k in DEFENCE_COLUMNS} for r in records if r["id"].startswith("defence:")]
    pdr = {(r["trigger_kind"], r["rate"]): r["pdr"] for r in cells}
    wins = sum(1 for rt in rates if _gt(pdr.get(("learned", rt)), pdr.get(("random_word", rt))))
    clean = next((r for r in records if r["id"] == "clean"), None)
    gap = None
    if clean is not None and cells:
        gap = max(abs(r["clean_accuracy"] - clean["clean_accuracy"]) for r in cells)
    trig = next((r for r in records if r["id"] == "trigger"), {})
    ranks = next((r["ranks"] for r in records if r["id"] == "detector_ranks"), [])
    return {"table": table, "defences": defences, "detector_ranks": ranks, "learned_beats_random_at": wins,
            "n_rates": len(rates),
            "clean_tuned_accuracy": clean["clean_accuracy"] if clean else None, "max_clean_accuracy_gap": gap,
            "triggers": {k: trig.get(key) for k, key in (("learned", "trigger"), ("random_word", "random_word"),
                                                        ("rare_token", "rare_token"))}}


def _gt(a: Any, b: Any) -> bool:
    return isinstance(a, float) and isinstance(b, float) and a == a and b == b and a > b


def _write_csv(path: Path, columns: tuple[str, ...], rows: list[dict]) -> None:
    with path.open("w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=list(columns), extrasaction="ignore")
        w.writeheader()
        for r in rows:
            w.writerow({k: (f"{v:.4f}" if isinstance(v, float) else v) for k, v in r.items()})
