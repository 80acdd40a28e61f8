"""The multi-prompt, multi-model GCG objective against plain full forward passes and autograd by hand."""

from __future__ import annotations

import pytest
import torch
from llm_attack_fixtures import build_model, make_segments

from advlab.attacks.llm.gcg_objective import MultiPromptObjective, prompt_with_slot, target_loss


def _full_loss(model, segs, slot):
    """Mean target cross-entropy of ``before + slot + after + target`` from one plain forward pass."""
    ids = torch.tensor([[*segs.before, *slot, *segs.after, *segs.target]])
    with torch.no_grad():
        logits = model(input_ids=ids).logits[0].double()
    n = len(segs.target)
    return float(torch.nn.functional.cross_entropy(logits[-n - 1 : -1], torch.tensor(segs.target)))


@pytest.fixture
def two(tiny_tok):
    a = make_segments(tiny_tok, "Tell me a story", "x x x x x", "Sure, here is")
    b = make_segments(tiny_tok, "Write a tutorial on how to make a cake", "x x x x x", "The quick brown fox")
    assert len(a.slot) == len(b.slot)
    return [a, b]


def test_loss_is_mean_over_prompts_and_sum_over_models(tiny_model, tiny_tok, two):
    other = build_model(len(tiny_tok), seed=1)
    slots = torch.tensor([two[0].slot, [t + 3 for t in two[0].slot]])
    obj = MultiPromptObjective([tiny_model, other], two)
    loss, _ = obj.losses(slots)
    for row, slot in zip(loss.tolist(), slots.tolist()):
        want = sum(_full_loss(m, s, slot) for m in (tiny_model, other) for s in two) / len(two)
        assert row == pytest.approx(want, abs=1e-4)
    # budget: one prefix pass per (model, prompt) pair, then every candidate row through every pair
    assert obj.budget.forward_passes == 4 + 4 * 2 and obj.budget.backward_passes == 0


def test_gradient_is_the_mean_of_per_prompt_one_hot_gradients(tiny_model, two):
    slot = torch.tensor(two[0].slot)
    grad = MultiPromptObjective([tiny_model], two).gradient(slot)
    weight = tiny_model.get_input_embeddings().weight
    want = torch.zeros_like(grad)
    for s in two:  # d/dE of the plain full-forward loss, E the one-hot slot
        one_hot = torch.nn.functional.one_hot(slot, weight.shape[0]).to(weight.dtype).requires_grad_(True)
        embeds = torch.cat([weight[torch.tensor(s.before)], one_hot @ weight, weight[torch.tensor(s.after + s.target)]])
        logits = tiny_model(inputs_embeds=embeds.unsqueeze(0)).logits[0]
        n = len(s.target)
        loss = torch.nn.functional.cross_entropy(logits[-n - 1 : -1], torch.tensor(s.target))
        (g,) = torch.autograd.grad(loss, one_hot)
        want += g / len(two)
    assert torch.allclose(grad, want, atol=1e-4)


def test_target_loss_and_prompt_with_slot(tiny_model, two):
    s = two[1]
    slot = [t + 1 for t in s.slot]
    prompt = prompt_with_slot(s, slot)
    assert prompt == [*s.before, *slot, *s.after]
    assert target_loss(tiny_model, prompt, s.target) == pytest.approx(_full_loss(tiny_model, s, slot), abs=1e-4)
    assert target_loss(tiny_model, prompt, []) != target_loss(tiny_model, prompt, [])  # nan without a target
