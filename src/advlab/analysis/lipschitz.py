r"""Lipschitz estimates: local input-gradient norms and a global upper bound for feed-forward nets.

**Local.** Around each example: :math:`\|\nabla_x \ell(f(x), y)\|_q` (``kind="loss"``; ``q`` is the dual
norm of the threat model: 2 for L2, 1 for L∞) or the spectral norm :math:`\|J_f(x)\|_2` of the logits'
input Jacobian (``kind="logits"``), the local Lipschitz constant of the logit map in L2.

**Global upper bound (L2 → L2).** For a network that is a pure chain of layers
:math:`f = g_n \circ \dots \circ g_1`, :math:`\mathrm{Lip}(f) \le \prod_i \mathrm{Lip}(g_i)`. Covered layers:

- ``nn.Linear``: exact spectral norm (SVD) of the weight;
- ``nn.Conv2d``, ``nn.AvgPool2d``, ``nn.AdaptiveAvgPool2d``: spectral norm of the linear operator at the
  input shape seen in the forward pass: exact (SVD of the explicit matrix) when it has at most
  ``explicit_max`` entries, otherwise power iteration (then ``exact`` is False: an estimate, not a bound);
- ``nn.BatchNorm1d/2d`` in eval mode: :math:`\max_c |\gamma_c| / \sqrt{\sigma_c^2+\epsilon}`;
- ``nn.ReLU``, ``LeakyReLU`` (slope ≤ 1), ``Tanh``, ``Sigmoid`` (1/4), ``Flatten``, ``Identity``, ``Dropout``
  (eval): their Lipschitz constants; ``nn.MaxPool2d`` with stride ≥ kernel size (non-overlapping): 1.

A model whose forward pass is not such a chain (residual connections, functional ops between modules)
or that uses another layer type is refused with a ConfigError naming the problem.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import jacrev, vmap

from advlab.errors import ConfigError
from advlab.torchutil import eval_mode, model_device


def local_gradient_norm(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, kind: str = "loss", q: float = 2.0
) -> torch.Tensor:
    """Per-example local Lipschitz estimate around ``x`` (see module docstring), a tensor [batch]."""
    if kind not in ("loss", "logits"):
        raise ConfigError(f"kind={kind!r}: use 'loss' (input-gradient norm) or 'logits' (Jacobian spectral norm)")
    dev = model_device(model)
    x, y = x.to(dev), y.to(dev).long()
    with eval_mode(model):
        if kind == "loss":
            xr = x.detach().clone().requires_grad_(True)
            with torch.enable_grad():
                loss = F.cross_entropy(model(xr), y, reduction="sum")
                (g,) = torch.autograd.grad(loss, xr)
            return g.flatten(1).norm(p=q, dim=1).detach().cpu()

        def f(xi: torch.Tensor) -> torch.Tensor:
            return model(xi.unsqueeze(0)).squeeze(0)

        with torch.no_grad():
            jac = vmap(jacrev(f))(x.detach())  # [B, K, *input]
        jac = jac.flatten(2)
        return torch.linalg.matrix_norm(jac.double(), ord=2).float().cpu()


@dataclass
class LipschitzBound:
    """Global L2 Lipschitz upper bound and the per-layer factors it multiplies."""

    bound: float
    layers: list[dict] = field(default_factory=list)
    exact: bool = True  # False when a factor came from power iteration (an estimate)

    def covered(self) -> list[str]:
        return [f"{d['name']} ({d['type']})" for d in self.layers]


_ONE = (nn.ReLU, nn.Flatten, nn.Identity, nn.Dropout, nn.Tanh, nn.ReLU6)


def _operator_norm(fn, in_shape: tuple[int, ...], device, dtype, explicit_max: int, iters: int, seed: int):
    """Spectral norm of a linear map ``fn`` on inputs of ``in_shape`` (exact SVD or power iteration)."""
    n_in = 1
    for s in in_shape:
        n_in *= s
    with torch.no_grad():
        n_out = fn(torch.zeros(1, *in_shape, device=device, dtype=dtype)).numel()
        if n_in * n_out <= explicit_max:
            basis = torch.eye(n_in, device=device, dtype=dtype).view(n_in, *in_shape)
            cols = []
            for i in range(0, n_in, 256):
                cols.append(fn(basis[i : i + 256]).flatten(1))
            mat = torch.cat(cols).double()  # [n_in, n_out] = A^T
            gram = mat @ mat.T if mat.shape[0] <= mat.shape[1] else mat.T @ mat
            return float(torch.linalg.eigvalsh(gram)[-1].clamp_min(0)) ** 0.5, True
    gen = torch.Generator(device="cpu").manual_seed(seed)
    v = torch.randn(1, *in_shape, generator=gen).to(device=device, dtype=dtype)
    sigma = 0.0
    for _ in range(iters):
        v = (v / (v.norm() + 1e-12)).requires_grad_(True)
        with torch.enable_grad():
            out = fn(v)
            (g,) = torch.autograd.grad(0.5 * (out * out).sum(), v)  # A^T A v
        sigma = float(g.norm()) ** 0.5
        v = g.detach()
    return sigma, False


def global_lipschitz_bound(
    model: nn.Module,
    input_shape: tuple[int, ...],
    explicit_max: int = 20_000_000,
    power_iters: int = 100,
    seed: int = 0,
) -> LipschitzBound:
    """Upper bound on the L2 Lipschitz constant of the logit map of a feed-forward chain (module docstring)."""
    dev = model_device(model)
    dtype = next(model.parameters()).dtype
    leaves = [(n, m) for n, m in model.named_modules() if n and not list(m.children())]
    trace: list[tuple[str, nn.Module, torch.Tensor, torch.Tensor]] = []
    hooks = []
    for name, mod in leaves:
        def hook(m, inp, out, name=name):
            trace.append((name, m, inp[0], out))

        hooks.append(mod.register_forward_hook(hook))
    x0 = torch.rand(1, *input_shape, device=dev, dtype=dtype)
    try:
        with eval_mode(model), torch.no_grad():
            out = model(x0)
    finally:
        for h in hooks:
            h.remove()
    if not trace:
        raise ConfigError("the model has no layers to bound")
    prev = x0
    for name, _m, inp, _o in trace:
        if inp is not prev:
            raise ConfigError(
                f"the forward pass is not a pure chain of layers at {name!r} (a residual connection or a functional "
                "op between modules); the global bound covers feed-forward chains only"
            )
        prev = _o
    if trace[-1][3] is not out:
        raise ConfigError("the model's output is not the last layer's output; the global bound covers chains only")
    factors: list[dict] = []
    exact_all = True
    bound = 1.0
    with eval_mode(model):
        for name, m, inp, _o in trace:
            exact = True
            if isinstance(m, nn.Linear):
                lip = float(torch.linalg.matrix_norm(m.weight.detach().double(), ord=2))
            elif isinstance(m, (nn.Conv2d, nn.AvgPool2d, nn.AdaptiveAvgPool2d)):
                if isinstance(m, nn.Conv2d):
                    def fn(t, m=m):
                        return F.conv2d(t, m.weight, None, m.stride, m.padding, m.dilation, m.groups)
                else:
                    fn = m
                lip, exact = _operator_norm(fn, tuple(inp.shape[1:]), dev, dtype, explicit_max, power_iters, seed)
            elif isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
                if m.running_var is None:
                    raise ConfigError(f"layer {name!r}: BatchNorm without running statistics cannot be bounded")
                scale = (m.weight.detach() if m.weight is not None else 1.0) / torch.sqrt(m.running_var + m.eps)
                lip = float(torch.as_tensor(scale).abs().max())
            elif isinstance(m, _ONE):
                lip = 1.0
            elif isinstance(m, nn.LeakyReLU):
                lip = max(1.0, abs(m.negative_slope))
            elif isinstance(m, nn.Sigmoid):
                lip = 0.25
            elif isinstance(m, nn.MaxPool2d):
                k = m.kernel_size if isinstance(m.kernel_size, tuple) else (m.kernel_size,) * 2
                s = m.stride if isinstance(m.stride, tuple) else (m.stride,) * 2
                if any(si < ki for si, ki in zip(s, k)):
                    raise ConfigError(f"layer {name!r}: overlapping max pooling is not covered by the bound")
                lip = 1.0
            else:
                raise ConfigError(
                    f"layer {name!r} ({type(m).__name__}) is not covered by the global bound; covered: Linear, Conv2d, "
                    "AvgPool2d, AdaptiveAvgPool2d, BatchNorm, ReLU, LeakyReLU, Tanh, Sigmoid, Flatten, Dropout, "
                    "non-overlapping MaxPool2d"
                )
            exact_all &= exact
            bound *= lip
            factors.append({"name": name, "type": type(m).__name__, "lipschitz": lip, "exact": exact})
    return LipschitzBound(bound=bound, layers=factors, exact=exact_all)
