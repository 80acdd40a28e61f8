r"""Relative flatness of a linear layer, per example (Petzka et al. 2021; Walter et al. 2024).

For a linear layer with weight :math:`W\in\mathbb{R}^{K\times m}` (rows :math:`w_s`, bias excluded)
and the Hessian :math:`H` of the per-example loss with respect to :math:`W`, split into
:math:`m\times m` blocks :math:`H_{s,s'}`, the relative flatness is

.. math:: \kappa = \sum_{s,s'} \langle w_s, w_{s'}\rangle\, \mathrm{Tr}(H_{s,s'}) = \mathrm{Tr}(H\,(G\otimes I_m)),
          \qquad G = W W^\top .

Alongside :math:`\kappa` we report the trace variant :math:`\|W\|_F^2\,\mathrm{Tr}H` (an upper bound on
:math:`\kappa`, "relative sharpness"), :math:`\mathrm{Tr}H` itself and :math:`\|\phi\|^2`, the squared norm
of the layer's input (it drifts along an attack, so it is logged on its own).

**Closed form for the softmax cross-entropy logits layer.** With logits :math:`z = W\phi + b`,
:math:`p = \mathrm{softmax}(z)` and :math:`\ell = -\log p_y`, the gradient is
:math:`\partial\ell/\partial w_s = (p_s - [s=y])\,\phi`, and differentiating again
(:math:`\partial p_s/\partial z_{s'} = p_s([s=s'] - p_{s'})`) gives

.. math:: H_{s,s'} = (p_s[s=s'] - p_s p_{s'})\,\phi\phi^\top,
          \qquad H = (\mathrm{diag}\,p - pp^\top)\otimes\phi\phi^\top .

Hence :math:`\mathrm{Tr}H_{s,s'} = (p_s[s=s'] - p_sp_{s'})\|\phi\|^2`, so
:math:`\mathrm{Tr}H = \|\phi\|^2\sum_s p_s(1-p_s)` (independent of the label) and

.. math:: \kappa = \|\phi\|^2\Big(\sum_s p_s\|w_s\|^2 - \big\|\sum_s p_s w_s\big\|^2\Big),

i.e. :math:`\|\phi\|^2` times the variance of the rows under :math:`p`. Cost :math:`O(Km)` per example.

**Hutchinson.** For any linear layer, :math:`\kappa = \mathrm{Tr}(HM)` with :math:`M = G\otimes I_m`;
with Rademacher :math:`V\in\{\pm1\}^{K\times m}`, :math:`\mathbb{E}[\langle V, H(GV)\rangle] = \kappa`;
we use the symmetric form :math:`\mathbb{E}[\langle U, HU\rangle]` with :math:`U = G^{1/2}V` (the same mean,
since :math:`\mathrm{Tr}(M^{1/2}HM^{1/2}) = \mathrm{Tr}(HM)`, and in our checks a somewhat lower variance),
and :math:`\mathbb{E}[\langle V, HV\rangle] = \mathrm{Tr}H`. Hessian-vector products are
computed per example with ``torch.func`` (forward-over-reverse); the standard error is ``std / sqrt(samples)``.

**Brute force.** The full Hessian :math:`(Km)^2` per example, for tiny layers (used to check the others).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call, grad, hessian, jvp, vmap

from advlab.analysis._common import capture_io, get_linear
from advlab.errors import ConfigError
from advlab.torchutil import eval_mode, model_device

METHODS = ("exact", "hutchinson", "brute")
BRUTE_MAX_PARAMS = 4096


@dataclass
class FlatnessResult:
    """Per-example measures (each a float tensor of shape [batch], on CPU).

    ``kappa``: relative flatness κ; ``trace_variant``: ‖W‖_F²·Tr H; ``trace``: Tr H; ``phi_sq``: ‖φ‖²;
    ``kappa_se``/``trace_se``: standard errors (zeros for the exact and brute methods).
    """

    kappa: torch.Tensor
    trace_variant: torch.Tensor
    trace: torch.Tensor
    phi_sq: torch.Tensor
    kappa_se: torch.Tensor
    trace_se: torch.Tensor
    method: str
    layer: str

    def as_dict(self) -> dict[str, torch.Tensor]:
        return {
            "kappa": self.kappa,
            "trace_variant": self.trace_variant,
            "trace": self.trace,
            "phi_sq": self.phi_sq,
            "kappa_se": self.kappa_se,
            "trace_se": self.trace_se,
        }


def relative_flatness(
    model: nn.Module,
    layer: str,
    x: torch.Tensor,
    y: torch.Tensor,
    method: str = "exact",
    samples: int = 64,
    seed: int = 0,
) -> torch.Tensor:
    """Relative flatness κ of ``layer`` at each example, a tensor of shape [batch] (see module docstring)."""
    return flatness_measures(model, layer, x, y, method=method, samples=samples, seed=seed).kappa


def flatness_measures(
    model: nn.Module,
    layer: str,
    x: torch.Tensor,
    y: torch.Tensor,
    method: str = "exact",
    samples: int = 64,
    seed: int = 0,
    chunk: int = 256,
) -> FlatnessResult:
    """κ, ‖W‖²·Tr H, Tr H and ‖φ‖² of a linear layer per example, by ``method`` (exact/hutchinson/brute).

    The model is evaluated in eval mode and each module's mode is restored afterwards. ``samples`` is the
    number of Rademacher probes (Hutchinson only; must be ≥ 1); ``seed`` makes the probes repeatable.
    """
    if method not in METHODS:
        raise ConfigError(f"unknown flatness method {method!r}; use one of {', '.join(METHODS)}")
    if method == "hutchinson" and (not isinstance(samples, int) or samples < 1):
        raise ConfigError(f"samples={samples}: the Hutchinson estimator needs at least 1 sample; pass samples ≥ 1")
    mod = get_linear(model, layer)
    if x.shape[0] != y.shape[0]:
        raise ConfigError(f"x has {x.shape[0]} examples but y has {y.shape[0]}; pass one label per example")
    if x.shape[0] == 0:
        raise ConfigError("no examples given; pass at least one (x, y) pair")
    dev = model_device(model)
    x, y = x.to(dev), y.to(dev).long()
    with eval_mode(model):
        if method == "exact":
            res = _exact(model, mod, layer, x, y, chunk)
        elif method == "hutchinson":
            res = _hutchinson(model, mod, layer, x, y, samples, seed, chunk)
        else:
            res = _brute(model, mod, layer, x, y)
    for name, value in res.as_dict().items():
        setattr(res, name, value.detach())
    return res


def _features(model: nn.Module, mod: nn.Linear, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    with capture_io(mod) as io, torch.no_grad():
        logits = model(x)
    phi, out = io["input"], io["output"]
    if phi.dim() != 2:
        raise ConfigError(
            f"the layer's input has shape {tuple(phi.shape)}; per-example flatness needs one feature vector per "
            "example ([batch, features]); for token sequences use advlab.analysis.llm_flatness"
        )
    return phi, out, logits


def closed_form(weight: torch.Tensor, phi: torch.Tensor, logits: torch.Tensor) -> dict[str, torch.Tensor]:
    """The softmax-CE closed form: κ, ‖W‖²·Tr H, Tr H, ‖φ‖² for features ``phi`` [..., m] (at least float32).

    ``weight`` is [K, m] and ``logits`` [..., K]. To stay accurate for confident predictions (p_c → 1)
    the variance of the rows is taken around the top row c, Var = Σ_s q_s‖w_s − w_c‖² − ‖Σ_s q_s(w_s − w_c)‖²
    with q = p except q_c = 0, and 1 − p_c is computed as Σ_{s≠c} p_s; no term cancels catastrophically.
    """
    dt = torch.promote_types(weight.dtype, torch.float32)
    w, phi, z = weight.detach().to(dt), phi.detach().to(dt), logits.detach().to(dt)
    p = torch.softmax(z, dim=-1)
    c = p.argmax(-1, keepdim=True)  # [..., 1]
    q = p.scatter(-1, c, 0.0)
    rest = q.sum(-1)  # 1 - p_c, without cancellation
    phi_sq = (phi * phi).sum(-1)
    row_sq = (w * w).sum(-1)  # [K]
    wc = w[c.squeeze(-1)]  # [..., m]
    dist = (row_sq - 2 * (wc @ w.T) + row_sq[c]).clamp_min(0)  # ‖w_s - w_c‖², [..., K]
    u = q @ w - rest.unsqueeze(-1) * wc  # Σ_s q_s (w_s - w_c)
    var = ((q * dist).sum(-1) - (u * u).sum(-1)).clamp_min(0)
    one_minus_p = (1 - p).scatter(-1, c, rest.unsqueeze(-1))
    trace = phi_sq * (p * one_minus_p).sum(-1)
    return {
        "kappa": phi_sq * var,
        "trace": trace,
        "trace_variant": row_sq.sum() * trace,
        "phi_sq": phi_sq,
    }


def _exact(model, mod, layer, x, y, chunk) -> FlatnessResult:
    parts = []
    for i in range(0, x.shape[0], chunk):
        phi, out, logits = _features(model, mod, x[i : i + chunk])
        if not (out is logits or (out.shape == logits.shape and torch.equal(out, logits))):
            raise ConfigError(
                f"layer {layer!r} does not produce the model's logits, so the exact closed form does not apply; "
                "use method='hutchinson' or 'brute' for inner layers"
            )
        parts.append(closed_form(mod.weight, phi, logits))
    cat = {k: torch.cat([p[k] for p in parts]).cpu() for k in parts[0]}
    zeros = torch.zeros_like(cat["kappa"])
    return FlatnessResult(cat["kappa"], cat["trace_variant"], cat["trace"], cat["phi_sq"], zeros, zeros.clone(),
                          "exact", layer)


def _loss_fn(model: nn.Module, key: str):

    def loss(w: torch.Tensor, xi: torch.Tensor, yi: torch.Tensor) -> torch.Tensor:
        out = functional_call(model, {key: w}, (xi.unsqueeze(0),))
        return F.cross_entropy(out.to(torch.promote_types(out.dtype, torch.float32)), yi.unsqueeze(0))

    return loss


def _hutchinson(model, mod, layer, x, y, samples, seed, chunk, probe_batch: int = 1024) -> FlatnessResult:

    w = mod.weight.detach()
    evals, evecs = torch.linalg.eigh((w @ w.T).double())
    root = ((evecs * evals.clamp_min(0).sqrt()) @ evecs.T).to(w.dtype)  # G^{1/2}
    loss = _loss_fn(model, f"{layer}.weight")

    def hvp(wt, xi, yi, v):
        return jvp(lambda ww: grad(loss)(ww, xi, yi), (wt,), (v,))[1]

    batched = vmap(hvp, in_dims=(None, 0, 0, 0))
    gen = torch.Generator(device="cpu").manual_seed(seed)
    zk, zt, phis = [], [], []
    for i in range(0, x.shape[0], chunk):
        xb, yb = x[i : i + chunk], y[i : i + chunk]
        phi, _, _ = _features(model, mod, xb)
        phis.append((phi.float() ** 2).sum(-1))
        ks, ts = [], []
        b = xb.shape[0]
        group = max(1, min(samples, probe_batch // b))  # probes evaluated together in one vmap
        done = 0
        while done < samples:
            g = min(group, samples - done)
            v = (torch.randint(0, 2, (g, b, *w.shape), generator=gen) * 2 - 1).to(w.dtype).to(w.device)
            u = torch.einsum("st,gbtm->gbsm", root, v)  # M^{1/2} v
            both = torch.cat([u, v]).flatten(0, 1)  # [2·g·b, K, m]
            xr = xb.repeat(2 * g, *([1] * (xb.dim() - 1)))
            yr = yb.repeat(2 * g)
            hu, hv = batched(w, xr, yr, both).view(2, g, b, *w.shape).unbind(0)
            ks.append((u * hu).sum((-2, -1)).float().T)  # [b, g]
            ts.append((v * hv).sum((-2, -1)).float().T)
            done += g
        zk.append(torch.cat(ks, 1))
        zt.append(torch.cat(ts, 1))
    zk_all, zt_all = torch.cat(zk).cpu(), torch.cat(zt).cpu()
    n = zk_all.shape[1]
    se = (lambda z: z.std(1) / n**0.5) if n > 1 else (lambda z: torch.full((z.shape[0],), float("nan")))
    trace = zt_all.mean(1)
    return FlatnessResult(
        kappa=zk_all.mean(1),
        trace_variant=float((w.float() ** 2).sum()) * trace,
        trace=trace,
        phi_sq=torch.cat(phis).cpu(),
        kappa_se=se(zk_all),
        trace_se=se(zt_all),
        method="hutchinson",
        layer=layer,
    )


def _brute(model, mod, layer, x, y) -> FlatnessResult:

    w = mod.weight.detach()
    k, m = w.shape
    if k * m > BRUTE_MAX_PARAMS:
        raise ConfigError(
            f"layer {layer!r} has {k * m} weights; the brute-force Hessian is limited to {BRUTE_MAX_PARAMS} "
            "(use method='exact' or 'hutchinson')"
        )
    loss = _loss_fn(model, f"{layer}.weight")
    gram = (w @ w.T).double()
    phi, _, _ = _features(model, mod, x)
    kappas, traces = [], []
    for i in range(x.shape[0]):
        h = hessian(loss)(w, x[i], y[i]).double()  # [K, m, K, m]
        block_tr = torch.einsum("aibi->ab", h)  # Tr H_{s,s'}
        kappas.append((gram * block_tr).sum())
        traces.append(torch.einsum("aiai->", h))
    kappa, trace = torch.stack(kappas).cpu(), torch.stack(traces).cpu()
    zeros = torch.zeros_like(kappa)
    return FlatnessResult(kappa, float((w.double() ** 2).sum()) * trace, trace, (phi.double() ** 2).sum(-1).cpu(),
                          zeros, zeros.clone(), "brute", layer)
