"""``advlab attack llm``: attack a chat model on a set of behaviours, judge what it then says.

Per behaviour: run the attack (embedding, GCG, AutoDAN or PAIR), then generate the completion
greedily **from the adversarial input the attack produced** (the adversarial prompt ids, or the
perturbed prompt embeddings) — the optimisation target is never prepended — then judge the
completion with every configured judge, then append the record::

    id, behavior, target, method, adv_string, best_loss, loss_history, completion, judges,
    success, steps, forward_passes, backward_passes, seconds (+ early_stopped, adv_prompt)

``success`` is the verdict of the first (default) judge. ``metrics.json``: ``asr`` (default
judge), ``asr_by_judge`` and the budget (mean/median steps, forward and backward passes, seconds).
Resumable (finished ids are skipped); shardable with ``accelerate launch`` (each process takes
every world_size-th behaviour; the main process writes the merged metrics after a barrier).
"""

from __future__ import annotations

import statistics
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from advlab.errors import ConfigError, DataError, require

JOB = "attack-llm"
METHODS = ("embedding", "gcg", "autodan", "pair")
DEFAULT_BEHAVIORS = "builtin:gym-harmful-test"
DEFAULT_STEPS = {"embedding": 100, "gcg": 250, "autodan": 100, "pair": 3}
DEFAULT_INIT = " ".join(["x"] * 20)


@dataclass
class AttackLLMConfig:
    """Everything ``advlab attack llm`` needs; invalid values fail before any work starts.

    ``steps=None`` takes the method's default (embedding 100, GCG 250, AutoDAN 100, PAIR 3).
    Embedding attack: ``eps`` relative radius (None = unbounded), ``step_size`` absolute signed step,
    ``norm``, ``embedding_mode``. GCG: ``search_width``, ``topk``, ``n_replace``, ``init``,
    ``buffer_size``, ``mellowmax``, ``allow_non_ascii``.
    """

    method: str
    model: str
    behaviors: str = DEFAULT_BEHAVIORS
    limit: int | None = None
    steps: int | None = None
    search_width: int = 512
    topk: int = 256
    n_replace: int = 1
    eps: float | None = None
    step_size: float = 1e-3
    norm: str = "l2"
    embedding_mode: str = "suffix"
    init: str = DEFAULT_INIT
    buffer_size: int = 0
    mellowmax: bool = False
    allow_non_ascii: bool = False
    early_stop: bool = True
    max_new_tokens: int = 64
    judges: list[str] = field(default_factory=lambda: ["refusal"])
    judge_model: str | None = None
    system_prompt: str | None = None
    seed: int = 0

    def __post_init__(self) -> None:
        require(self.method in METHODS, f"--method {self.method}: unknown; use one of {', '.join(METHODS)}")
        require(bool(str(self.model).strip()), "--model is empty; pass a model directory or hub id")
        require(bool(str(self.behaviors).strip()), "--behaviors is empty; pass a file or builtin:NAME")
        require(self.limit is None or self.limit >= 1, f"--limit {self.limit}: must be at least 1")
        if self.steps is None:
            self.steps = DEFAULT_STEPS[self.method]
        require(self.steps >= 1, f"--steps {self.steps}: must be at least 1")
        require(self.search_width >= 1, f"--search-width {self.search_width}: must be at least 1 (default 512)")
        require(self.topk >= 1, f"--topk {self.topk}: must be at least 1 (default 256)")
        require(self.n_replace >= 1, f"--n-replace {self.n_replace}: must be at least 1 (default 1)")
        require(self.eps is None or self.eps >= 0, f"--eps {self.eps}: must be 0 or more (leave out: unbounded)")
        require(self.step_size > 0, f"--step-size {self.step_size}: must be positive")
        require(self.norm in ("l2", "linf"), f"--norm {self.norm}: use l2 or linf")
        require(self.embedding_mode in ("suffix", "instruction"), "--embedding-mode: use suffix or instruction")
        require(self.max_new_tokens >= 1, f"--max-new-tokens {self.max_new_tokens}: must be at least 1")
        require(bool(self.judges), "--judge: give at least one judge (e.g. refusal)")
        if self.method in ("gcg", "embedding") and (self.method == "gcg" or self.embedding_mode == "suffix"):
            require(bool(self.init.strip()), "--init is empty; pass an initial attack string such as 'x x x x x'")

    def gcg_config(self) -> Any:
        from advlab.attacks.llm.gcg import GCGConfig

        return GCGConfig(
            steps=self.steps,
            search_width=self.search_width,
            topk=self.topk,
            n_replace=self.n_replace,
            optim_str_init=self.init,
            buffer_size=self.buffer_size,
            use_mellowmax=self.mellowmax,
            allow_non_ascii=self.allow_non_ascii,
            early_stop=self.early_stop,
            seed=self.seed,
        )

    def embedding_config(self) -> Any:
        from advlab.attacks.llm.embedding import EmbeddingAttackConfig

        return EmbeddingAttackConfig(
            steps=self.steps,
            eps=self.eps,
            norm=self.norm,
            step_size=self.step_size,
            mode=self.embedding_mode,
            early_stop=self.early_stop,
            init_str=self.init,
        )


def load_attack_behaviors(cfg: AttackLLMConfig) -> list[Any]:
    """The behaviours to attack (first ``limit``), validated before any model is loaded."""
    from advlab.data.behaviors import load_behaviors

    items = list(load_behaviors(cfg.behaviors))
    items = [b for b in items if str(getattr(b, "target", "") or "").strip()]
    if not items:
        raise DataError(
            f"--behaviors {cfg.behaviors}: no behaviour with a target string; attacks need targets "
            "(e.g. 'Sure, here is ...'), use a file with a target column or builtin:gym-harmful-test"
        )
    if cfg.limit is not None:
        items = items[: cfg.limit]
    ids = [str(b.id) for b in items]
    require(len(set(ids)) == len(ids), f"--behaviors {cfg.behaviors}: behaviour ids repeat", DataError)
    return items


def make_judges(names: Sequence[str], judge_model: str | None = None) -> list[Any]:
    """Judge objects for names (``refusal``, ``harmbench`` with ``judge_model``), validated up front."""
    try:
        from advlab.judges import get_judge
    except ImportError:  # judges registry not there: only the refusal judge
        get_judge = None
    out = []
    for name in names:
        if get_judge is not None:
            out.append(get_judge(name, model=judge_model) if name == "harmbench" else get_judge(name))
        elif name == "refusal":
            from advlab.judges.refusal import RefusalJudge

            out.append(RefusalJudge())
        else:
            raise ConfigError(f"--judge {name}: unknown judge; use refusal")
    return out


def _attack_fn(method: str) -> Callable[..., Any]:
    """The attack entry point for ``method`` (AutoDAN and PAIR come from their own modules)."""
    if method == "autodan":
        from advlab.attacks.llm.autodan import run_autodan

        return run_autodan
    if method == "pair":
        from advlab.attacks.llm.pair import run_pair_local

        return run_pair_local
    raise ConfigError(f"--method {method}: unknown")


def attack_one(
    model: Any,
    tokenizer: Any,
    formatter: Any,
    behavior: Any,
    cfg: AttackLLMConfig,
    judges: Sequence[Any],
    *,
    on_step: Callable[[int, float], None] | None = None,
) -> dict[str, Any]:
    """Attack one behaviour, generate from the adversarial input, judge; return the record."""
    from advlab.attacks.llm.common import eos_token_ids, greedy_generate, pad_id_of

    eos = eos_token_ids(model, tokenizer)
    pad = pad_id_of(tokenizer)
    if cfg.method == "gcg":
        from advlab.attacks.llm.gcg import run_gcg

        segs = formatter.segments(behavior.request, cfg.init, behavior.target)
        res = run_gcg(model, tokenizer, segs, cfg.gcg_config(), on_step=on_step)
        new = greedy_generate(
            model, input_ids=[res.adv_prompt_ids], max_new_tokens=cfg.max_new_tokens, eos_ids=eos, pad_id=pad
        )[0]
    elif cfg.method == "embedding":
        from advlab.attacks.llm.embedding import run_embedding_attack

        slot_text = cfg.init if cfg.embedding_mode == "suffix" else ""
        segs = formatter.segments(behavior.request, slot_text, behavior.target)
        res = run_embedding_attack(model, tokenizer, segs, cfg.embedding_config(), on_step=on_step)[0]
        new = greedy_generate(
            model, inputs_embeds=res.adv_embeds, max_new_tokens=cfg.max_new_tokens, eos_ids=eos, pad_id=pad
        )[0]
    else:
        fn = _attack_fn(cfg.method)
        res = fn(model, tokenizer, behavior, _other_config(cfg), formatter=formatter)
        require(res.adv_prompt_ids is not None, f"{cfg.method} returned no adversarial prompt ids", ConfigError)
        new = greedy_generate(
            model, input_ids=[res.adv_prompt_ids], max_new_tokens=cfg.max_new_tokens, eos_ids=eos, pad_id=pad
        )[0]
    completion = tokenizer.decode(new, skip_special_tokens=True)
    verdicts = {j.name: j.judge(behavior.request, completion).to_dict() for j in judges}
    return {
        "id": str(behavior.id),
        "behavior": behavior.behavior,
        "target": behavior.target,
        "category": behavior.category,
        "method": cfg.method,
        "adv_string": res.adv_string,
        "adv_prompt": tokenizer.decode(res.adv_prompt_ids) if res.adv_prompt_ids is not None else None,
        "best_loss": res.best_loss,
        "loss_history": res.loss_history,
        "completion": completion,
        "judges": verdicts,
        "success": bool(verdicts[judges[0].name]["jailbroken"]),
        "early_stopped": res.early_stopped,
        "steps": res.budget.steps,
        "forward_passes": res.budget.forward_passes,
        "backward_passes": res.budget.backward_passes,
        "seconds": res.budget.seconds,
    }


def _other_config(cfg: AttackLLMConfig) -> Any:
    """AutoDAN / PAIR config from the shared options (their own defaults otherwise)."""
    if cfg.method == "autodan":
        from advlab.attacks.llm.autodan import AutoDANConfig as C
    else:
        from advlab.attacks.llm.pair import PAIRConfig as C
    fields = set(getattr(C, "__dataclass_fields__", {}))
    kwargs: dict[str, Any] = {}
    for ours, theirs in (
        ("steps", "steps"),
        ("steps", "n_iterations"),
        ("seed", "seed"),
    ):
        if theirs in fields:
            kwargs[theirs] = getattr(cfg, ours)
    return C(**kwargs)


def compute_metrics(records: Sequence[dict[str, Any]], default_judge: str) -> dict[str, Any]:
    """ASR per judge (fraction of records whose verdict is jailbroken) and the budget beside it."""
    n = len(records)
    judges: list[str] = []
    for r in records:
        for k in r.get("judges", {}):
            if k not in judges:
                judges.append(k)
    asr_by = {
        j: (sum(bool(r["judges"][j]["jailbroken"]) for r in records if j in r["judges"]) / n if n else None)
        for j in judges
    }

    def agg(key: str) -> dict[str, float | None]:
        vals = [float(r[key]) for r in records if r.get(key) is not None]
        if not vals:
            return {"mean": None, "median": None, "total": None}
        return {"mean": statistics.fmean(vals), "median": statistics.median(vals), "total": sum(vals)}

    losses = [float(r["best_loss"]) for r in records if r.get("best_loss") is not None]
    return {
        "asr": asr_by.get(default_judge) if n else None,
        "asr_by_judge": asr_by,
        "default_judge": default_judge,
        "n": n,
        "n_success": sum(bool(r.get("success")) for r in records),
        "early_stopped": sum(bool(r.get("early_stopped")) for r in records),
        "median_best_loss": statistics.median(losses) if losses else None,
        "budget": {k: agg(k) for k in ("steps", "forward_passes", "backward_passes", "seconds")},
    }


class _Barrier:
    """``wait_for_everyone`` over torch.distributed (gloo on CPU, nccl on CUDA)."""

    def wait_for_everyone(self) -> None:
        import torch.distributed as dist

        dist.barrier()


def _dist() -> tuple[int, int, Any]:
    """(rank, world_size, barrier-or-None) under ``accelerate launch`` / ``torchrun`` (env WORLD_SIZE)."""
    import os

    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return 0, 1, None
    import torch
    import torch.distributed as dist

    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if torch.cuda.is_available() else "gloo")
    return dist.get_rank(), dist.get_world_size(), _Barrier()


def run_attack_llm(
    cfg: AttackLLMConfig,
    out: str | Path,
    *,
    device: str = "auto",
    argv: list[str] | None = None,
    model_and_tokenizer: tuple[Any, Any] | None = None,
    judges: Sequence[Any] | None = None,
    show_progress: bool = True,
) -> dict[str, Any]:
    """Run the attack over the behaviours into run directory ``out``; returns the metrics."""
    from advlab.runs import RunDir, check_out_path
    from advlab.utils import resolve_device

    check_out_path(out)
    dev = resolve_device(device)
    import os

    if dev.type == "cuda" and dev.index is None and int(os.environ.get("WORLD_SIZE", "1")) > 1:
        import torch

        dev = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))  # one GPU per process
    behaviors = load_attack_behaviors(cfg)
    judge_objs = list(judges) if judges is not None else make_judges(cfg.judges, cfg.judge_model)
    if cfg.method in ("autodan", "pair"):
        _attack_fn(cfg.method)  # fail early when the method is not available
    rank, world, state = _dist()
    if model_and_tokenizer is None:
        from advlab.models import load_chat_model

        model, tok = load_chat_model(cfg.model, device=dev)
    else:
        model, tok = model_and_tokenizer
    from advlab.models.formatting import ChatFormatter

    formatter = ChatFormatter(
        tok,
        system_prompt=cfg.system_prompt,
        slot="request" if cfg.embedding_mode == "instruction" and cfg.method == "embedding" else "suffix",
    )
    preflight(model, tok, formatter, behaviors, cfg)
    config = asdict(cfg)
    run = RunDir(
        out,
        JOB,
        config,
        seed=cfg.seed,
        device=str(dev),
        argv=argv,
        resume_ignore=("device", "limit"),
        rank=rank,
        world_size=world,
    )
    if state is not None and rank != 0:
        state.wait_for_everyone()  # rank 0 creates the directory first
    with run:
        if state is not None and rank == 0:
            state.wait_for_everyone()
        todo = list(run.pending(behaviors, key=lambda b: str(b.id)))
        _loop(model, tok, formatter, todo, cfg, judge_objs, run, show_progress and rank == 0)
        if state is not None:
            state.wait_for_everyone()
        metrics = compute_metrics(_merged(run, behaviors), judge_objs[0].name)
        run.write_metrics(metrics)
        run.update_manifest(budget=metrics["budget"])
    if rank == 0:
        from advlab.report.html import write_report

        write_report(run.path)
    return metrics


def preflight(model: Any, tok: Any, formatter: Any, behaviors: Sequence[Any], cfg: AttackLLMConfig) -> None:
    """Checks that need the model and tokenizer, done before the run directory is created."""
    from advlab.attacks.llm.common import embedding_matrix

    vocab = int(embedding_matrix(model).shape[0])
    if cfg.method == "gcg":
        require(
            cfg.topk <= vocab, f"--topk {cfg.topk} exceeds the vocabulary size {vocab}; pass --topk {vocab} or less"
        )
    if cfg.method == "gcg" or (cfg.method == "embedding" and cfg.embedding_mode == "suffix"):
        for b in behaviors:
            segs = formatter.segments(b.request, cfg.init, b.target)
            require(len(segs.slot) > 0, f"--init {cfg.init!r} tokenises to zero tokens; pass a non-empty string")
            require(len(segs.target) > 0, f"behaviour {b.id} has an empty target; give it a target string")
            if cfg.method == "gcg":
                require(
                    cfg.n_replace <= len(segs.slot),
                    f"--n-replace {cfg.n_replace} exceeds the {len(segs.slot)} tokens of --init; lower it",
                )


def _merged(run: Any, behaviors: Sequence[Any]) -> list[dict[str, Any]]:
    """Records of the behaviours of this config (all ranks), in behaviour order."""
    by_id = {str(r["id"]): r for r in run.all_records()}
    return [by_id[str(b.id)] for b in behaviors if str(b.id) in by_id]


def _loop(
    model: Any,
    tok: Any,
    formatter: Any,
    todo: Sequence[Any],
    cfg: AttackLLMConfig,
    judges: Sequence[Any],
    run: Any,
    show: bool,
) -> None:
    import torch

    from advlab.utils import seed_everything

    done = [r for r in run.records]
    wins = sum(bool(r.get("success")) for r in done)
    if not show:
        for b in todo:
            seed_everything(cfg.seed)
            run.append(attack_one(model, tok, formatter, b, cfg, judges))
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    with Progress(
        TextColumn("[bold]attack {task.fields[method]}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("ASR {task.fields[asr]}  loss {task.fields[loss]}"),
        TimeElapsedColumn(),
        transient=False,
    ) as prog:
        n_done = len(done)
        task = prog.add_task(
            "attack", total=len(todo) + n_done, completed=n_done, method=cfg.method, asr=f"{wins}/{n_done}", loss="-"
        )

        def on_step(step: int, loss: float) -> None:
            prog.update(task, loss=f"{loss:.3f} (step {step})")

        for b in todo:
            seed_everything(cfg.seed)
            with torch.enable_grad():
                rec = attack_one(model, tok, formatter, b, cfg, judges, on_step=on_step)
            run.append(rec)
            n_done += 1
            wins += int(rec["success"])
            prog.update(task, advance=1, asr=f"{wins}/{n_done} = {wins / n_done:.0%}")
