r"""Hessian trace (Hutchinson) and top eigenvalues (power iteration with deflation) of the mean loss.

For a parameter group :math:`\theta` (one layer, several layers, or the whole model) and the mean
cross-entropy :math:`L(\theta)` over a batch, Hessian-vector products :math:`Hv = \nabla_\theta\langle
\nabla_\theta L, v\rangle` are computed by double back-propagation.

- Trace (Hutchinson 1989): :math:`\mathrm{Tr}H = \mathbb{E}_v[v^\top H v]` with Rademacher :math:`v`;
  we return the mean, its standard error and the samples.
- Top-k eigenvalues (dominant, i.e. largest in magnitude, as PyHessian): power iteration on :math:`H`,
  each new vector orthogonalised against the ones already found (deflation), stopped when the relative
  change of the Rayleigh quotient is below ``tol``. Near a minimum the dominant ones are the largest.

Unlike PyHessian, the parameter group is explicit and each module's train/eval mode is restored.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from advlab.analysis._common import get_layer
from advlab.errors import ConfigError
from advlab.torchutil import eval_mode, model_device


def param_group(model: nn.Module, layers: str | Sequence[str] | None = None) -> tuple[list[str], list[nn.Parameter]]:
    """Parameters of the named layers (``None`` or ``"all"``: every parameter of the model)."""
    if layers is None or layers == "all":
        named = list(model.named_parameters())
    else:
        names = [layers] if isinstance(layers, str) else list(layers)
        if not names:
            raise ConfigError("empty layer list; name at least one layer, or use 'all' for the whole model")
        named = []
        for name in names:
            mod = get_layer(model, name)
            own = [(f"{name}.{n}", p) for n, p in mod.named_parameters()]
            if not own:
                raise ConfigError(f"layer {name!r} has no parameters; choose a layer with weights")
            named += own
    seen: set[int] = set()
    uniq = [(n, p) for n, p in named if not (id(p) in seen or seen.add(id(p)))]
    return [n for n, _ in uniq], [p for _, p in uniq]


@dataclass
class HessianResult:
    """Trace estimate (mean, standard error, samples) and top eigenvalues of one parameter group."""

    params: list[str]
    num_params: int
    trace: float | None = None
    trace_se: float | None = None
    trace_samples: list[float] = field(default_factory=list)
    eigenvalues: list[float] = field(default_factory=list)
    eigen_iterations: list[int] = field(default_factory=list)


class HVP:
    """Hessian-vector products of the mean cross-entropy over ``(x, y)`` for ``params``.

    ``loss_fn(model, x, y)`` may replace the default mean cross-entropy. ``batch_size`` splits the data
    and averages the products weighted by batch size (the Hessian of the mean loss over all of it).
    """

    def __init__(
        self,
        model: nn.Module,
        params: list[nn.Parameter],
        x: torch.Tensor,
        y: torch.Tensor,
        loss_fn: Callable[[nn.Module, torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
        batch_size: int = 512,
    ) -> None:
        self.model, self.params = model, params
        dev = model_device(model)
        self.x, self.y = x.to(dev), y.to(dev).long()
        self.loss_fn = loss_fn or (lambda m, xb, yb: F.cross_entropy(m(xb), yb))
        self.batch_size = batch_size
        self.calls = 0
        self._cached: tuple[torch.Tensor, ...] | None = None

    def _grads(self, xb: torch.Tensor, yb: torch.Tensor, cache: bool):
        if cache and self._cached is not None:
            return self._cached
        with torch.enable_grad():
            loss = self.loss_fn(self.model, xb, yb)
            grads = torch.autograd.grad(loss, self.params, create_graph=True)
        if cache:
            self._cached = grads
        return grads

    def __call__(self, vs: list[torch.Tensor]) -> list[torch.Tensor]:
        n = self.x.shape[0]
        single = n <= self.batch_size  # one batch: keep its gradient graph and reuse it for every product
        out = [torch.zeros_like(p) for p in self.params]
        for i in range(0, n, self.batch_size):
            xb, yb = self.x[i : i + self.batch_size], self.y[i : i + self.batch_size]
            grads = self._grads(xb, yb, single)
            with torch.enable_grad():
                dot = sum((g * v).sum() for g, v in zip(grads, vs))
                hv = torch.autograd.grad(dot, self.params, retain_graph=single)
            w = xb.shape[0] / n
            for o, h in zip(out, hv):
                o.add_(h.detach(), alpha=w)
        self.calls += 1
        return out


def _dot(a: list[torch.Tensor], b: list[torch.Tensor]) -> torch.Tensor:
    return sum((u * v).sum() for u, v in zip(a, b))


def _normalize(v: list[torch.Tensor]) -> list[torch.Tensor]:
    n = torch.sqrt(_dot(v, v)) + 1e-12
    return [t / n for t in v]


def _orthogonalize(v: list[torch.Tensor], basis: list[list[torch.Tensor]]) -> list[torch.Tensor]:
    for b in basis:
        c = _dot(v, b)
        v = [t - c * u for t, u in zip(v, b)]
    return v


class _GradMode:
    """Make the group's parameters require grad for the duration (restoring their flags)."""

    def __init__(self, params: list[nn.Parameter]):
        self.params, self.flags = params, [p.requires_grad for p in params]

    def __enter__(self):
        for p in self.params:
            p.requires_grad_(True)

    def __exit__(self, *exc):
        for p, f in zip(self.params, self.flags):
            p.requires_grad_(f)


def hessian_trace(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    layers: str | Sequence[str] | None = None,
    samples: int = 100,
    seed: int = 0,
    batch_size: int = 512,
    loss_fn: Callable | None = None,
) -> HessianResult:
    """Hutchinson estimate of Tr H of the mean loss w.r.t. a parameter group (``samples`` Rademacher probes)."""
    if not isinstance(samples, int) or samples < 1:
        raise ConfigError(f"samples={samples}: the Hutchinson estimator needs at least 1 sample; pass samples ≥ 1")
    names, params = param_group(model, layers)
    gen = torch.Generator(device="cpu").manual_seed(seed)
    zs: list[float] = []
    with eval_mode(model), _GradMode(params):
        hvp = HVP(model, params, x, y, loss_fn, batch_size)
        for _ in range(samples):
            v = [(torch.randint(0, 2, p.shape, generator=gen) * 2 - 1).to(p) for p in params]
            zs.append(float(_dot(v, hvp(v))))
    t = torch.tensor(zs, dtype=torch.float64)
    se = float(t.std() / len(zs) ** 0.5) if len(zs) > 1 else float("nan")
    return HessianResult(names, sum(p.numel() for p in params), float(t.mean()), se, zs)


def hessian_top_eigenvalues(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    layers: str | Sequence[str] | None = None,
    top_k: int = 1,
    max_iter: int = 100,
    tol: float = 1e-4,
    seed: int = 0,
    batch_size: int = 512,
    loss_fn: Callable | None = None,
) -> HessianResult:
    """Top-``top_k`` dominant eigenvalues of H (largest magnitude first): power iteration with deflation."""
    if not isinstance(top_k, int) or top_k < 1:
        raise ConfigError(f"top_k={top_k}: ask for at least one eigenvalue")
    if max_iter < 1:
        raise ConfigError(f"max_iter={max_iter}: power iteration needs at least one iteration")
    names, params = param_group(model, layers)
    n_params = sum(p.numel() for p in params)
    if top_k > n_params:
        raise ConfigError(f"top_k={top_k} exceeds the {n_params} parameters of the group; ask for fewer")
    gen = torch.Generator(device="cpu").manual_seed(seed)
    eigvals: list[float] = []
    iters: list[int] = []
    basis: list[list[torch.Tensor]] = []
    with eval_mode(model), _GradMode(params):
        hvp = HVP(model, params, x, y, loss_fn, batch_size)
        for _ in range(top_k):
            v = _normalize(_orthogonalize([torch.randn(p.shape, generator=gen).to(p) for p in params], basis))
            lam: float | None = None
            it = 0
            for it in range(1, max_iter + 1):  # noqa: B007 - the count is reported
                hv = hvp(v)
                new = float(_dot(hv, v))
                v = _normalize(_orthogonalize(hv, basis))
                if lam is not None and abs(new - lam) / (abs(lam) + 1e-6) < tol:
                    lam = new
                    break
                lam = new
            eigvals.append(float(lam))
            iters.append(it)
            basis.append(v)
    return HessianResult(names, n_params, eigenvalues=eigvals, eigen_iterations=iters)


def hessian_summary(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    layers: str | Sequence[str] | None = None,
    samples: int = 100,
    top_k: int = 1,
    max_iter: int = 100,
    tol: float = 1e-4,
    seed: int = 0,
) -> HessianResult:
    """Trace and top eigenvalues of one group in one result."""
    tr = hessian_trace(model, x, y, layers, samples=samples, seed=seed)
    ev = hessian_top_eigenvalues(model, x, y, layers, top_k=top_k, max_iter=max_iter, tol=tol, seed=seed)
    tr.eigenvalues, tr.eigen_iterations = ev.eigenvalues, ev.eigen_iterations
    return tr


def explicit_hessian(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, layers: str | Sequence[str] | None = None
) -> torch.Tensor:
    """The full Hessian matrix of the mean loss for a small parameter group (tests and checks only)."""
    names, params = param_group(model, layers)
    n = sum(p.numel() for p in params)
    if n > 5000:
        raise ConfigError(f"the group has {n} parameters; the explicit Hessian is limited to 5000")
    rows = []
    with eval_mode(model), _GradMode(params):
        hvp = HVP(model, params, x, y)
        for i in range(n):
            e = torch.zeros(n, dtype=params[0].dtype, device=params[0].device)
            e[i] = 1
            parts, off = [], 0
            for p in params:
                parts.append(e[off : off + p.numel()].view_as(p))
                off += p.numel()
            rows.append(torch.cat([h.flatten() for h in hvp(parts)]))
    return torch.stack(rows)
