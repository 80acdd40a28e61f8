"""Which examples each optimiser step trains on, per process and micro-batch.

Step s draws its global batch from ``random.Random(f"{seed}:{s}")`` alone (no running RNG), so a resumed
run draws exactly what an uninterrupted one would. Process r of w takes every w-th example from r, and
splits its share round-robin into ``grad_accum`` micro-batches. Both counts must divide the per-step sizes,
so every process and micro-batch gets the same number of examples of each kind (then the data-parallel
mean equals the one-process mean).
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from itertools import accumulate

from advlab.errors import require
from advlab.training.llm.methods import MicroBatch


def _draw(rng: random.Random, n_total: int, k: int) -> list[int]:
    if k == 0 or n_total == 0:
        return []
    out: list[int] = []
    while len(out) < k:
        out += rng.sample(range(n_total), min(n_total, k - len(out)))
    return out


def check_sizes(adv_per_step: int, util_per_step: int, world: int, grad_accum: int, retain_per_step: int = 0) -> None:
    parts = world * grad_accum
    require(adv_per_step >= 0 and util_per_step >= 0, "--adv-per-step and --utility-per-step must be 0 or more")
    require(adv_per_step + util_per_step > 0, "a step needs examples: pass --adv-per-step or --utility-per-step > 0")
    for name, k in (("--adv-per-step", adv_per_step), ("--utility-per-step", util_per_step),
                    ("--retain-per-step", retain_per_step)):
        require(k % parts == 0, f"{name} {k}: must be a multiple of processes × --grad-accum = {parts}")


def cumulative_weights(weights: Sequence[float]) -> list[float] | None:
    """Cumulative sampling weights for :func:`step_batches`, or None when they are all equal (uniform)."""
    return None if len(set(weights)) <= 1 else list(accumulate(weights))


def step_batches(step: int, seed: int, n_adv: int, n_util: int, adv_per_step: int, util_per_step: int,
                 rank: int = 0, world: int = 1, grad_accum: int = 1, n_retain: int = 0,
                 retain_per_step: int = 0, util_cum_weights: Sequence[float] | None = None) -> list[MicroBatch]:
    """This process's micro-batches for optimiser step ``step``. Retain examples are adversarial examples
    with indices ``n_adv .. n_adv + n_retain - 1``, drawn ``retain_per_step`` at a time. Utility pairs are
    drawn without replacement, or with replacement by ``util_cum_weights`` (:func:`cumulative_weights`)."""
    rng = random.Random(f"{seed}:{step}")
    adv = _draw(rng, n_adv, adv_per_step)
    ret = [n_adv + i for i in _draw(random.Random(f"{seed}:{step}:retain"), n_retain, retain_per_step)]
    adv = (adv[rank::world] + ret[rank::world])
    if util_cum_weights is not None and util_per_step and n_util:
        util = rng.choices(range(n_util), cum_weights=util_cum_weights, k=util_per_step)[rank::world]
    else:
        util = _draw(rng, n_util, util_per_step)[rank::world]
    return [MicroBatch(adv[k::grad_accum], util[k::grad_accum]) for k in range(grad_accum)]
