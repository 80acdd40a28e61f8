"""``advlab eval llm``: refusal on harmful requests, utility on checkable tasks, over-refusal on
harmless requests, for any chat model.

For each request the model answers greedily (batched, left padding, KV cache) through its own chat
template. Records (one per request, id ``<kind>:<behaviour id>``) carry ``kind`` (``harmful``,
``harmless``, ``task``), ``prompt``, ``completion``, ``judges`` (name -> verdict) and, for tasks,
``expected`` and ``correct``. Metrics, computed from the records only:

- ``refusal_rate`` = refused harmful / harmful (refused: the refusal judge says *not* jailbroken);
- ``over_refusal`` = refused harmless / harmless;
- ``utility`` = exactly correct tasks / tasks (first line of the completion and of the expected answer,
  surrounding space and a final full stop removed, compared)

(:func:`advlab.metrics.eval_llm_metrics`). Run directory, resume, progress and report: :func:`advlab.jobs.run_job`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from advlab.data.behavior_loaders import load_behaviors, load_harmless
from advlab.errors import ConfigError
from advlab.jobs import Tick, check_writable, run_job
from advlab.judges.refusal import RefusalJudge
from advlab.metrics import EVAL_KINDS, eval_llm_metrics
from advlab.models.chat import generate_chat, load_chat_model
from advlab.utils import resolve_device, seed_everything

JOB = "eval-llm"
DEFAULT_HARMFUL = "builtin:gym-harmful-test"
DEFAULT_HARMLESS = "builtin:gym-harmless-test"
DEFAULT_TASKS = "builtin:gym-tasks-test"
KINDS = EVAL_KINDS


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
    return generate_chat(model, tokenizer, requests, max_new_tokens=max_new_tokens, device=device)


def default_judges() -> list[Any]:
    """The judges every eval record gets: the refusal-prefix judge."""
    return [RefusalJudge()]


compute_metrics = eval_llm_metrics  # the name callers used before metrics.py held it


class EvalLLMJob:
    """The ``eval-llm`` job: items are requests, answered ``batch_size`` at a time (one record each)."""

    name = JOB
    resume_ignore = ("device", "limit", "batch_size")

    def __init__(self, cfg: EvalLLMConfig, model: Any, tokenizer: Any, items: Sequence[EvalItem], device: Any,
                 on_batch: Callable[[int, int], None] | None = None) -> None:
        self.cfg, self.config, self.seed, self.device = cfg, cfg, cfg.seed, device
        self.model, self.tokenizer, self._items = model, tokenizer, list(items)
        self.batch_size, self.judges, self.on_batch = cfg.batch_size, default_judges(), on_batch
        self._done = self._todo = 0

    def items(self) -> list[EvalItem]:
        return self._items

    def run_item(self, item: EvalItem, tick: Tick) -> list[dict[str, Any]]:
        return self.run_batch([item], tick)

    def run_batch(self, chunk: Sequence[EvalItem], tick: Tick) -> list[dict[str, Any]]:
        comps = generate(self.model, self.tokenizer, [it.prompt for it in chunk],
                         max_new_tokens=self.cfg.max_new_tokens, device=self.device)
        records = [self._record(it, comp) for it, comp in zip(chunk, comps)]
        tick(len(chunk))
        self._done += len(chunk)
        if self.on_batch is not None:
            self.on_batch(self._done, self._todo)
        return records

    def prepare(self, todo: Sequence[EvalItem], tick: Tick) -> None:  # noqa: ARG002
        self._todo, self._done = len(todo), 0

    def _record(self, it: EvalItem, completion: str) -> dict[str, Any]:
        rec: dict[str, Any] = {
            "id": it.id, "kind": it.kind, "category": it.category, "prompt": it.prompt, "completion": completion,
            "judges": {j.name: j.judge(it.prompt, completion).to_dict() for j in self.judges},
        }
        if it.kind == "task":
            rec["expected"] = it.expected
            rec["correct"] = is_correct(completion, it.expected or "")
        return rec

    def metrics(self, records: Sequence[dict[str, Any]]) -> dict[str, Any]:
        wanted = {it.id for it in self._items}
        m = eval_llm_metrics([r for r in records if r["id"] in wanted], self.judges[0].name)
        m["model"] = self.cfg.model
        return m


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
    hold the model); the model must then already be on ``device``. ``on_batch(done, todo)`` after each batch.
    """
    dev = resolve_device(device)
    check_writable(out)
    items = load_items(cfg)
    model, tok = model_and_tokenizer if model_and_tokenizer is not None else load_chat_model(cfg.model, device=dev)
    model.eval()
    seed_everything(cfg.seed)
    job = EvalLLMJob(cfg, model, tok, items, dev, on_batch=on_batch)
    return run_job(job, out, argv=argv, progress=progress).metrics
