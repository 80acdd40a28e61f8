"""``advlab attack llm``: attack a chat model on a set of behaviours, judge what it then says.

Per behaviour (one item of the job): run the attack (by name from :mod:`advlab.attacks.llm.registry`),
then generate the completion greedily **from the adversarial input the attack produced** (the adversarial
prompt ids, or the perturbed prompt embeddings) — the optimisation target is never prepended — then judge
the completion with every configured judge; the record::

    id, behavior, target, category, method, mode, adv_string, adv_prompt, best_loss, loss_history,
    completion, judges, success, early_stopped, steps, forward_passes, backward_passes, seconds, details

``success`` is the verdict of the first (default) judge (defaults: ``compliance``, then ``refusal``).
``metrics.json`` (:func:`advlab.metrics.attack_llm_metrics`): ASR per judge and the budget beside it.
Resume, sharding over ``accelerate launch``/``torchrun`` ranks, progress and the report are the job
layer's (:func:`advlab.jobs.run_job`).

GCG ``--universal``: one suffix s* = argmin_s (1/B) Σ_b L_b(s) over all selected behaviours, optimised
once (the job's ``prepare``), stored atomically in ``universal_suffix.json`` so that a resumed run reuses
it; each behaviour is then judged on its own completion with s*. ``transfer_models`` join the objective.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from advlab import distributed
from advlab.attacks.llm.base import AttackHelpers, AttackPrompt, LLMAttackResult, OnStep
from advlab.attacks.llm.gcg_objective import prompt_with_slot, target_loss
from advlab.attacks.llm.registry import record_details, run_llm_attack
from advlab.errors import ConfigError, require
from advlab.jobs import StepTicker, Tick, check_writable, run_job
from advlab.judges import make_judges, verdicts
from advlab.metrics import BUDGET_KEYS, attack_llm_metrics
from advlab.models.chat import load_chat_model
from advlab.models.formatting import ChatFormatter
from advlab.models.generation import greedy_generate, pad_id_of, stop_token_ids
from advlab.pipelines.attack_llm_config import (  # noqa: F401 - the names cli/ and callers import from here
    DEFAULT_JUDGES,
    EMBEDDING_EPS,
    EMBEDDING_STEP_SIZE,
    JOB,
    METHODS,
    RESUME_IGNORE,
    UNIVERSAL_FILE,
    AttackLLMConfig,
)
from advlab.pipelines.attack_llm_setup import (  # noqa: F401 - load_attack_behaviors: callers import it from here
    attack_config,
    build_helpers,
    check_universal_resume,
    load_attack_behaviors,
    preflight,
    read_universal,
)
from advlab.runs import atomic_write_json
from advlab.utils import resolve_device, seed_everything

AttackAux = AttackHelpers  # the name callers used before the attack protocol
compute_metrics = attack_llm_metrics  # likewise


def complete_and_judge(
    model: Any, tokenizer: Any, request: str, judges: Sequence[Any], max_new_tokens: int, **adv_input: Any
) -> tuple[str, dict[str, Any]]:
    """Greedy completion from the adversarial input (``input_ids=`` or ``inputs_embeds=``; the target is
    never appended) and every judge's verdict on it."""
    new = greedy_generate(model, max_new_tokens=max_new_tokens, eos_ids=stop_token_ids(model, tokenizer),
                          pad_id=pad_id_of(tokenizer), **adv_input)[0]
    completion = tokenizer.decode(new, skip_special_tokens=True)
    return completion, verdicts(judges, request, completion)


def make_record(behavior: Any, cfg: AttackLLMConfig, judges: Sequence[Any], completion: str,
                judged: dict[str, Any], result: dict[str, Any], **more: Any) -> dict[str, Any]:
    """One results.jsonl record: the behaviour, the attack's outcome (``result``: adv_string, adv_prompt,
    best_loss, loss_history, early_stopped, the budget and details), the completion and the verdicts."""
    return {
        "id": str(behavior.id), "behavior": behavior.behavior, "target": behavior.target,
        "category": behavior.category, "method": cfg.method, "mode": cfg.mode,
        "adv_string": result["adv_string"], "adv_prompt": result["adv_prompt"], "best_loss": result["best_loss"],
        "loss_history": result["loss_history"], "completion": completion, "judges": judged,
        "success": bool(judged[judges[0].name]["jailbroken"]), "early_stopped": result["early_stopped"],
        **{k: result.get(k) for k in BUDGET_KEYS}, **more, "details": result["details"],
    }


def attack_one(model: Any, tokenizer: Any, formatter: ChatFormatter, behavior: Any, cfg: AttackLLMConfig,
               judges: Sequence[Any], *, on_step: OnStep | None = None, aux: AttackHelpers | None = None,
               config: Any = None) -> dict[str, Any]:
    """Attack one behaviour, generate from the adversarial input, judge; return the record. ``config``: the
    attack's own config (default: filled from ``cfg``)."""
    res: LLMAttackResult = run_llm_attack(cfg.method, model, tokenizer, [AttackPrompt(behavior, formatter)],
                                          config or attack_config(cfg), on_step=on_step, helpers=aux)
    require(res.adv_prompt_ids is not None, f"{cfg.method} returned no adversarial prompt ids", ConfigError)
    adv_input = {"inputs_embeds": res.adv_embeds} if res.adv_embeds is not None else {"input_ids": [res.adv_prompt_ids]}
    completion, judged = complete_and_judge(model, tokenizer, behavior.request, judges, cfg.max_new_tokens, **adv_input)
    outcome = {"adv_string": res.adv_string, "adv_prompt": tokenizer.decode(res.adv_prompt_ids),
               "best_loss": res.best_loss, "loss_history": res.loss_history, "early_stopped": res.early_stopped,
               **asdict(res.budget), "details": record_details(cfg.method, res)}
    return make_record(behavior, cfg, judges, completion, judged, outcome)


class AttackLLMJob:
    """The ``attack-llm`` job: items are behaviours, one record each (see the module docstring)."""

    name = JOB
    resume_ignore = RESUME_IGNORE

    def __init__(self, cfg: AttackLLMConfig, model: Any, tokenizer: Any, formatter: ChatFormatter,
                 behaviors: Sequence[Any], judges: Sequence[Any], helpers: AttackHelpers, device: Any,
                 out: str | Path) -> None:
        self.cfg, self.config, self.seed, self.device = cfg, asdict(cfg), cfg.seed, str(device)
        self.model, self.tokenizer, self.formatter = model, tokenizer, formatter
        self.behaviors, self.judges, self.helpers, self.out = list(behaviors), list(judges), helpers, Path(out)
        self.attack_config = attack_config(cfg)
        self.suffix: dict[str, Any] | None = None

    def items(self) -> list[Any]:
        return self.behaviors

    def item_steps(self, behavior: Any) -> int:  # noqa: ARG002
        return 1 if self.cfg.universal else int(self.cfg.steps or 1)

    def _stored_suffix(self) -> dict[str, Any] | None:
        stored = read_universal(self.out)
        ids = [str(b.id) for b in self.behaviors]
        return stored if stored is not None and stored.get("behavior_ids") == ids and stored.get("adv_ids") else None

    def prepare_steps(self, todo: Sequence[Any]) -> int:  # noqa: ARG002
        return int(self.cfg.steps or 1) if self.cfg.universal and self._stored_suffix() is None else 0

    def prepare(self, todo: Sequence[Any], tick: Tick) -> None:  # noqa: ARG002
        """Universal mode: read the stored suffix, or optimise it over every selected behaviour and store it."""
        if not self.cfg.universal:
            return
        self.suffix = self._stored_suffix()
        if self.suffix is not None:
            return
        seed_everything(self.cfg.seed)
        prompts = [AttackPrompt(b, self.formatter) for b in self.behaviors]
        res = run_llm_attack("gcg", self.model, self.tokenizer, prompts, self.attack_config,
                             on_step=StepTicker(tick, int(self.cfg.steps or 1)), helpers=self.helpers)
        self.suffix = {
            "behavior_ids": [str(b.id) for b in self.behaviors], "transfer_models": list(self.cfg.transfer_models),
            "adv_ids": list(res.extra["adv_ids"]), "adv_string": res.adv_string, "best_loss": res.best_loss,
            "init_loss": res.extra.get("init_loss"), "loss_history": res.loss_history,
            "early_stopped": res.early_stopped, **asdict(res.budget),
        }
        atomic_write_json(self.out / UNIVERSAL_FILE, self.suffix)

    def run_item(self, behavior: Any, tick: Tick) -> dict[str, Any]:
        if self.cfg.universal:
            record = self._universal_record(behavior)
            tick(1)
            return record
        seed_everything(self.cfg.seed)
        ticker = StepTicker(tick, int(self.cfg.steps or 1))
        record = attack_one(self.model, self.tokenizer, self.formatter, behavior, self.cfg, self.judges,
                            on_step=ticker, aux=self.helpers, config=self.attack_config)
        ticker.finish()
        return record

    def _universal_record(self, behavior: Any) -> dict[str, Any]:
        """Its own greedy completion from its own prompt with the shared suffix, and its own target loss."""
        suffix, adv_ids = self.suffix or {}, list((self.suffix or {})["adv_ids"])
        segs = self.formatter.segments(behavior.request, self.cfg.init, behavior.target)
        prompt = prompt_with_slot(segs, adv_ids)
        completion, judged = complete_and_judge(self.model, self.tokenizer, behavior.request, self.judges,
                                                self.cfg.max_new_tokens, input_ids=[prompt])
        outcome = {**{k: suffix.get(k) for k in ("adv_string", "best_loss", "loss_history", "early_stopped")},
                   **{k: suffix.get(k) for k in BUDGET_KEYS}, "adv_prompt": self.tokenizer.decode(prompt),
                   "details": {"adv_ids": adv_ids, "n_behaviors": len(self.behaviors)}}
        return make_record(behavior, self.cfg, self.judges, completion, judged, outcome,
                           behavior_loss=target_loss(self.model, prompt, list(segs.target)))

    def metrics(self, records: Sequence[dict[str, Any]]) -> dict[str, Any]:
        """ASR and budget over this config's behaviours (in their order); universal mode reports the one
        shared attack's budget as the total, and the suffix itself."""
        by_id = {str(r["id"]): r for r in records}
        mine = [by_id[str(b.id)] for b in self.behaviors if str(b.id) in by_id]
        m = attack_llm_metrics(mine, self.judges[0].name)
        m.update(method=self.cfg.method, mode=self.cfg.mode, transfer_models=list(self.cfg.transfer_models))
        if self.cfg.universal and mine:
            shared = mine[0]
            m["universal"] = {k: shared.get(k) for k in ("adv_string", "best_loss", "early_stopped", *BUDGET_KEYS)}
            for k in BUDGET_KEYS:
                if m["budget"][k]["total"] is not None:
                    m["budget"][k]["total"] = shared.get(k)
        return m

    def manifest_extra(self, metrics: dict[str, Any]) -> dict[str, Any]:
        return {"budget": metrics["budget"]}


def run_attack_llm(
    cfg: AttackLLMConfig,
    out: str | Path,
    *,
    device: str = "auto",
    argv: list[str] | None = None,
    model_and_tokenizer: tuple[Any, Any] | None = None,
    judges: Sequence[Any] | None = None,
    show_progress: bool = True,
    aux: AttackHelpers | None = None,
) -> dict[str, Any]:
    """Run the attack over the behaviours into run directory ``out``; returns the metrics. Everything is
    checked (out, behaviours, judges, models, tokenisation) before the run directory is created.

    ``aux`` replaces the helper backends / transfer models the config would load (tests, notebooks)."""
    check_writable(out)
    dev = distributed.local_device(resolve_device(device))  # a bare cuda becomes cuda:LOCAL_RANK under a launcher
    behaviors = load_attack_behaviors(cfg)
    judge_objs = list(judges) if judges is not None else make_judges(cfg.judges, cfg.judge_model)
    check_universal_resume(cfg, out, behaviors)
    distributed.init_from_env(dev)  # gloo for CPU, nccl for CUDA; rank 0 of 1 without a launcher
    model, tok = model_and_tokenizer if model_and_tokenizer is not None else load_chat_model(cfg.model, device=dev)
    formatter = ChatFormatter(tok, system_prompt=cfg.system_prompt)
    helpers = aux if aux is not None else build_helpers(cfg, model, tok, dev)
    preflight(model, tok, formatter, behaviors, cfg, helpers)
    job = AttackLLMJob(cfg, model, tok, formatter, behaviors, judge_objs, helpers, dev, out)
    return run_job(job, out, argv=argv, progress=show_progress).metrics
