"""Embedding-space attack (Schwinn et al. 2024; as used in Xhonneux et al. 2024, arXiv 2405.15589).

The input embeddings e_i of chosen prompt positions get a perturbation δ_i; the attack minimises
the teacher-forced cross-entropy of the target, L(δ) = −(1/T) Σ_t log p(y_t | e + δ, y_<t):

- signed gradient (default, CAT): δ ← δ − α·sign(∇_δ L), α absolute (1e-4 in CAT's code), or Adam(lr=α);
- projection after each step onto a per-token ball ‖δ_i‖ ≤ r, L2 (rescale) or L∞ (clip), with
  r = eps × mean row norm of the embedding matrix in that norm (eps=0.05 → 5 %); eps=None: unbounded;
- positions: the slot (an adversarial suffix of n tokens initialised from a string) or the whole
  instruction (every prompt token, template tokens included, as in CAT);
- individual (one δ per row) or universal (one slot δ shared by every row of the batch);
- early stop per row when greedy decoding reproduces the target (argmax at every target position);
- δ gets gradients through ``torch.autograd.grad``; the model weights never receive a gradient.

``embedding_attack_delta`` is the inner loop usable inside a training step (embeddings, masks and
labels in; δ out); ``run_embedding_attack`` wraps it for prompt segments and returns results;
``embedding_attack`` is the LLM-attack protocol of :mod:`advlab.attacks.llm.base`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from advlab.attacks.llm.base import AttackBudget, AttackHelpers, AttackPrompt, LLMAttackResult, OnStep, StepInfo
from advlab.attacks.llm.common import (
    IGNORE_INDEX,
    embedding_matrix,
    left_pad,
    pad_id_of,
    position_ids_from_mask,
)
from advlab.errors import ConfigError, require
from advlab.models.segments import PromptSegments
from advlab.torchutil import model_device

DEFAULT_SUFFIX = " ".join(["x"] * 20)


@dataclass
class EmbeddingAttackConfig:
    """Options of the embedding-space attack (defaults: CAT's training attack, PAPERS.md §1)."""

    steps: int = 10
    eps: float | None = 0.05  # radius relative to the mean embedding row norm; None = unbounded
    norm: str = "l2"  # "l2" or "linf"
    step_size: float = 1e-4  # absolute signed-gradient step (or Adam learning rate)
    optimizer: str = "sign"  # "sign" or "adam"
    mode: str = "suffix"  # "suffix" (the attack slot) or "instruction" (every prompt token)
    universal: bool = False
    early_stop: bool = True
    init_str: str = DEFAULT_SUFFIX  # slot text for suffix mode (used by the pipeline's formatter)

    def __post_init__(self) -> None:
        require(self.steps >= 0, f"steps {self.steps}: must be 0 or more")
        require(self.eps is None or self.eps >= 0, f"--eps {self.eps}: must be 0 or more (or unbounded)")
        require(self.norm in ("l2", "linf"), f"norm {self.norm!r}: use 'l2' or 'linf'")
        require(self.step_size > 0, f"step_size {self.step_size}: must be positive")
        require(self.optimizer in ("sign", "adam"), f"optimizer {self.optimizer!r}: use 'sign' or 'adam'")
        require(self.mode in ("suffix", "instruction"), f"mode {self.mode!r}: use 'suffix' or 'instruction'")
        require(
            not (self.universal and self.mode == "instruction"),
            "a universal embedding attack needs mode 'suffix' (one slot shared by every behaviour)",
        )


@dataclass
class DeltaResult:
    """Output of the inner loop: δ (best per row), losses and budget."""

    delta: torch.Tensor  # [B, L, d] (zero outside the perturbed positions)
    best_loss: torch.Tensor  # [B]
    history: list[list[float]]  # per step, per row
    success: torch.Tensor  # [B] bool: greedy decoding reproduces the target
    steps: int = 0
    forward_passes: int = 0
    backward_passes: int = 0
    success_step: list[int | None] = field(default_factory=list)


def ball_radius(model: Any, eps: float | None, norm: str) -> float | None:
    """r = eps × mean row norm of W_E (L2 or L∞ per row); None when unbounded."""
    if eps is None:
        return None
    w = embedding_matrix(model).detach().float()
    row = w.norm(dim=-1) if norm == "l2" else w.abs().amax(dim=-1)
    return float(eps) * float(row.mean())


def project(delta: torch.Tensor, radius: float | None, norm: str) -> torch.Tensor:
    """Per-token projection onto ‖δ_i‖ ≤ r (L2: rescale, L∞: clip)."""
    if radius is None:
        return delta
    if norm == "linf":
        return delta.clamp(-radius, radius)
    norms = delta.norm(dim=-1, keepdim=True)
    return delta * torch.clamp(radius / norms.clamp(min=1e-12), max=1.0)


def _target_positions(labels: torch.Tensor) -> torch.Tensor:
    """Positions whose logits predict a labelled token (any row): p with labels[:, p+1] labelled."""
    has = (labels[:, 1:] != IGNORE_INDEX).any(dim=0)
    return torch.nonzero(has).flatten()


def embedding_attack_delta(
    model: Any,
    inputs_embeds: torch.Tensor,
    attention_mask: torch.Tensor,
    perturb_mask: torch.Tensor,
    labels: torch.Tensor,
    config: EmbeddingAttackConfig,
    *,
    slot_positions: torch.Tensor | None = None,
    stop_check: Callable[[int, torch.Tensor], bool] | None = None,
    on_eval: Callable[[int, list[float], torch.Tensor], None] | None = None,
) -> DeltaResult:
    """Find δ for a batch: ``inputs_embeds`` [B, L, d], ``attention_mask`` [B, L], ``perturb_mask``
    [B, L] (True where δ may be non-zero), ``labels`` [B, L] (token ids at target positions, −100
    elsewhere, HF convention). Universal mode needs ``slot_positions`` [B, S]. The model weights get
    no gradient; only the target-position logits are computed. ``stop_check(step, best_delta)`` is
    called after each evaluation; True stops the attack (its own cost is the caller's).
    ``on_eval(step, row_losses, embeds)`` is called at every evaluation, as it happens, with the evaluated
    input e + δ [B, L, d] (detached): step 0 is the clean input, step s the input after s updates (the last
    one included).

    Dropout is off during the attack (every submodule in eval mode, then back in its own mode); only δ
    gets gradients, no parameter's ``.grad`` changes. bf16: ``base + δ`` is rounded to bf16 before each
    forward, so a 1e-4 step is lost where |e| ≥ 0.03 until δ accumulates; measured on the quick gym
    (8 requests, instruction mode, 10 steps) the loss drop is 0.126 vs 0.129 in float32 (eps 0.05, step
    1e-4) and 0.958 vs 0.961 (eps 1.0, step 1e-2): about 3 % weaker, so no float32 path is offered."""
    modes = {m: m.training for m in model.modules()}
    model.eval()
    try:
        return _attack(model, inputs_embeds, attention_mask, perturb_mask, labels, config,
                       slot_positions=slot_positions, stop_check=stop_check, on_eval=on_eval)
    finally:
        for m, was_training in modes.items():
            m.training = was_training


def _attack(model: Any, inputs_embeds: torch.Tensor, attention_mask: torch.Tensor, perturb_mask: torch.Tensor,
            labels: torch.Tensor, config: EmbeddingAttackConfig, *, slot_positions: torch.Tensor | None,
            stop_check: Callable[..., bool] | None, on_eval: Callable[..., None] | None) -> DeltaResult:
    cfg = config
    b, length, d = inputs_embeds.shape
    dev = inputs_embeds.device
    base = inputs_embeds.detach()
    pmask = perturb_mask.to(dev).bool().unsqueeze(-1)
    radius = ball_radius(model, cfg.eps, cfg.norm)
    keep = _target_positions(labels).to(dev)
    require(keep.numel() > 0, "the embedding attack needs target labels; every target is empty", ConfigError)
    tgt = labels[:, keep + 1].to(dev)
    tmask = tgt != IGNORE_INDEX
    require(bool(tmask.any(dim=1).all()), "a row has an empty target; give every behaviour a target string")
    pos_ids = position_ids_from_mask(attention_mask.to(dev))
    if cfg.universal:
        require(slot_positions is not None, "universal embedding attack needs slot positions")
        slot_positions = slot_positions.to(dev)
        delta = torch.zeros(slot_positions.shape[1], d, device=dev, dtype=torch.float32)
    else:
        delta = torch.zeros(b, length, d, device=dev, dtype=torch.float32)
    delta.requires_grad_(True)
    opt = torch.optim.Adam([delta], lr=cfg.step_size) if cfg.optimizer == "adam" else None

    def full_delta(dl: torch.Tensor) -> torch.Tensor:
        if cfg.universal:
            idx = slot_positions.unsqueeze(-1).expand(-1, -1, d)
            return torch.zeros(b, length, d, device=dev, dtype=dl.dtype).scatter(1, idx, dl.expand(b, -1, -1))
        return dl * pmask

    best_loss = torch.full((b,), float("inf"), device=dev)
    best_delta = torch.zeros(b, length, d, device=dev, dtype=torch.float32)
    success = torch.zeros(b, dtype=torch.bool, device=dev)
    success_step: list[int | None] = [None] * b
    history: list[list[float]] = []
    fwd = bwd = steps_done = 0
    for step in range(cfg.steps + 1):
        full = full_delta(delta)
        current = base + full.to(base.dtype)
        out = model(
            inputs_embeds=current,
            attention_mask=attention_mask.to(dev),
            position_ids=pos_ids,
            logits_to_keep=keep,
            use_cache=False,
        )
        fwd += b
        logits = out.logits.float()
        logp = torch.log_softmax(logits, dim=-1).gather(-1, tgt.clamp(min=0).unsqueeze(-1)).squeeze(-1)
        rows = -(logp * tmask).sum(-1) / tmask.sum(-1)
        match = ((logits.argmax(-1) == tgt) | ~tmask).all(-1)
        history.append(rows.detach().cpu().tolist())
        if on_eval is not None:
            on_eval(step, history[-1], current.detach())
        with torch.no_grad():
            frozen = success.clone()
            if cfg.universal:
                mean = rows.mean()
                if mean < best_loss[0] and not bool(frozen.all()):
                    best_loss[:] = mean.detach()
                    best_delta = full.detach().clone()
                if cfg.early_stop and bool(match.all()) and not bool(frozen.all()):
                    best_loss[:] = mean.detach()
                    best_delta = full.detach().clone()
                    success[:] = True
                    success_step = [step] * b
            else:
                better = (rows < best_loss) & ~frozen
                best_loss = torch.where(better, rows.detach(), best_loss)
                best_delta = torch.where(better.view(b, 1, 1), full.detach(), best_delta)
                newly = match & ~frozen
                if cfg.early_stop and bool(newly.any()):
                    best_loss = torch.where(newly, rows.detach(), best_loss)
                    best_delta = torch.where(newly.view(b, 1, 1), full.detach(), best_delta)
                    for i in torch.nonzero(newly).flatten().tolist():
                        success_step[i] = step
                    success |= newly
        if step == cfg.steps or (cfg.early_stop and bool(success.all())):
            break
        if stop_check is not None and stop_check(step, best_delta):
            break
        active = ~success if cfg.early_stop else torch.ones_like(success)
        loss = rows[active].sum() if not cfg.universal else rows.mean()
        (grad,) = torch.autograd.grad(loss, delta)
        bwd += int(active.sum()) if not cfg.universal else b
        steps_done += 1
        with torch.no_grad():
            if opt is None:
                delta -= cfg.step_size * grad.sign()
            else:
                delta.grad = grad
                opt.step()
                opt.zero_grad(set_to_none=True)
            delta.copy_(project(delta, radius, cfg.norm))
    if not cfg.early_stop:  # success of the returned δ = match at its best-loss evaluation
        with torch.no_grad():
            out = model(
                inputs_embeds=base + best_delta.to(base.dtype),
                attention_mask=attention_mask.to(dev),
                position_ids=pos_ids,
                logits_to_keep=keep,
                use_cache=False,
            )
            fwd += b
            success = ((out.logits.argmax(-1) == tgt) | ~tmask).all(-1)
    return DeltaResult(
        delta=best_delta,
        best_loss=best_loss.detach(),
        history=history,
        success=success.detach(),
        steps=steps_done,
        forward_passes=fwd,
        backward_passes=bwd,
        success_step=success_step,
    )


def _perturb_positions(seg: PromptSegments, mode: str, skip_ids: set[int]) -> list[int]:
    """Positions (within the row's prompt) the attack perturbs."""
    if mode == "suffix":
        s, e = seg.slot_range
        return list(range(s, e))
    return [i for i, t in enumerate(seg.prompt_ids) if not (i == 0 and t in skip_ids)]


def run_embedding_attack(
    model: Any,
    tokenizer: Any,
    segments: PromptSegments | Sequence[PromptSegments],
    config: EmbeddingAttackConfig | None = None,
    *,
    on_step: OnStep | None = None,
    stop_check: Callable[[int, list[torch.Tensor]], bool] | None = None,
) -> list[LLMAttackResult]:
    """Attack one or several behaviours in one padded batch; one result per behaviour.

    Each result's ``adv_embeds`` [1, T_prompt, d] are the perturbed prompt embeddings (the target is
    not part of them); generate the completion from them with ``common.greedy_generate``.
    ``stop_check(step, adv_embeds_per_behaviour)`` is called after each step; True stops the attack.
    ``on_step(StepInfo(step, loss, embeds))`` is called live at every evaluation (step 0 = the clean prompt,
    then after each update, the last included; ``len(loss_history)`` calls in all) with the mean loss over the
    batch's rows (in universal mode: the shared objective) and the evaluated input embeddings [B, L, d] (the
    left-padded batch, target included: the current iterate, not the best δ).
    """
    cfg = config or EmbeddingAttackConfig()
    segs = list(segments) if isinstance(segments, (list, tuple)) else [segments]
    require(len(segs) >= 1, "the embedding attack needs at least one behaviour")
    for s in segs:
        require(len(s.target) > 0, "a behaviour has an empty target; give every behaviour a target string")
        if cfg.mode == "suffix":
            require(
                len(s.slot) > 0,
                f"the initial suffix {cfg.init_str!r} tokenises to zero tokens; pass a non-empty init string",
            )
    if cfg.universal:
        require(len({len(s.slot) for s in segs}) == 1, "a universal suffix needs the same slot length everywhere")
    dev = model_device(model)
    weight = embedding_matrix(model)
    pad = pad_id_of(tokenizer)
    ids, mask = left_pad([s.input_ids for s in segs], pad, dev)
    b, length = ids.shape
    labels = torch.full((b, length), IGNORE_INDEX, dtype=torch.long, device=dev)
    pmask = torch.zeros((b, length), dtype=torch.bool, device=dev)
    skip = {v for v in (getattr(tokenizer, "bos_token_id", None),) if isinstance(v, int)}
    slot_pos = []
    for i, s in enumerate(segs):
        off = length - len(s.input_ids)
        ts, te = s.target_range
        labels[i, off + ts : off + te] = torch.as_tensor(s.target, device=dev)
        pos = [off + p for p in _perturb_positions(s, cfg.mode, skip)]
        pmask[i, pos] = True
        ss, se = s.slot_range
        slot_pos.append(list(range(off + ss, off + se)))
    with torch.no_grad():
        embeds = weight[ids].detach()

    def prompt_embeds(delta: torch.Tensor) -> list[torch.Tensor]:
        out = []
        for i, s in enumerate(segs):
            off = length - len(s.input_ids)
            n_prompt = len(s.prompt_ids)
            out.append((embeds[i, off : off + n_prompt] + delta[i, off : off + n_prompt].to(embeds.dtype))[None])
        return out

    check = None if stop_check is None else (lambda step, delta: stop_check(step, prompt_embeds(delta)))
    res = embedding_attack_delta(
        model,
        embeds,
        mask,
        pmask,
        labels,
        cfg,
        slot_positions=torch.as_tensor(slot_pos, device=dev) if cfg.universal else None,
        stop_check=check,
        on_eval=None if on_step is None else (
            lambda step, rows, current: on_step(StepInfo(step, float(sum(rows) / len(rows)), current))
        ),
    )
    advs = prompt_embeds(res.delta)
    out = []
    for i, s in enumerate(segs):
        off = length - len(s.input_ids)
        n_prompt = len(s.prompt_ids)
        adv = advs[i]
        dnorm = res.delta[i, off : off + n_prompt].norm(dim=-1)
        out.append(
            LLMAttackResult(
                method="embedding",
                best_loss=float(res.best_loss[i]),
                loss_history=[h[i] for h in res.history],
                adv_string=None,
                adv_prompt_ids=list(s.prompt_ids),
                adv_embeds=adv.detach(),
                budget=AttackBudget(
                    steps=res.steps,
                    forward_passes=res.forward_passes if cfg.universal else res.forward_passes // b,
                    backward_passes=(
                        res.backward_passes
                        if cfg.universal
                        else res.steps
                        if res.success_step[i] is None
                        else res.success_step[i]
                    ),
                ),
                early_stopped=bool(res.success[i]),
                extra={
                    "success_step": res.success_step[i],
                    "radius": ball_radius(model, cfg.eps, cfg.norm),
                    "max_delta_norm": float(dnorm.max()) if dnorm.numel() else 0.0,
                    "batch_forward_passes": res.forward_passes,
                    "batch_backward_passes": res.backward_passes,
                },
            )
        )
    return out


def embedding_attack(
    model: Any,
    tokenizer: Any,
    prompts: Sequence[AttackPrompt],
    config: EmbeddingAttackConfig,
    *,
    on_step: OnStep | None = None,
    helpers: AttackHelpers | None = None,  # noqa: ARG001 - the protocol's; the embedding attack needs none
) -> LLMAttackResult:
    """The embedding attack in the attack protocol, on one prompt: the slot holds ``init_str`` (suffix
    mode) or the whole request is perturbed (instruction mode); ``adv_embeds`` are the perturbed prompt."""
    require(len(prompts) == 1, "the embedding attack of the protocol takes one prompt per call")
    (prompt,) = prompts
    if config.mode == "suffix":
        segs = prompt.segments(config.init_str)
    else:
        segs = prompt.segments("", slot="request")
    return run_embedding_attack(model, tokenizer, segs, config, on_step=on_step)[0]
