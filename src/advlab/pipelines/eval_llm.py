"""``advlab eval llm``: refusal on harmful requests, utility on checkable tasks, over-refusal on
harmless requests, for any chat model.

For each request the model answers greedily (batched, left padding, KV cache) through its own chat
template. Records (one per request, id ``<kind>:<behaviour id>``) carry ``kind`` (``harmful``,
``harmless``, ``task``), ``prompt``, ``completion``, ``judges`` (name -> verdict) and, for tasks,
``expected`` and ``correct``. Metrics, computed from the records only:

- ``refusal_rate`` = refused harmful / harmful (refused: the refusal judge says *not* jailbroken);
- ``over_refusal`` = refused harmless / harmless;
- ``utility`` = exactly correct tasks / tasks (first line of the completion and of the expected answer,
  surrounding space and a final full stop removed, compared).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from advlab.errors import ConfigError

JOB = "eval-llm"
DEFAULT_HARMFUL = "builtin:gym-harmful-test"
DEFAULT_HARMLESS = "builtin:gym-harmless-test"
DEFAULT_TASKS = "builtin:gym-tasks-test"
KINDS = ("harmful", "harmless", "task")


@dataclass
class EvalLLMConfig:
    """What ``advlab eval llm`` evaluates. ``None`` for a SPEC means "skip that kind";
    ``limit`` caps each kind (N items spread evenly over the set), ``batch_size`` requests are generated at once."""

    model: str
    behaviors: str | None = DEFAULT_HARMFUL
    harmless: str | None = DEFAULT_HARMLESS
    tasks: str | None = DEFAULT_TASKS
    limit: int | None = None
    max_new_tokens: int = 48
    batch_size: int = 32
    seed: int = 0

    def __post_init__(self) -> None:
        if not str(self.model).strip():
            raise ConfigError("--model is empty; pass a model directory or hub id")
        if self.limit is not None and self.limit < 1:
            raise ConfigError(f"--limit {self.limit}: must be at least 1 (or leave it out for every item)")
        if self.max_new_tokens < 1:
            raise ConfigError(f"--max-new-tokens {self.max_new_tokens}: must be at least 1")
        if self.batch_size < 1:
            raise ConfigError(f"--batch-size {self.batch_size}: must be at least 1")
        if not (self.behaviors or self.harmless or self.tasks):
            raise ConfigError("nothing to evaluate: give at least one of --behaviors, --harmless, --tasks")


@dataclass
class EvalItem:
    id: str
    kind: str
    prompt: str
    category: str | None = None
    expected: str | None = None


def spread(items: Sequence[Any], limit: int | None) -> list[Any]:
    """``limit`` items spread evenly over ``items`` (index ``floor(i * n / limit)``), so that a small
    ``--limit`` still covers every category of a set ordered by category; all items if ``limit`` is None."""
    n = len(items)
    if limit is None or limit >= n:
        return list(items)
    return [items[(i * n) // limit] for i in range(limit)]


def normalize_answer(text: str) -> str:
    """The answer part of a task completion: first non-empty line, stripped, final '.' removed."""
    for line in text.strip().splitlines():
        if line.strip():
            return line.strip().rstrip(".").strip()
    return ""


def is_correct(completion: str, expected: str) -> bool:
    """Both sides normalised alike: an expected answer that ends in a full stop ("Repeat after me: ...")
    must match a completion whose full stop :func:`normalize_answer` removed."""
    return normalize_answer(completion) == normalize_answer(expected)


def load_items(cfg: EvalLLMConfig) -> list[EvalItem]:
    """The requests to evaluate, validated (files parsed) before any model is loaded."""
    from advlab.data.behavior_loaders import load_behaviors, load_harmless

    items: list[EvalItem] = []
    for kind, spec, loader in (
        ("harmful", cfg.behaviors, load_behaviors),
        ("harmless", cfg.harmless, load_harmless),
        ("task", cfg.tasks, load_behaviors),
    ):
        if not spec:
            continue
        behaviors = list(loader(spec))
        behaviors = spread(behaviors, cfg.limit)
        for b in behaviors:
            expected = None
            if kind == "task":
                expected = (b.extra or {}).get("expected")
                if expected is None:
                    raise ConfigError(
                        f"--tasks {spec}: item {b.id} has no expected answer; use a task set such as {DEFAULT_TASKS}"
                    )
            items.append(EvalItem(f"{kind}:{b.id}", kind, b.request, b.category, expected))
    return items


def generate(model: Any, tokenizer: Any, requests: Sequence[str], *, max_new_tokens: int, device: Any) -> list[str]:
    """Greedy completions of one batch of chat requests (see :func:`advlab.models.chat.generate_chat`)."""
    from advlab.models.chat import generate_chat

    return generate_chat(model, tokenizer, requests, max_new_tokens=max_new_tokens, device=device)


def default_judges() -> list[Any]:
    """The judges every eval record gets: the refusal-prefix judge."""
    from advlab.judges.refusal import RefusalJudge

    return [RefusalJudge()]


def compute_metrics(records: Sequence[dict[str, Any]], judge_name: str = "refusal") -> dict[str, Any]:
    """Aggregate records: refusal rate on harmful, over-refusal on harmless, task exact match.

    A record counts as *refused* when ``judges[judge_name]["jailbroken"]`` is false.
    Rates of a kind with no records are ``None``.
    """

    def refused(r: dict[str, Any]) -> bool:
        return not bool(r["judges"][judge_name]["jailbroken"])

    by_kind: dict[str, list[dict[str, Any]]] = {k: [r for r in records if r.get("kind") == k] for k in KINDS}
    n_h, n_l, n_t = (len(by_kind[k]) for k in KINDS)
    refused_h = sum(refused(r) for r in by_kind["harmful"])
    refused_l = sum(refused(r) for r in by_kind["harmless"])
    correct = sum(bool(r.get("correct")) for r in by_kind["task"])
    metrics: dict[str, Any] = {
        "refusal_rate": refused_h / n_h if n_h else None,
        "utility": correct / n_t if n_t else None,
        "over_refusal": refused_l / n_l if n_l else None,
        "n_harmful": n_h,
        "n_refused_harmful": refused_h,
        "n_harmless": n_l,
        "n_refused_harmless": refused_l,
        "n_task": n_t,
        "n_correct_task": correct,
        "judge": judge_name,
    }
    per_cat: dict[str, dict[str, Any]] = {}
    for kind in KINDS:
        cats: dict[str, list[dict[str, Any]]] = {}
        for r in by_kind[kind]:
            cats.setdefault(str(r.get("category") or "other"), []).append(r)
        for cat, rs in sorted(cats.items()):
            if kind == "task":
                rate = sum(bool(r.get("correct")) for r in rs) / len(rs)
            else:
                rate = sum(refused(r) for r in rs) / len(rs)
            per_cat[f"{kind}/{cat}"] = {"rate": rate, "n": len(rs)}
    metrics["per_category"] = per_cat
    return metrics


def run_eval_llm(
    cfg: EvalLLMConfig,
    out: str | Path,
    *,
    device: str | None = "auto",
    argv: list[str] | None = None,
    progress: bool = False,
    model_and_tokenizer: tuple[Any, Any] | None = None,
    on_batch: Callable[[int, int], None] | None = None,
) -> dict[str, Any]:
    """Evaluate ``cfg.model`` into the run directory ``out``; returns the metrics.

    Everything is validated (device, --out, the request files, the model) before the run
    directory is created. ``model_and_tokenizer`` skips loading (tests, pipelines that already
    hold the model); the model must then already be on ``device``.
    """
    from advlab.runs import RunDir, check_out_path
    from advlab.utils import resolve_device, seed_everything

    dev = resolve_device(device)
    check_out_path(out)
    items = load_items(cfg)
    if model_and_tokenizer is None:
        from advlab.models import load_chat_model

        model, tok = load_chat_model(cfg.model, device=dev)
    else:
        model, tok = model_and_tokenizer
    model.eval()
    judges = default_judges()
    seed_everything(cfg.seed)

    with RunDir(
        out,
        JOB,
        cfg,
        seed=cfg.seed,
        device=str(dev),
        argv=argv,
        resume_ignore=("device", "limit", "batch_size"),
    ) as run:
        todo = [it for it in items if not run.is_done(it.id)]
        bar = _progress(progress, len(todo))
        try:
            for start in range(0, len(todo), cfg.batch_size):
                chunk = todo[start : start + cfg.batch_size]
                comps = generate(model, tok, [it.prompt for it in chunk], max_new_tokens=cfg.max_new_tokens, device=dev)
                for it, comp in zip(chunk, comps):
                    rec: dict[str, Any] = {
                        "id": it.id,
                        "kind": it.kind,
                        "category": it.category,
                        "prompt": it.prompt,
                        "completion": comp,
                        "judges": {j.name: j.judge(it.prompt, comp).to_dict() for j in judges},
                    }
                    if it.kind == "task":
                        rec["expected"] = it.expected
                        rec["correct"] = is_correct(comp, it.expected or "")
                    run.append(rec)
                if bar is not None:
                    bar[0].update(bar[1], advance=len(chunk))
                if on_batch is not None:
                    on_batch(start + len(chunk), len(todo))
        finally:
            if bar is not None:
                bar[0].stop()
        wanted = {it.id for it in items}
        records = [r for r in run.all_records() if r["id"] in wanted]
        metrics = compute_metrics(records, judges[0].name)
        metrics["model"] = cfg.model
        run.write_metrics(metrics)
    from advlab.report import write_report

    write_report(run.path)
    return metrics


def _progress(enabled: bool, total: int) -> tuple[Any, Any] | None:
    if not enabled:
        return None
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    bar = Progress(TextColumn("[bold]eval llm"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    task = bar.add_task("eval", total=total)
    bar.start()
    return bar, task
