"""R2D2 (HarmBench's adversarial training; PAPERS.md §1, §6): the discrete baseline CAT is compared with.

A pool of ``pool_size`` GCG test cases (adversarial example, suffix), persistent across steps: every step
runs ``gcg_steps`` steps of advlab's own GCG (:func:`advlab.attacks.llm.gcg.run_gcg`) on each case from
its current suffix, then trains on

    0.5·mean_i CE(y | x ⊕ s_i) + 0.5·mean_i −(1/T)Σ_t log(1 − p(ŷ_t | x ⊕ s_i))  [log p < −5 ignored]
    + 1.0·mean_j CE(y_u | x_u).

Every ``pool_refresh`` steps 20 % of the pool (at least one case) restarts from a fresh example and the
initial suffix. The cost is counted honestly: every GCG candidate sequence is a forward pass. The pool is
checkpointed with the engine (``Pool.state_dict``). One process, ``grad_accum`` 1.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

import torch

from advlab.errors import require
from advlab.training.llm.adversary import _eval_mode
from advlab.training.llm.batches import Row
from advlab.training.llm.engine import StepContext
from advlab.training.llm.losses import mean_nll, unlikelihood
from advlab.training.llm.methods import EncodedData, MicroBatch, _forward

INIT_SUFFIX = " ".join(["x"] * 20)


@dataclass
class R2D2Config:
    pool_size: int = 8
    pool_refresh: int = 50
    gcg_steps: int = 5
    search_width: int = 512
    topk: int = 256
    init: str = INIT_SUFFIX

    def __post_init__(self) -> None:
        require(self.pool_size >= 1, f"--pool-size {self.pool_size}: must be at least 1")
        require(self.pool_refresh >= 1, f"--pool-refresh {self.pool_refresh}: must be at least 1")
        require(self.gcg_steps >= 1, f"--gcg-steps {self.gcg_steps}: must be at least 1")


class Pool:
    """The persistent GCG test cases: ``entries[k] = [example index, suffix text]``."""

    def __init__(self) -> None:
        self.entries: list[list[Any]] = []

    def state_dict(self) -> dict[str, Any]:
        return {"entries": [list(e) for e in self.entries]}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.entries = [list(e) for e in state["entries"]]


class R2D2:
    name = "r2d2"

    def __init__(self, data: EncodedData, tokenizer: Any, config: R2D2Config, seed: int = 0) -> None:
        from advlab.models.formatting import ChatFormatter

        self.data, self.tok, self.cfg, self.seed = data, tokenizer, config, seed
        self.formatter = ChatFormatter(tokenizer, slot="suffix")
        self.pool = Pool()

    def refresh(self, step: int) -> None:
        """Fill the pool at step 0; every ``pool_refresh`` steps restart 20 % of it."""
        rng = random.Random(f"{self.seed}:pool:{step}")
        n = len(self.data.adv)
        if not self.pool.entries:
            self.pool.entries = [[rng.randrange(n), self.cfg.init] for _ in range(self.cfg.pool_size)]
        elif step % self.cfg.pool_refresh == 0:
            k = max(1, self.cfg.pool_size // 5)
            for slot in rng.sample(range(len(self.pool.entries)), k):
                self.pool.entries[slot] = [rng.randrange(n), self.cfg.init]

    def _gcg(self, model: Any, step: int, k: int) -> tuple[Row, Row, Any]:
        from advlab.attacks.llm.gcg import GCGConfig, run_gcg

        i, suffix = self.pool.entries[k]
        ex = self.data.adv[i]
        segs = self.formatter.segments(ex.prompt, suffix, ex.target)
        gcfg = GCGConfig(steps=self.cfg.gcg_steps, search_width=self.cfg.search_width, topk=self.cfg.topk,
                         optim_str_init=suffix, early_stop=False, seed=self.seed * 100003 + step * 97 + k)
        res = run_gcg(model, self.tok, segs, gcfg)
        self.pool.entries[k][1] = res.adv_string or suffix
        prompt = tuple(res.adv_prompt_ids or segs.prompt_ids)
        toward = Row(prompt, self.data.refusal_rows[i].response_ids)
        away = Row(prompt, self.data.attack_rows[i].response_ids)
        return toward, away, res

    def __call__(self, ctx: StepContext, mb: MicroBatch) -> tuple[torch.Tensor, dict[str, float]]:
        d = self.data
        self.refresh(ctx.step)
        towards, aways, fwd, bwd, best = [], [], 0, 0, []
        with _eval_mode(ctx.raw):
            for k in range(len(self.pool.entries)):
                t, a, res = self._gcg(ctx.raw, ctx.step, k)
                towards.append(t)
                aways.append(a)
                fwd += res.budget.forward_passes
                bwd += res.budget.backward_passes
                best.append(res.best_loss)
        n = len(towards)
        rows = towards + aways + [d.util_rows[j] for j in mb.util]
        logp, mask = _forward(ctx, rows, [-1] * len(rows), None, d.pad_id)
        nll = mean_nll(logp, mask)
        toward = nll[:n]
        away = unlikelihood(logp[n : 2 * n], mask[n : 2 * n])
        loss = 0.5 * toward.mean() + 0.5 * away.mean()
        logs = {"toward": float(toward.detach().mean()), "away": float(away.detach().mean()),
                "attack_loss": sum(best) / n, "attack_forward_passes": fwd, "attack_backward_passes": bwd,
                "forward_passes": len(rows), "backward_passes": len(rows), "adversarial_examples": n}
        if mb.util:
            util = nll[2 * n :]
            loss = loss + util.mean()
            logs["utility"] = float(util.detach().mean())
        return loss, logs
