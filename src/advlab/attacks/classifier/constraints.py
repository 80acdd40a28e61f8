"""Threat models as small hook objects: the L∞ and L2 balls around the clean input and the [0, 1] box.

Each ball offers the hooks the attack loop needs (in the spirit of secml-torch's constraint classes):

- ``random_start(x, gen)``: a random point of the ball around ``x`` (uniform in the ball);
- ``direction(grad)``: the steepest-ascent direction of unit norm (``sign(g)`` for L∞, ``g/‖g‖₂`` for L2);
- ``project(x_adv, x)``: the Euclidean projection of ``x_adv - x`` onto the ball;
- ``norms(delta)``: the per-sample norm of a perturbation.

:class:`Box` clips to the input domain. Clipping after projecting keeps the point feasible for both
norms, because clipping moves every coordinate towards ``x`` (which lies in the box).
"""

from __future__ import annotations

import torch

from advlab.errors import ConfigError

NORMS = ("linf", "l2")


def _flat(t: torch.Tensor) -> torch.Tensor:
    return t.reshape(t.shape[0], -1)


def _view(v: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """Reshape a per-sample vector [N] to broadcast against ``like`` [N, ...]."""
    return v.reshape(-1, *([1] * (like.dim() - 1)))


def _rand(
    shape: torch.Size, like: torch.Tensor, gen: torch.Generator | None, normal: bool = False
) -> torch.Tensor:
    """Random numbers drawn on the CPU (device-independent, seedable), moved to ``like``'s device."""
    fn = torch.randn if normal else torch.rand
    return fn(shape, generator=gen, dtype=torch.float32).to(device=like.device, dtype=like.dtype)


class LinfBall:
    """{δ : ‖δ‖∞ ≤ ε}."""

    norm = "linf"

    def __init__(self, eps: float) -> None:
        self.eps = float(eps)

    def random_start(self, x: torch.Tensor, gen: torch.Generator | None = None) -> torch.Tensor:
        return x + self.eps * (2 * _rand(x.shape, x, gen) - 1)

    def direction(self, grad: torch.Tensor) -> torch.Tensor:
        return grad.sign()

    def project(self, x_adv: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        return x + torch.clamp(x_adv - x, min=-self.eps, max=self.eps)

    def norms(self, delta: torch.Tensor) -> torch.Tensor:
        return _flat(delta).abs().amax(dim=1)


class L2Ball:
    """{δ : ‖δ‖₂ ≤ ε}."""

    norm = "l2"

    def __init__(self, eps: float) -> None:
        self.eps = float(eps)

    def random_start(self, x: torch.Tensor, gen: torch.Generator | None = None) -> torch.Tensor:
        """Uniform in the ball: a Gaussian direction and radius ε·u^(1/d)."""
        d = _flat(x).shape[1]
        g = _rand(x.shape, x, gen, normal=True)
        g = g / _view(_flat(g).norm(dim=1).clamp_min(1e-12), g)
        r = self.eps * _rand(torch.Size([x.shape[0]]), x, gen) ** (1.0 / d)
        return x + g * _view(r, g)

    def direction(self, grad: torch.Tensor) -> torch.Tensor:
        return grad / _view(_flat(grad).norm(dim=1) + 1e-12, grad)

    def project(self, x_adv: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        delta = x_adv - x
        n = _flat(delta).norm(dim=1)
        factor = torch.clamp(self.eps / (n + 1e-12), max=1.0)
        return x + delta * _view(factor, delta)

    def norms(self, delta: torch.Tensor) -> torch.Tensor:
        return _flat(delta).norm(dim=1)


class Box:
    """The input domain [lo, hi] (``[0, 1]`` for images)."""

    def __init__(self, lo: float = 0.0, hi: float = 1.0) -> None:
        self.lo, self.hi = float(lo), float(hi)

    def clip(self, x: torch.Tensor) -> torch.Tensor:
        return torch.clamp(x, self.lo, self.hi)


def make_ball(norm: str, eps: float) -> LinfBall | L2Ball:
    """The ball of radius ``eps`` for ``norm`` in ``linf`` / ``l2`` (``inf``/``Linf``/``L2`` accepted)."""
    key = canonical_norm(norm)
    return LinfBall(eps) if key == "linf" else L2Ball(eps)


def canonical_norm(norm: str) -> str:
    key = str(norm).strip().lower().replace("∞", "inf")
    key = {"inf": "linf", "l_inf": "linf", "linfinity": "linf", "2": "l2", "l_2": "l2"}.get(key, key)
    if key not in NORMS:
        raise ConfigError(f"unknown norm {norm!r}; use linf or l2")
    return key


def perturbation_norms(x_adv: torch.Tensor, x: torch.Tensor, norm: str) -> torch.Tensor:
    """Per-sample ‖x_adv − x‖ in ``norm``."""
    return make_ball(norm, 0.0).norms(x_adv - x)
