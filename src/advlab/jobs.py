"""The job layer: the one place that opens a run directory.

A job supplies only what is its own::

    class MyJob:
        name = "attack-llm"                 # manifest "job"; picks the report's figure maker
        config: Any                         # a dataclass (or mapping): written to config.yaml
        seed: int = 0
        device: str = "cpu"
        resume_ignore = ("device",)         # config keys that may change on resume
        batch_size = 1                      # >1: run_batch() gets up to this many pending items
        replicated = False                  # True: every process runs every item (data-parallel work,
                                            # e.g. training); only rank 0 appends the records

        def items(self) -> Sequence[Any]: ...                 # each has .id or ["id"]
        def run_item(self, item, tick) -> dict | list[dict]: ...  # record(s); tick(n) advances progress
        def metrics(self, records) -> dict: ...               # pure, usually from advlab.metrics

    Optional: ``item_steps(item) -> int`` (progress units per item, default 1), ``run_batch(items, tick)``,
    ``is_done(item, done_ids)``, ``manifest_extra(metrics) -> dict``, ``finish(path, records, metrics)``
    (rank 0, after metrics; e.g. write a model directory), ``prepare(todo, tick)`` (once per rank before
    its pending items, only when some are pending: one computation the items share, e.g. a universal
    suffix; ``prepare_steps(todo) -> int`` progress units for it, default 0).

:func:`run_job` then checks ``--out`` is writable, opens the :class:`~advlab.runs.RunDir` on every rank
(rank 0 first), shards the pending items round-robin over processes (or, for a ``replicated`` job, runs
each on every process and keeps rank 0's record), shows one progress bar (a line every
30 s when stdout is not a terminal), appends each record, computes ``metrics.json`` on rank 0 from every
rank's records, and writes the figures and ``report.html``. Ctrl-C or SIGTERM leaves the run resumable and
says so; a re-run prints how much was already done.
"""

from __future__ import annotations

import os
import signal
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from advlab import distributed
from advlab.errors import RunDirError
from advlab.runs import RunDir, check_out_path

Tick = Callable[[int], None]


@runtime_checkable
class Job(Protocol):
    name: str
    config: Any

    def items(self) -> Sequence[Any]: ...

    def run_item(self, item: Any, tick: Tick) -> Mapping[str, Any] | list[Mapping[str, Any]]: ...

    def metrics(self, records: Sequence[dict[str, Any]]) -> dict[str, Any]: ...


@dataclass
class JobResult:
    path: Path
    metrics: dict[str, Any]
    records: list[dict[str, Any]] = field(default_factory=list)
    resumed: bool = False


def item_id(item: Any) -> str:
    """An item's id: ``item.id``, ``item["id"]`` or the item itself."""
    if isinstance(item, Mapping):
        return str(item["id"])
    return str(getattr(item, "id", item))


def check_writable(out: str | Path) -> Path:
    """Refuse an ``--out`` that is a file or that cannot be created or written (before any work)."""
    p = check_out_path(out)
    probe = p
    while not probe.exists():
        if probe.parent == probe:
            break
        probe = probe.parent
    if not os.access(probe, os.W_OK | os.X_OK):
        raise RunDirError(f"--out {p}: {probe} is not writable; pass an --out in a directory you can write to")
    return p


# ---- progress ----------------------------------------------------------------------------------


class _Progress:
    """A rich bar on a terminal; otherwise one line every ``every`` seconds (for logs and CI)."""

    def __init__(self, label: str, total: int, enabled: bool, every: float = 30.0) -> None:
        self.label, self.total, self.done = label, total, 0
        self.enabled = enabled
        self.every = every
        self._t0 = self._last = time.monotonic()
        self._bar = None
        if enabled and sys.stdout.isatty():
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

            self._bar = Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                                 TimeRemainingColumn(), transient=True)
            self._task = self._bar.add_task(label, total=total)
            self._bar.start()

    def advance(self, n: int = 1) -> None:
        self.done += n
        if not self.enabled:
            return
        if self._bar is not None:
            self._bar.advance(self._task, n)
            return
        now = time.monotonic()
        if now - self._last >= self.every:
            self._last = now
            rate = self.done / max(now - self._t0, 1e-9)
            eta = (self.total - self.done) / rate if rate > 0 else float("nan")
            print(f"{self.label}: {self.done}/{self.total}, {now - self._t0:.0f} s, ETA {eta:.0f} s", flush=True)

    def stop(self) -> None:
        if self._bar is not None:
            self._bar.stop()


@contextmanager
def _interrupt_notice(enabled: bool) -> Iterator[None]:
    """Turn SIGTERM into KeyboardInterrupt and say, once, how to resume."""
    old = None
    if distributed.rank() == 0 and _is_main_thread():
        old = signal.signal(signal.SIGTERM, _raise_interrupt)
    try:
        yield
    except KeyboardInterrupt as exc:
        # once per interrupt, also when jobs nest (the demo runs each step as a job)
        if enabled and distributed.is_main() and not getattr(exc, "advlab_noticed", False):
            print("interrupted; re-run the same command to resume", file=sys.stderr, flush=True)
            exc.advlab_noticed = True  # type: ignore[attr-defined]
        raise
    finally:
        if old is not None:
            signal.signal(signal.SIGTERM, old)


def _raise_interrupt(signum, frame):  # noqa: ARG001
    raise KeyboardInterrupt


def _is_main_thread() -> bool:
    import threading

    return threading.current_thread() is threading.main_thread()


class StepTicker:
    """A ``(step, loss)`` hook as progress ticks (an LLM attack's ``on_step`` passes it ``info.step``): one per
    step, at most ``steps`` per item; ``finish()`` ticks what an early stop left out, so every item advances
    the bar by exactly ``steps``."""

    def __init__(self, tick: Tick, steps: int) -> None:
        self.tick, self.steps, self.done = tick, max(0, int(steps)), 0

    def __call__(self, step: int, loss: float = float("nan")) -> None:  # noqa: ARG002 - the hook's signature
        n = min(int(step), self.steps) - self.done
        if n > 0:
            self.done += n
            self.tick(n)

    def finish(self) -> None:
        self(self.steps)


# ---- the one runner ----------------------------------------------------------------------------


def _records_of(out: Any) -> list[dict[str, Any]]:
    if out is None:
        return []
    if isinstance(out, Mapping):
        return [dict(out)]
    return [dict(r) for r in out]


def run_job(
    job: Any,
    out: str | Path,
    *,
    argv: list[str] | None = None,
    progress: bool = True,
    report: bool = True,
) -> JobResult:
    """Run ``job`` into the run directory ``out`` (see the module docstring); returns the metrics."""
    check_writable(out)
    items = list(job.items())
    steps = getattr(job, "item_steps", lambda _it: 1)
    is_done = getattr(job, "is_done", lambda it, done: item_id(it) in done)
    batch_size = max(1, int(getattr(job, "batch_size", 1)))
    run_batch = getattr(job, "run_batch", None)
    replicated = bool(getattr(job, "replicated", False))
    run = RunDir(out, job.name, job.config, seed=getattr(job, "seed", None), device=str(getattr(job, "device", "cpu")),
                 argv=argv, resume_ignore=tuple(getattr(job, "resume_ignore", ("device",))),
                 rank=distributed.rank(), world_size=distributed.world_size())
    show = progress and distributed.is_main()
    with _interrupt_notice(show), run:
        done_ids = run.done_ids()
        mine = run.share(items, replicated)
        todo = [it for it in mine if not is_done(it, done_ids)]
        if run.resumed and show:
            print(f"resuming {run.path}: {len(mine) - len(todo)} of {len(mine)} items done", flush=True)
        prepare = getattr(job, "prepare", None)
        prep_steps = int(getattr(job, "prepare_steps", lambda _todo: 0)(todo)) if todo and prepare else 0
        bar = _Progress(job.name, prep_steps + sum(steps(it) for it in todo), show)
        try:
            if todo and prepare is not None:
                prepare(todo, bar.advance)
            for start in range(0, len(todo), batch_size):
                chunk = todo[start : start + batch_size]
                if run_batch is not None and batch_size > 1:
                    out_records = _records_of(run_batch(chunk, bar.advance))
                else:
                    out_records = [r for it in chunk for r in _records_of(job.run_item(it, bar.advance))]
                for rec in out_records if run.rank == 0 or not replicated else ():
                    if not run.is_done(rec["id"]):
                        run.append(rec)
        finally:
            bar.stop()
        distributed.barrier()  # every rank's records are on disk before rank 0 merges them
        records = run.all_records()
        metrics: dict[str, Any] = {}
        if distributed.is_main():
            metrics = dict(job.metrics(records))
            run.write_metrics(metrics)
            extra = getattr(job, "manifest_extra", None)
            if extra is not None:
                run.update_manifest(**extra(metrics))
            finish = getattr(job, "finish", None)
            if finish is not None:
                finish(run.path, records, metrics)
        metrics = distributed.broadcast_object(metrics)
    if report and distributed.is_main():
        from advlab.report.html import write_report

        write_report(run.path)
    return JobResult(run.path, metrics, records, run.resumed)
