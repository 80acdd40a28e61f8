"""CAT (C-AdvUL) and CAPO (C-AdvIPO) as loss callables for :class:`~advlab.training.llm.engine.Engine`.

Xhonneux et al. 2024 (arXiv 2405.15589; PAPERS.md §1). One micro-batch holds ``n`` adversarial examples and
``u`` utility pairs. The adversary (:mod:`advlab.training.llm.adversary`) finds δ on the prompt toward the
harmful target ŷ, with dropout off and no gradient to the weights; then **one** forward pass of the model
being trained runs the rows [refusal | x+δ] (n), [ŷ | x+δ] (n) and utility (u):

- CAT:  0.5·mean_i cutoff(CE(y|x+δ), 0.5) + 0.5·mean_i cutoff(−CE(ŷ|x+δ), −5) + 1.0·mean_j CE(y_u|x_u);
- CAPO: mean_i IPO(ℓθ(y|x+δ), ℓθ(ŷ|x+δ); ℓ0(y|x), ℓ0(ŷ|x)), β = 0.25, rejected tokens with log p < −5
  zeroed, reference log-probs ℓ0 computed once up front (:func:`reference_logps`), no utility data
  (beyond the paper, utility pairs in the micro-batch add ``utility``·mean_j CE(y_u|x_u)).

Counting (per example row): ``forward_passes``/``backward_passes`` of the training pass (2n + u each),
``attack_forward_passes``/``attack_backward_passes`` of the adversary, ``adversarial_examples`` = n.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

from advlab.errors import require
from advlab.training.llm.adversary import AdversaryConfig, attack, forward_inputs, latent_hooks
from advlab.training.llm.batches import ChatEncoder, Row, pad_rows
from advlab.training.llm.data import AdvExample, ChatPair
from advlab.training.llm.engine import StepContext
from advlab.training.llm.losses import cutoff, ipo_loss, labelled_logps, mean_logp, mean_nll

METHODS = ("cat", "capo", "r2d2")


@dataclass
class LossWeights:
    """Term weights and cutoffs (paper defaults) and the IPO β."""

    toward: float = 0.5
    away: float = 0.5
    utility: float = 1.0
    toward_cutoff: float = 0.5
    away_cutoff: float = -5.0
    beta: float = 0.25
    rejected_floor: float = -5.0

    def __post_init__(self) -> None:
        require(self.beta > 0, f"--beta {self.beta}: must be positive")
        for name in ("toward", "away", "utility"):
            require(getattr(self, name) >= 0, f"--{name}-weight {getattr(self, name)}: must be 0 or more")


@dataclass
class MicroBatch:
    """Indices into the method's adversarial examples and utility pairs."""

    adv: list[int]
    util: list[int]


class _Lazy:
    """``rows[i]``: item i encoded on first use (a utility file may hold many thousands of pairs)."""

    def __init__(self, items: Sequence[Any], encode: Any) -> None:
        self.items, self.encode, self.cache = items, encode, {}

    def __getitem__(self, i: int) -> Row:
        if i not in self.cache:
            self.cache[i] = self.encode(self.items[i])
        return self.cache[i]

    def __len__(self) -> int:
        return len(self.items)


class EncodedData:
    """The adversarial examples and utility pairs, tokenised on first use."""

    def __init__(self, encoder: ChatEncoder, adv: Sequence[AdvExample], util: Sequence[ChatPair]) -> None:
        self.encoder = encoder
        self.adv = list(adv)
        self.util = list(util)
        self.attack_rows = _Lazy(self.adv, lambda a: encoder.encode_target(a.prompt, a.target, a.slot))
        self.refusal_rows = _Lazy(self.adv, lambda a: encoder.encode(a.prompt, a.refusal, a.slot))
        self.util_rows = _Lazy(self.util, lambda p: encoder.encode(p.prompt, p.response))
        tok = encoder.tokenizer
        self.pad_id = tok.pad_token_id if tok.pad_token_id is not None else 0
        self.bos_id = getattr(tok, "bos_token_id", None)

    def check(self) -> None:
        """Encode every refusal and target once (a refusal that tokenises to nothing is refused up front)."""
        seen: set[tuple[str, str]] = set()
        for i, a in enumerate(self.adv):
            if (a.refusal, a.target) not in seen:
                seen.add((a.refusal, a.target))
                self.refusal_rows[i], self.attack_rows[i]


def _forward(ctx: StepContext, rows: list[Row], index: list[int], delta: Any, pad_id: int) -> tuple[Any, Any]:
    """One forward pass of the trained model over ``rows``, row j perturbed like attack row ``index[j]``."""
    batch = {k: v.to(ctx.device) for k, v in pad_rows(rows, pad_id).items()}
    deltas = delta.rows(index, batch["input_ids"].shape[1]) if delta is not None else {}
    with latent_hooks(ctx.raw, deltas):
        kw = forward_inputs(ctx.raw, batch["input_ids"], deltas)
        return labelled_logps(ctx.model, batch["labels"], batch["attention_mask"], **kw)


class CAT:
    """C-AdvUL loss (module docstring); ``adversary`` decides where δ lives."""

    name = "cat"

    def __init__(self, data: EncodedData, adversary: AdversaryConfig, weights: LossWeights | None = None) -> None:
        self.data, self.adversary, self.w = data, adversary, weights or LossWeights()

    def _attack(self, ctx: StepContext, idx: list[int]) -> Any:
        batch = pad_rows([self.data.attack_rows[i] for i in idx], self.data.pad_id)
        return attack(ctx.raw, batch, self.adversary, self.data.bos_id)

    def _pass(self, ctx: StepContext, mb: MicroBatch) -> tuple[torch.Tensor, torch.Tensor, dict[str, float]]:
        """δ for the micro-batch's adversarial examples, then the one forward pass over [refusal | x+δ] (n),
        [ŷ | x+δ] (n) and the utility rows: per-token ``(logp, mask)`` and the step's counts."""
        d, n = self.data, len(mb.adv)
        logs: dict[str, float] = {}
        delta = None
        if n:
            delta = self._attack(ctx, mb.adv)
            logs.update(attack_loss=delta.final_loss, delta_norm=delta.norm,
                        attack_forward_passes=delta.forward_passes, attack_backward_passes=delta.backward_passes)
        rows = [d.refusal_rows[i] for i in mb.adv] + [d.attack_rows[i] for i in mb.adv]
        rows += [d.util_rows[j] for j in mb.util]
        logp, mask = _forward(ctx, rows, list(range(n)) * 2 + [-1] * len(mb.util), delta, d.pad_id)
        logs.update(forward_passes=len(rows), backward_passes=len(rows), adversarial_examples=n)
        return logp, mask, logs

    def _utility(self, logp: torch.Tensor, mask: torch.Tensor, n: int, logs: dict[str, float]) -> torch.Tensor:
        """utility weight × the mean CE of the utility rows (those after the 2n adversarial ones)."""
        util = mean_nll(logp[2 * n :], mask[2 * n :])
        logs["utility"] = float(util.detach().mean())
        return self.w.utility * util.mean()

    def __call__(self, ctx: StepContext, mb: MicroBatch) -> tuple[torch.Tensor, dict[str, float]]:
        w, n = self.w, len(mb.adv)
        logp, mask, logs = self._pass(ctx, mb)
        loss = torch.zeros((), device=logp.device)
        if n:
            nll = mean_nll(logp[: 2 * n], mask[: 2 * n])
            toward, away = nll[:n], -nll[n:]
            loss = loss + w.toward * cutoff(toward, w.toward_cutoff).mean()
            loss = loss + w.away * cutoff(away, w.away_cutoff).mean()
            logs.update(toward=float(toward.detach().mean()), away=float(away.detach().mean()))
        if mb.util:
            loss = loss + self._utility(logp, mask, n, logs)
        return loss, logs


@torch.no_grad()
def reference_logps(model: Any, data: EncodedData, batch_size: int = 16) -> torch.Tensor:
    """[N, 2] per-token mean log-probs of (refusal, harmful target) on the clean prompt under ``model``
    (call it on the base model before training: the adapter-off / frozen-copy reference of C-AdvIPO)."""
    was = model.training
    model.eval()
    dev = next(model.parameters()).device
    out = []
    try:
        for s in range(0, len(data.adv), batch_size):
            idx = list(range(s, min(s + batch_size, len(data.adv))))
            rows = [data.refusal_rows[i] for i in idx] + [data.attack_rows[i] for i in idx]
            b = {k: v.to(dev) for k, v in pad_rows(rows, data.pad_id).items()}
            lp = mean_logp(*labelled_logps(model, b["labels"], b["attention_mask"], input_ids=b["input_ids"]))
            out.append(torch.stack([lp[: len(idx)], lp[len(idx) :]], dim=1).cpu())
    finally:
        model.train(was)
    return torch.cat(out)


class CAPO(CAT):
    """C-AdvIPO loss (module docstring); ``reference`` from :func:`reference_logps`."""

    name = "capo"

    def __init__(self, data: EncodedData, adversary: AdversaryConfig, reference: torch.Tensor,
                 weights: LossWeights | None = None) -> None:
        super().__init__(data, adversary, weights)
        self.reference = reference

    def __call__(self, ctx: StepContext, mb: MicroBatch) -> tuple[torch.Tensor, dict[str, float]]:
        w, n = self.w, len(mb.adv)
        require(n > 0, "CAPO needs adversarial examples in every micro-batch")
        logp, mask, logs = self._pass(ctx, mb)
        chosen = mean_logp(logp[:n], mask[:n])
        rejected = mean_logp(logp[n : 2 * n], mask[n : 2 * n], floor=w.rejected_floor)
        ref = self.reference[mb.adv].to(chosen.device)
        loss = ipo_loss(chosen, rejected, ref[:, 0], ref[:, 1], w.beta).mean()
        logs.update(ipo=float(loss.detach()), chosen_logp=float(chosen.detach().mean()),
                    rejected_logp=float(rejected.detach().mean()))
        if mb.util:  # beyond the paper: with --utility-per-step, IPO + utility_weight · SFT
            loss = loss + self._utility(logp, mask, n, logs)
        return loss, logs
