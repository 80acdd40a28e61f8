"""Losses as normalised sums (``advlab.training.classifier.objective``) against direct computations."""

from __future__ import annotations

import pytest
import torch

from advlab.training.classifier.objective import LossTerms, TermLoss, loss_terms


def test_total_is_the_weighted_sum_of_means_and_an_empty_selection_adds_zero():
    a = torch.tensor([1.0, 2.0, 3.0, 4.0], requires_grad=True)
    mask = torch.tensor([True, False, True, False])
    t = LossTerms().add(0.5, a).add(2.0, a**2, mask).add(3.0, a, torch.zeros(4, dtype=torch.bool))
    assert t.counts == [4.0, 2.0, 0.0]
    assert float(t.total().detach()) == pytest.approx(0.5 * 2.5 + 2.0 * (1 + 9) / 2)
    t.total().backward()
    assert torch.isfinite(a.grad).all()


def test_split_batch_with_summed_normalisers_gives_the_whole_batch_gradient():
    """Two halves, each dividing by the normalisers of the whole batch: the gradients add up to the
    gradient of the whole batch's loss (what the data-parallel trainer relies on)."""
    torch.manual_seed(0)
    w = torch.randn(3, requires_grad=True)
    x, m = torch.randn(7, 3), torch.tensor([1, 0, 0, 1, 1, 0, 1], dtype=torch.bool)

    def terms(rows):
        z = x[rows] @ w
        return LossTerms().add(1.0, z**2).add(0.7, torch.exp(z), m[rows])

    (g_all,) = torch.autograd.grad(terms(slice(None)).total(), w)
    halves = [terms(slice(0, 4)), terms(slice(4, 7))]
    counts = [sum(h.counts[k] for h in halves) for k in range(2)]
    g_split = sum(torch.autograd.grad(h.total(counts), w)[0] for h in halves)
    assert torch.allclose(g_split, g_all, atol=1e-6)
    # weighting each half's own loss by its share of rows would not: the masked mean differs
    halves = [terms(slice(0, 4)), terms(slice(4, 7))]
    g_rows = sum(torch.autograd.grad(h.total() * n / 7, w)[0] for h, n in zip(halves, (4, 3)))
    assert not torch.allclose(g_rows, g_all, atol=1e-4)


def test_a_plain_loss_is_one_per_sample_mean_term():
    fn = lambda model, x, y: (x**2).mean()  # noqa: E731
    x = torch.arange(4.0)
    t = loss_terms(fn, None, x, None)
    assert t.counts == [4.0] and float(t.total()) == pytest.approx(float((x**2).mean()))
    wrapped = TermLoss(lambda model, x, y: LossTerms().add(1.0, x**2))
    assert float(wrapped(None, x, None)) == pytest.approx(3.5)
    assert loss_terms(wrapped, None, x, None).counts == [4.0]
