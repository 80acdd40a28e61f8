"""The training-time adversary: where δ lives and how it is found (pluggable; the losses stay the same).

- ``embedding`` (CAT, Xhonneux et al. 2024): δ on the input embeddings of every prompt token (BOS
  excepted; or only a row's attack slot, ``Row.perturb``), found by
  :func:`advlab.attacks.llm.embedding.embedding_attack_delta` in instruction mode: per-token L2 ball of
  radius eps × mean embedding row norm, signed steps, toward the harmful target.
- ``latent`` (latent adversarial training, Sheshadri et al. 2024; PAPERS.md §6): δ_l added by forward
  hooks to the residual stream after decoder layers ``layers`` at the prompt positions, per-token L2 ball
  of radius eps × the mean norm of the clean hidden state at that layer, the same signed steps.
- ``optimizer``: signed steps of ``step_size`` (CAT) or Adam with learning rate ``step_size`` (the update
  rule of ``attack llm --method embedding``), embedding only;
- ``one_step``: a single signed step of the full radius (the paper's one-step variant; the ball then
  rescales it onto its boundary).

Both run with dropout off and take gradients w.r.t. δ only: the weights get no gradient from the attack.
Rows are right-padded with the prompt first, so ``Delta.rows(index, width)`` moves δ onto other rows that
share a prompt (the toward and away rows of the training forward pass).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import torch

from advlab.attacks.llm.embedding import EmbeddingAttackConfig, ball_radius, embedding_attack_delta, project
from advlab.errors import ConfigError, require
from advlab.training.llm.losses import mean_nll, token_logps

ADVERSARIES = ("embedding", "latent")


@dataclass
class AdversaryConfig:
    kind: str = "embedding"
    eps: float = 0.05
    steps: int = 10
    step_size: float = 1e-4
    one_step: bool = False
    layers: tuple[int, ...] = ()
    optimizer: str = "sign"

    def __post_init__(self) -> None:
        self.layers = tuple(int(x) for x in self.layers)
        require(self.kind in ADVERSARIES, f"--adversary {self.kind!r}: use one of {', '.join(ADVERSARIES)}")
        require(self.eps >= 0, f"--eps {self.eps}: must be 0 or more")
        require(self.steps >= 0, f"--attack-steps {self.steps}: must be 0 or more")
        require(self.step_size > 0, f"--attack-step-size {self.step_size}: must be positive")
        require(self.kind != "latent" or bool(self.layers), "--adversary latent needs --layers, e.g. --layers 1,2")
        require(self.optimizer in ("sign", "adam"), f"--attack-optimizer {self.optimizer!r}: use sign or adam")
        require(self.optimizer == "sign" or (self.kind == "embedding" and not self.one_step),
                "--attack-optimizer adam needs --adversary embedding without --one-step")


@dataclass
class Delta:
    """δ per site (``"embed"`` or a layer index) [B, L, d], with the attack's final loss and cost."""

    values: dict[Any, torch.Tensor]
    final_loss: float
    norm: float
    forward_passes: int
    backward_passes: int
    extra: dict[str, float] = field(default_factory=dict)

    def rows(self, index: Sequence[int], width: int) -> dict[Any, torch.Tensor]:
        """δ for a batch whose row j shares the prompt of attack row ``index[j]`` (−1: no perturbation)."""
        out = {}
        for site, v in self.values.items():
            full = torch.zeros(len(index), width, v.shape[-1], dtype=v.dtype, device=v.device)
            n = min(width, v.shape[1])
            for j, i in enumerate(index):
                if i >= 0:
                    full[j, :n] = v[i, :n]
            out[site] = full
        return out


def decoder_layers(model: Any) -> torch.nn.ModuleList:
    """The decoder's list of layers (``...layers`` or GPT-2's ``...h``)."""
    for name, mod in model.named_modules():
        if isinstance(mod, torch.nn.ModuleList) and (name.endswith("layers") or name.endswith(".h")):
            return mod
    raise ConfigError("cannot find the model's decoder layers; use --adversary embedding")


def check_layers(model: Any, layers: Sequence[int]) -> None:
    n = len(decoder_layers(model))
    bad = [x for x in layers if not 0 <= x < n]
    require(not bad, f"--layers {','.join(map(str, bad))}: the model has {n} decoder layers; use 0..{n - 1}")


def perturb_mask(batch: dict[str, torch.Tensor], bos_id: int | None) -> torch.Tensor:
    """Prompt positions, without a leading BOS."""
    pm = batch["prompt_mask"].clone()
    if bos_id is not None:
        pm[:, 0] &= batch["input_ids"][:, 0] != bos_id
    return pm


@contextmanager
def _eval_mode(model: Any) -> Iterator[None]:
    modes = {m: m.training for m in model.modules()}
    model.eval()
    try:
        yield
    finally:
        for m, was in modes.items():
            m.training = was


@contextmanager
def latent_hooks(model: Any, deltas: dict[Any, torch.Tensor]) -> Iterator[None]:
    """Add ``deltas[l]`` [B, L, d] to the output hidden state of decoder layer l during forward passes."""
    layers = decoder_layers(model)
    handles = []
    for site, d in deltas.items():
        if site == "embed":
            continue

        def hook(_mod, _inp, out, d=d):
            if isinstance(out, tuple):
                return (out[0] + d.to(out[0].dtype), *out[1:])
            return out + d.to(out.dtype)

        handles.append(layers[int(site)].register_forward_hook(hook))
    try:
        yield
    finally:
        for h in handles:
            h.remove()


def forward_inputs(model: Any, input_ids: torch.Tensor, deltas: dict[Any, torch.Tensor]) -> dict[str, torch.Tensor]:
    """``inputs_embeds`` (embedding δ added) or ``input_ids`` for a forward pass (latent δ go through hooks)."""
    if "embed" in deltas:
        emb = model.get_input_embeddings()(input_ids)
        return {"inputs_embeds": emb + deltas["embed"].to(emb.dtype)}
    return {"input_ids": input_ids}


def attack(model: Any, batch: dict[str, torch.Tensor], cfg: AdversaryConfig, bos_id: int | None = None) -> Delta:
    """Find δ for ``batch`` (attack rows: prompt + harmful target, right-padded) against ``model``."""
    dev = next(model.parameters()).device
    b = {k: v.to(dev) for k, v in batch.items()}
    pm = perturb_mask(b, bos_id)
    if cfg.eps == 0 or (cfg.steps == 0 and not cfg.one_step):  # no attack: δ = 0 and nothing spent
        if cfg.kind == "latent":
            check_layers(model, cfg.layers)
        n, width = b["input_ids"].shape
        d = model.get_input_embeddings().weight.shape[1]
        sites = ["embed"] if cfg.kind == "embedding" else list(cfg.layers)
        return Delta({s: torch.zeros(n, width, d, device=dev) for s in sites}, float("nan"), 0.0, 0, 0)
    if cfg.kind == "embedding":
        return _embedding(model, b, pm, cfg)
    return _latent(model, b, pm, cfg)


def _embedding(model: Any, b: dict[str, torch.Tensor], pm: torch.Tensor, cfg: AdversaryConfig) -> Delta:
    radius = ball_radius(model, cfg.eps, "l2") or 0.0
    steps, step = (1, max(radius, 1e-12)) if cfg.one_step else (cfg.steps, cfg.step_size)
    acfg = EmbeddingAttackConfig(steps=steps, eps=cfg.eps, step_size=step, mode="instruction", early_stop=False,
                                 optimizer=cfg.optimizer)
    with torch.no_grad():
        emb = model.get_input_embeddings()(b["input_ids"]).detach()
    res = embedding_attack_delta(model, emb, b["attention_mask"], pm, b["labels"], acfg)
    norms = res.delta.norm(dim=-1)[pm]
    return Delta({"embed": res.delta}, float(res.best_loss.mean()), float(norms.mean()) if norms.numel() else 0.0,
                 res.forward_passes, res.backward_passes, {"radius": radius})


def _latent(model: Any, b: dict[str, torch.Tensor], pm: torch.Tensor, cfg: AdversaryConfig) -> Delta:
    check_layers(model, cfg.layers)
    layers = decoder_layers(model)
    n_rows, width = b["input_ids"].shape
    mask3 = pm.unsqueeze(-1)
    fwd = bwd = 0
    with _eval_mode(model):
        clean: dict[int, torch.Tensor] = {}
        hs = [layers[x].register_forward_hook(lambda _m, _i, o, x=x: clean.__setitem__(x, (o[0] if isinstance(o, tuple)
                                                                                           else o).detach()))
              for x in cfg.layers]
        try:
            with torch.no_grad():
                model(input_ids=b["input_ids"], attention_mask=b["attention_mask"], use_cache=False)
        finally:
            for h in hs:
                h.remove()
        radius = {x: cfg.eps * float(clean[x].float().norm(dim=-1)[pm].mean()) for x in cfg.layers}
        deltas = {x: torch.zeros(n_rows, width, clean[x].shape[-1], device=pm.device, requires_grad=True)
                  for x in cfg.layers}
        steps = 1 if cfg.one_step else cfg.steps
        final = float("nan")
        for s in range(steps + 1):
            with latent_hooks(model, {x: d * mask3 for x, d in deltas.items()}):
                logits = model(input_ids=b["input_ids"], attention_mask=b["attention_mask"], use_cache=False).logits
            fwd += n_rows
            rows = mean_nll(*token_logps(logits, b["labels"]))
            final = float(rows.detach().mean())
            if s == steps:
                break
            grads = torch.autograd.grad(rows.sum(), list(deltas.values()))
            bwd += n_rows
            with torch.no_grad():
                for (x, d), g in zip(deltas.items(), grads):
                    d -= (radius[x] if cfg.one_step else cfg.step_size) * g.sign()
                    d.copy_(project(d * mask3, radius[x], "l2"))
    out = {x: d.detach() * mask3 for x, d in deltas.items()}
    norms = torch.stack([v.norm(dim=-1)[pm].mean() for v in out.values()]) if pm.any() else torch.zeros(1)
    return Delta(out, final, float(norms.mean()), fwd, bwd, {f"radius_{x}": r for x, r in radius.items()})
