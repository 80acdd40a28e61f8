"""``advlab attack classifier``: the job ``attack-classifier`` (wiring; :mod:`advlab.attacks.classifier.evaluate`).

Items are the (ε, batch) pairs; a batch is done when all its samples have records. ``examples.safetensors``
keeps a few clean/adversarial pairs per ε (those of each ε's first batch, when rank 0 ran it) for the report.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from advlab.attacks.classifier.evaluate import AttackEvalConfig, batch_records, load_eval_inputs, summarise
from advlab.jobs import check_writable, run_job

N_EXAMPLES = 8


@dataclass
class AttackClassifierJob:
    name = "attack-classifier"
    resume_ignore = ("device", "batch_size")
    cfg: AttackEvalConfig
    config: dict[str, Any]
    model: Any
    x: torch.Tensor
    y: torch.Tensor
    device: str = "cpu"
    examples: dict[str, torch.Tensor] = field(default_factory=dict)

    @property
    def seed(self) -> int:
        return self.cfg.seed

    def items(self) -> list[dict[str, Any]]:
        bs, n = self.cfg.batch_size, len(self.y)
        return [{"id": f"eps={eps:g}/batch-{s}", "eps": eps, "eps_idx": ei, "start": s, "n": min(bs, n - s)}
                for ei, eps in enumerate(self.cfg.eps) for s in range(0, n, bs)]

    def item_steps(self, item: dict[str, Any]) -> int:
        return item["n"]

    def is_done(self, item: dict[str, Any], done: set[str]) -> bool:
        return all(f"eps={item['eps']:g}/{i}" in done for i in range(item["start"], item["start"] + item["n"]))

    def run_item(self, item: dict[str, Any], tick) -> list[dict[str, Any]]:
        s, n, eps = item["start"], item["n"], item["eps"]
        xb, yb = self.x[s : s + n], self.y[s : s + n]
        recs, x_adv = batch_records(self.cfg, self.model, eps, item["eps_idx"], s, xb, yb, self.device)
        if s == 0:
            self._keep_examples(eps, recs, xb, yb, x_adv)
        tick(n)
        return recs

    def _keep_examples(self, eps: float, recs: list[dict], xb, yb, x_adv) -> None:
        """Flipped examples first, then robust ones (clean mistakes carry no perturbation and are left out)."""
        flipped = [j for j, r in enumerate(recs) if r["clean_correct"] and not r["robust"]]
        robust = [j for j, r in enumerate(recs) if r["robust"]]
        pick = (flipped[: max(N_EXAMPLES - min(2, len(robust)), 0)] + robust)[:N_EXAMPLES]
        if pick:
            idx = torch.tensor(pick)
            self.examples.update({
                f"clean/{eps:g}": xb[idx].clone(), f"adv/{eps:g}": x_adv[idx].clone(),
                f"label/{eps:g}": yb[idx].clone(),
                f"clean_pred/{eps:g}": torch.tensor([recs[j]["clean_pred"] for j in pick]),
                f"adv_pred/{eps:g}": torch.tensor([recs[j]["adv_pred"] for j in pick]),
            })  # fmt: skip

    def metrics(self, records: list[dict[str, Any]]) -> dict[str, Any]:
        m = summarise(records, self.cfg.eps)
        m.update(method=self.cfg.method, norm=self.cfg.norm, steps=self.cfg.steps, data=self.config["data"],
                 split=self.cfg.split, model=str(self.cfg.model))
        return m

    def finish(self, path: Path, records: list[dict[str, Any]], metrics: dict[str, Any]) -> None:
        ex_path = path / "examples.safetensors"
        if self.examples:
            save_file({**(load_file(str(ex_path)) if ex_path.exists() else {}), **self.examples}, str(ex_path))


def run_attack_eval(
    cfg: AttackEvalConfig, out: str | Path, device: torch.device | str = "cpu", *, argv=None, progress: bool = True
) -> dict[str, Any]:
    """Attack ``cfg.model`` at every ε and write the run directory ``out``; returns the metrics."""
    check_writable(out)
    device = torch.device(device)
    model, meta, x, y, data = load_eval_inputs(cfg, device)
    config = {**asdict(cfg), "data": data, "n": int(len(y)), "model_meta": meta}
    job = AttackClassifierJob(cfg, config, model, x, y, device=str(device))
    return run_job(job, out, argv=argv, progress=progress).metrics
