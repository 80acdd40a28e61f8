"""One training epoch and the evaluation after it, in one process or data-parallel over several.

Reusable pieces: :func:`iterate_batches` (shuffled mini-batches, seeded), :func:`train_epoch` (one epoch
of ``loss_fn(model, x, y) -> scalar`` with an optimizer) and :func:`evaluate_accuracy` (clean accuracy, or
robust accuracy under an attack).

Several processes (``torchrun`` / ``accelerate launch``, see :mod:`advlab.distributed`): every process
draws the same permutation and takes rows ``rank, rank + W, …`` of each global batch of ``batch_size``;
the loss's normalisers and then its gradients are summed over processes (see :func:`train_epoch_sharded`),
which gives the one-process gradient of the whole global batch, so with a deterministic loss the weights
match a one-process run up to float rounding. Evaluation batches are split between processes and the
correct counts summed.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator

import torch
from torch import nn

from advlab import distributed
from advlab.attacks.classifier.robust import robust_flags
from advlab.distributed import DistInfo
from advlab.training.classifier.objective import MAX_TERMS, loss_terms

LossFn = Callable[[nn.Module, torch.Tensor, torch.Tensor], torch.Tensor]


def iterate_batches(
    x: torch.Tensor,
    y: torch.Tensor,
    batch_size: int,
    shuffle: bool = True,
    generator: torch.Generator | None = None,
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Mini-batches of ``(x, y)`` (a random permutation when ``shuffle``; the last batch may be smaller)."""
    n = x.shape[0]
    order = torch.randperm(n, generator=generator) if shuffle else torch.arange(n)
    for i in range(0, n, batch_size):
        idx = order[i : i + batch_size]
        yield x[idx], y[idx]


def train_epoch(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    loss_fn: LossFn,
    optimizer: torch.optim.Optimizer,
    *,
    batch_size: int = 64,
    device: torch.device | str = "cpu",
    generator: torch.Generator | None = None,
    progress: Callable[[int], None] | None = None,
    shard: DistInfo | None = None,
) -> float:
    """One epoch: for each shuffled batch, ``loss_fn(model, xb, yb).backward()`` and an optimizer step.

    The model is in train mode for the loss (attacks inside ``loss_fn`` switch to eval mode and back).
    Returns the mean loss over samples. ``progress(n)`` is called with each batch size.
    With ``shard`` of world size > 1 (``torch.distributed`` initialised) see :func:`train_epoch_sharded`.
    """
    if shard is not None and shard.active:
        return train_epoch_sharded(
            model,
            x,
            y,
            loss_fn,
            optimizer,
            shard,
            batch_size=batch_size,
            device=device,
            generator=generator,
            progress=progress,
        )
    model.train()
    total, count = 0.0, 0
    for xb, yb in iterate_batches(x, y, batch_size, True, generator):
        xb, yb = xb.to(device), yb.to(device)
        optimizer.zero_grad(set_to_none=True)
        loss = loss_fn(model, xb, yb)
        if not torch.isfinite(loss):
            raise FloatingPointError("training loss is not finite; lower --lr")
        loss.backward()
        optimizer.step()
        total += float(loss.detach()) * xb.shape[0]
        count += xb.shape[0]
        if progress is not None:
            progress(xb.shape[0])
    return total / max(count, 1)


def train_epoch_sharded(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    loss_fn: LossFn,
    optimizer: torch.optim.Optimizer,
    shard: DistInfo,
    *,
    batch_size: int = 64,
    device: torch.device | str = "cpu",
    generator: torch.Generator | None = None,
    progress: Callable[[int], None] | None = None,
) -> float:
    """One epoch of data-parallel training over ``shard.world_size`` processes (torch.distributed initialised).

    Every process draws the same permutation (same seed) and splits each global batch B of ``batch_size``
    rows as B_r = B[r::W]. The loss is taken as normalised sums L = Σ_k w_k·S_k/N_k
    (:mod:`advlab.training.classifier.objective`): the normalisers N_k are summed over processes first,
    each process back-propagates Σ_k w_k·S_k(B_r)/N_k, and the gradients are summed, which is ∇L(B), the
    one-process gradient, for every loss (masked means such as RCAT's included) and any split of B.
    A parameter keeps ``grad=None`` only if it got no gradient on any process. Buffers (BatchNorm
    statistics) are copied from rank 0 after each step, as DDP does. After the permutation the global RNG
    is re-seeded per rank, so random starts inside ``loss_fn`` differ between processes. Returns the mean
    over batches of L(B), weighted by |B|.
    """
    n = x.shape[0]
    order = torch.randperm(n, generator=generator)
    torch.manual_seed((torch.initial_seed() * 1_000_003 + shard.rank + 1) % (2**63))
    params = [p for p in model.parameters() if p.requires_grad]
    has_buffers = any(True for _ in model.buffers())
    model.train()
    total, count = 0.0, 0
    for i in range(0, n, batch_size):
        idx = order[i : i + batch_size]
        mine = idx[shard.rank :: shard.world_size]
        big = int(idx.numel())
        optimizer.zero_grad(set_to_none=True)
        terms = None
        counts = torch.zeros(MAX_TERMS, dtype=torch.float64)
        if mine.numel() > 0:
            terms = loss_terms(loss_fn, model, x[mine].to(device), y[mine].to(device))
            counts[: len(terms.counts)] = torch.tensor(terms.counts, dtype=torch.float64)
        counts = distributed.all_reduce_sum(counts.to(device)).cpu()
        loss_part = 0.0
        if terms is not None:
            local = terms.total(counts[: len(terms.counts)].tolist())
            local.backward()
            loss_part = float(local.detach())
        # one float64 vector: [this process's share of L(B), has-grad flags]; one vector of the gradients
        side = torch.tensor([loss_part] + [float(p.grad is not None) for p in params], dtype=torch.float64)
        flat = torch.cat([(p.grad if p.grad is not None else torch.zeros_like(p)).reshape(-1) for p in params])
        side = distributed.all_reduce_sum(side.to(flat.device)).cpu()
        distributed.all_reduce_sum(flat)
        if not math.isfinite(float(side[0])):
            raise FloatingPointError("training loss is not finite; lower --lr")
        offset = 0
        for p, flag in zip(params, side[1:].tolist()):
            k = p.numel()
            p.grad = flat[offset : offset + k].view_as(p).clone() if flag > 0 else None
            offset += k
        optimizer.step()
        if has_buffers:
            distributed.broadcast_module(model, buffers_only=True)
        total += float(side[0]) * big
        count += big
        if progress is not None:
            progress(big)
    return total / max(count, 1)


def evaluate_accuracy(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    attack: Callable | None = None,
    *,
    batch_size: int = 256,
    device: torch.device | str = "cpu",
    shard: DistInfo | None = None,
) -> float:
    """Clean accuracy of ``model`` on ``(x, y)``, or with an attack its robust accuracy: the fraction
    classified correctly both clean and at ``attack(model, x, y)`` (:func:`robust_flags`).

    With ``shard`` of world size W > 1, process r evaluates batches r, r + W, … and the counts are summed
    over processes: the same batches as one process, so a seeded attack gives the same number.
    """
    active = shard is not None and shard.active
    hits = 0
    for b, (xb, yb) in enumerate(iterate_batches(x, y, batch_size, shuffle=False)):
        if active and b % shard.world_size != shard.rank:
            continue
        f = robust_flags(model, xb, yb, attack, batch_size=batch_size, device=device)
        hits += int(f.robust.sum())
    if active:
        hits = int(distributed.all_reduce_sum(torch.tensor([hits], dtype=torch.int64, device=device))[0])
    return hits / max(x.shape[0], 1)
