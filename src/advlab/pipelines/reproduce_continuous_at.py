"""``advlab reproduce continuous-at``: the job ``reproduce-continuous-at`` (wiring only).

Items, in order: ``train/<m>`` for CAT, CAPO and a short R2D2 (``advlab train llm`` into
``OUT/models/<m>``), ``eval/<m>`` for the base and each trained model (``eval llm`` into ``OUT/eval/<m>``:
utility, over-refusal, clean refusal of the held-out behaviours), ``attack/<m>/<a>`` (``attack llm`` with
GCG, the embedding attack and AutoDAN at fixed budgets into ``OUT/attack/<m>/<a>``; the trained models
also under the stronger budgets of ``STRONG``, the gradient-masking check), and ``sweep/eps<X>``
(CAT trained at radius X, its utility and the embedding attack's ASR). Each step is a sub-run that resumes
on its own; finished steps are skipped. ``finish`` writes ``table.csv``, one row per model.
"""

from __future__ import annotations

import csv
from dataclasses import asdict
from pathlib import Path
from typing import Any

from advlab.jobs import check_writable, run_job
from advlab.pipelines.attack_llm import run_attack_llm
from advlab.pipelines.attack_llm_config import AttackLLMConfig
from advlab.pipelines.attack_llm_setup import load_attack_behaviors
from advlab.pipelines.continuous_at_config import (
    ALL_ATTACKS,
    ATTACKS,
    MODELS,
    STRONG,
    TRAINED,
    ContinuousATConfig,
    recipe_config,
)
from advlab.pipelines.eval_llm import EvalLLMConfig, run_eval_llm
from advlab.pipelines.train_llm import TrainLLMConfig, train_llm

EVAL_KEYS = ("utility", "over_refusal", "refusal_rate", "n_task", "n_harmless", "n_harmful")
COLUMNS = ("model", *(f"{p}_{a}" for a in ALL_ATTACKS for p in ("asr", "asr_no_refusal", "budget")), "n_attack",
           "utility", "over_refusal", "clean_refusal", "n_eval", "attack_passes_per_adversarial_example",
           "seconds")


class ReproduceContinuousATJob:
    name = "reproduce-continuous-at"

    def __init__(self, cfg: ContinuousATConfig, out: Path) -> None:
        self.cfg, self.config, self.out = cfg, asdict(cfg), out
        self.seed, self.device = cfg.seed, cfg.device

    # ---- sub-run configs ----------------------------------------------------------------------
    def model_dir(self, name: str) -> str:
        return self.cfg.model if name == "base" else str(self.out / "models" / name)

    def train_config(self, method: str, eps: float | None = None, steps: int | None = None) -> TrainLLMConfig:
        c = self.cfg
        return TrainLLMConfig(method=method, model=c.model, max_steps=steps or c.steps[method],
                              eps=c.eps if eps is None else eps, save_every=c.save_every, eval_behaviors=c.behaviors,
                              gcg_steps=c.r2d2_gcg_steps, gcg_search_width=c.r2d2_search_width,
                              gcg_topk=min(256, c.r2d2_search_width), seed=c.seed, device=c.device)

    def eval_config(self, name: str) -> EvalLLMConfig:
        c = self.cfg
        return EvalLLMConfig(model=self.model_dir(name), behaviors=c.behaviors, limit=c.eval_limit,
                             max_new_tokens=c.max_new_tokens, seed=c.seed)

    def attack_config(self, name: str, attack: str) -> AttackLLMConfig:
        c = self.cfg
        return AttackLLMConfig(model=self.model_dir(name), behaviors=c.behaviors, limit=c.attack_limit, seed=c.seed,
                               **c.attack_options(attack))

    def sweep_name(self, eps: float) -> str:
        """A sweep point equal to the main CAT model reuses it."""
        same = eps == self.cfg.eps and self.cfg.sweep_steps == self.cfg.steps["cat"]
        return "cat" if same else f"cat-eps{eps:g}"

    # ---- the job protocol ---------------------------------------------------------------------
    def items(self) -> list[dict[str, Any]]:
        items = [{"id": f"train/{m}", "step": "train", "model": m} for m in TRAINED]
        items += [{"id": f"eval/{m}", "step": "eval", "model": m} for m in MODELS]
        items += [{"id": f"attack/{m}/{a}", "step": "attack", "model": m, "attack": a}
                  for m in MODELS for a in self.cfg.attacks_of(m)]
        return items + [{"id": f"sweep/eps{e:g}", "step": "sweep", "eps": e} for e in self.cfg.sweep_eps]

    def run_item(self, item: dict[str, Any], tick: Any) -> dict[str, Any]:
        rec = {"id": item["id"], "kind": item["step"], **{k: v for k, v in item.items() if k not in ("id", "step")}}
        if item["step"] == "train":
            rec.update(self._train(self.train_config(item["model"]), item["model"]))
        elif item["step"] == "eval":
            rec.update(self._eval(item["model"]))
        elif item["step"] == "attack":
            rec.update(self._attack(item["model"], item["attack"]))
        else:
            name = self.sweep_name(item["eps"])
            if name != "cat":
                self._train(self.train_config("cat", item["eps"], self.cfg.sweep_steps), name)
            rec.update(model=name, **self._eval(name), **self._attack(name, "embedding"))
        tick(1)
        return rec

    def _train(self, cfg: TrainLLMConfig, name: str) -> dict[str, Any]:
        m = train_llm(cfg, self.out / "models" / name, progress=False).metrics
        passes = m["attack_forward_passes"] + m["attack_backward_passes"]
        return {"training": m, "attack_passes_per_adversarial_example":
                passes / m["adversarial_examples"] if m["adversarial_examples"] else None}

    def _eval(self, name: str) -> dict[str, Any]:
        m = run_eval_llm(self.eval_config(name), self.out / "eval" / name, device=self.device)
        return {k: m[k] for k in EVAL_KEYS}

    def _attack(self, name: str, attack: str) -> dict[str, Any]:
        m = run_attack_llm(self.attack_config(name, attack), self.out / "attack" / name / attack,
                           device=self.device, show_progress=False)
        return {"asr": m["asr"], "asr_no_refusal": m["asr_by_judge"].get("refusal"), "n_attack": m["n"],
                "judge": m["default_judge"], "budget": m["budget"]}

    def metrics(self, records: list[dict[str, Any]]) -> dict[str, Any]:
        return {"table": table_rows(records, self.cfg),
                "sweep": sorted(({k: r.get(k) for k in ("eps", "model", "utility", "asr", "asr_no_refusal",
                                                        "n_attack", "n_task")}
                                 for r in records if r["kind"] == "sweep"), key=lambda r: r["eps"]),
                "judge": next((r["judge"] for r in records if r["kind"] == "attack"), None),
                "behaviors": self.cfg.behaviors,
                "attacks": {"default": list(ATTACKS), "stronger": list(STRONG) if self.cfg.strong else []}}

    def finish(self, path: Path, records: list[dict[str, Any]], metrics: dict[str, Any]) -> None:
        with (path / "table.csv").open("w", newline="", encoding="utf-8") as f:
            w = csv.DictWriter(f, fieldnames=COLUMNS)
            w.writeheader()
            w.writerows(metrics["table"])


def table_rows(records: list[dict[str, Any]], cfg: ContinuousATConfig) -> list[dict[str, Any]]:
    """One row per model: each attack's ASR (default judge, and "no refusal phrase") with its budget, the
    evaluation rates, and the training cost (attack passes per adversarial example, seconds)."""
    by_id = {r["id"]: r for r in records}
    rows = []
    for m in MODELS:
        row: dict[str, Any] = {k: None for k in COLUMNS} | {"model": m}
        for a in cfg.attacks_of(m):
            r = by_id.get(f"attack/{m}/{a}", {})
            row |= {f"asr_{a}": r.get("asr"), f"asr_no_refusal_{a}": r.get("asr_no_refusal"),
                    f"budget_{a}": cfg.budget(a)}
            row["n_attack"] = r.get("n_attack", row["n_attack"])
        ev = by_id.get(f"eval/{m}", {})
        row |= {"utility": ev.get("utility"), "over_refusal": ev.get("over_refusal"),
                "clean_refusal": ev.get("refusal_rate"), "n_eval": ev.get("n_harmful")}
        tr = by_id.get(f"train/{m}", {})
        row["attack_passes_per_adversarial_example"] = tr.get("attack_passes_per_adversarial_example")
        row["seconds"] = tr.get("training", {}).get("seconds", 0.0 if m == "base" else None)
        rows.append(row)
    return rows


def continuous_at_recipe(out: str | Path, quick: bool = False, *, argv: list[str] | None = None,
                         progress: bool = True, cfg: ContinuousATConfig | None = None) -> dict[str, Any]:
    """``advlab reproduce continuous-at``: train, evaluate and attack (see the module docstring); returns
    the metrics. ``cfg`` replaces the budgets (tests); an empty ``cfg.model`` builds or reuses the gym."""
    check_writable(out)
    cfg = cfg or recipe_config(quick)
    for m in TRAINED:  # validate every sub-run's options and the held-out behaviours before work starts
        TrainLLMConfig(method=m, model=cfg.model or "gym", eval_behaviors=cfg.behaviors)
    load_attack_behaviors(AttackLLMConfig(method="embedding", model="base", behaviors=cfg.behaviors))
    if not cfg.model:
        from advlab.models.zoo import get_safety_gym

        cfg.model = str(get_safety_gym(quick=cfg.quick, progress=progress))
    job = ReproduceContinuousATJob(cfg, Path(out))
    return run_job(job, out, argv=argv, progress=progress).metrics
