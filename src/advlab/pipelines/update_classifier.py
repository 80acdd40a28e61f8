"""``advlab update classifier``: the job ``update-classifier`` (wiring; :mod:`advlab.training.classifier.update`).

Items: one per (α, β) candidate (fine-tune, measure, keep the model under ``candidates/<id>/``; record
``kind: candidate``), then ``samples``: pick the candidate with the lowest validation S-NFR and record the
selected model's per-test-sample flags (``kind: sample``; ``before_*`` are the pre-update model's). Every
process runs every item (``replicated``; rank 0 writes). ``out`` also holds the selected model
(``load_classifier(out)``).
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch

from advlab import distributed
from advlab.analysis.update_check import Flags, check_pair_meta, flip_metrics, load_models, read_pair_meta
from advlab.jobs import check_writable, run_job
from advlab.models.classifiers import load_classifier, save_classifier
from advlab.runs import atomic_write_json
from advlab.training.classifier.update import Baseline, Splits, candidate_id, evaluate_candidate, finetune, select
from advlab.training.classifier.update_config import UpdateConfig
from advlab.utils import seed_everything


class UpdateClassifierJob:
    name = "update-classifier"
    replicated = True

    def __init__(self, cfg: UpdateConfig, config: dict, out: Path, paths: tuple, new_meta: dict, splits: Splits,
                 device: torch.device) -> None:
        self.cfg, self.config, self.out, self.paths, self.new_meta = cfg, config, out, paths, new_meta
        self.splits, self.device, self.seed = splits, device, cfg.seed
        seed_everything(cfg.seed)
        self.old, self.new = load_models(*paths, device)
        self.base = Baseline.measure(self.old.eval(), self.new.eval(), splits, cfg.check, device)

    def items(self) -> list[dict[str, Any]]:
        cands = [{"id": f"candidate-{candidate_id(self.cfg.method, a, b)}", "cid": candidate_id(self.cfg.method, a, b),
                  "alpha": a, "beta": b} for a, b in self.cfg.candidates()]
        return [*cands, {"id": "samples"}]

    def item_steps(self, item: dict[str, Any]) -> int:
        return self.cfg.epochs * int(self.splits.x_train.shape[0]) if "cid" in item else 1

    def is_done(self, item: dict[str, Any], done: set[str]) -> bool:
        return item["id"] in done or (item["id"] == "samples" and "test-0" in done)

    def meta_for(self, row: dict[str, Any]) -> dict[str, Any]:
        c = self.cfg
        trained = {"method": f"update-{c.method}", "alpha": row["alpha"], "beta": row["beta"], "epochs": c.epochs,
                   "train_attack": c.train_attack, "eps": c.train_eps, "norm": c.check.norm, "seed": c.seed,
                   "old": str(self.paths[0]), "new": str(self.paths[1])}
        keep = {k: v for k, v in self.new_meta.items() if k not in ("format", "trained", "epoch")}
        return {**keep, "trained": trained}

    def run_item(self, item: dict[str, Any], tick) -> list[dict[str, Any]]:
        if "cid" in item:
            return [self._candidate(item, tick)]
        distributed.barrier()  # rank 0 has written every candidate's row
        rows = self._rows()
        best = rows[select(rows)]
        test = json.loads((self.out / "candidates" / best["model"] / "test_flags.json").read_text())
        b, y = self.base.new_test, self.splits.y_test
        tick(1)
        return [{"id": f"test-{i}", "index": i, "label": int(y[i]), "old_correct": bool(self.base.old_test.correct[i]),
                 "new_correct": test["correct"][i], "old_robust": bool(self.base.old_test.robust[i]),
                 "new_robust": test["robust"][i], "kind": "sample", "split": "test",
                 "before_correct": bool(b.correct[i]), "before_robust": bool(b.robust[i])} for i in range(len(y))]

    def _candidate(self, item: dict[str, Any], tick) -> dict[str, Any]:
        """Fine-tune one candidate, keep it (model, row, test flags) under ``candidates/<id>/``."""
        t0 = time.perf_counter()
        s, a, b = self.splits, item["alpha"], item["beta"]
        model = finetune(self.old, self.new, s.x_train, s.y_train, self.cfg.method, a, b, self.cfg, self.device, tick)
        row, test = evaluate_candidate(model, self.base, s, self.cfg, self.device, name=item["cid"], alpha=a, beta=b)
        row["seconds"] = round(time.perf_counter() - t0, 2)
        d = self.out / "candidates" / item["cid"]
        if distributed.is_main():
            save_classifier(model, d, self.meta_for(row))
            atomic_write_json(d / "row.json", row)
            atomic_write_json(d / "test_flags.json", {"correct": test.correct.tolist(), "robust": test.robust.tolist()})
        return {"id": item["id"], "kind": "candidate", **row}

    def _rows(self) -> list[dict[str, Any]]:
        """The candidates' table rows in sweep order (written by this run or an interrupted one)."""
        return [json.loads((self.out / "candidates" / it["cid"] / "row.json").read_text())
                for it in self.items() if "cid" in it]

    def metrics(self, records: list[dict[str, Any]]) -> dict[str, Any]:
        rows = self._rows()
        best = select(rows)
        cands = [{**r, "selected": i == best} for i, r in enumerate(rows)]
        samples = sorted((r for r in records if r.get("kind") == "sample"), key=lambda r: r["index"])
        old, new = Flags.of(samples, "old"), Flags.of(samples, "new")
        before = Flags.of(samples, "before")
        c = self.cfg.check
        return {**flip_metrics(old, new), "method": self.cfg.method, "alpha": rows[best]["alpha"],
                "beta": rows[best]["beta"], "before_update": flip_metrics(old, before),
                "table": self.base.rows() + cands, "n": len(samples), "attack": f"{c.attack}-{c.steps}", "eps": c.eps}

    def finish(self, path: Path, records: list[dict[str, Any]], metrics: dict[str, Any]) -> None:
        """The selected model as ``out`` itself."""
        rows = self._rows()
        best = rows[select(rows)]
        model = load_classifier(path / "candidates" / best["model"], self.device)
        save_classifier(model, path, self.meta_for(best))


def run_update(
    old_path: str | Path,
    new_path: str | Path,
    out: str | Path,
    cfg: UpdateConfig,
    device: torch.device | str = "cpu",
    *,
    argv: list[str] | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """``advlab update classifier``: fine-tune, select, write the model (``load_classifier(out)``), metrics."""
    check_writable(out)
    old_meta, new_meta = read_pair_meta(old_path, new_path)
    splits = Splits.load(cfg.data, cfg.val_limit, cfg.check.limit)
    check_pair_meta(old_meta, new_meta, splits.x_test, splits.y_test, cfg.data)
    device = torch.device(device)
    config = {**asdict(cfg), "old": str(old_path), "new": str(new_path)}
    job = UpdateClassifierJob(cfg, config, Path(out), (old_path, new_path), new_meta, splits, device)
    return run_job(job, out, argv=argv, progress=progress).metrics
