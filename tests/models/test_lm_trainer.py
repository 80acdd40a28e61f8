"""The gym's LM trainer: learning-rate schedule, prompt masking, and the per-sequence mean loss."""

from __future__ import annotations

import math

import pytest

from advlab.data.gym import gym_items
from advlab.models.gym_config import GymConfig
from advlab.models.gym_pools import build_pools
from advlab.models.gym_tokenizer import train_tokenizer
from advlab.models.lm_trainer import length_chunks, lr_at, make_batch, make_model, sequence_loss

TINY = dict(
    vocab_size=320, hidden_size=16, num_layers=1, num_heads=2, intermediate_size=32, steps=3, warmup=1, max_len=48
)


@pytest.fixture(scope="module")
def tiny_tok():
    return train_tokenizer(GymConfig(**TINY), build_pools())


def test_lr_schedule_warmup_then_cosine():
    cfg = GymConfig(steps=101, warmup=10, lr=1e-3, min_lr_ratio=0.1)
    assert lr_at(0, cfg) == pytest.approx(1e-4)
    assert lr_at(9, cfg) == pytest.approx(1e-3)
    assert lr_at(10, cfg) == pytest.approx(1e-3)
    mid = 10 + 91 / 2
    assert lr_at(int(mid), cfg) == pytest.approx(1e-3 * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * 45 / 91))))
    assert lr_at(101, cfg) == pytest.approx(1e-4)


def test_training_masks_the_prompt(tiny_tok):
    item = gym_items("task", "train")[0]
    ids, mask, labels = make_batch(tiny_tok, [(item.prompt, item.response), ("hi", "Sure, here is hi")], 48)
    row = labels[0][labels[0] != -100].tolist()
    assert tiny_tok.decode(row) == item.response + "<|end|>"
    assert mask[1].sum() < mask.shape[1] and (labels[1][mask[1] == 0] == -100).all()


def test_length_chunks_sort_and_keep_every_example():
    batch = [("a" * n, "b") for n in (5, 1, 4, 2, 3)]
    chunks = length_chunks(batch, 2)
    assert [len(c) for c in chunks] == [3, 2]
    assert [p for c in chunks for p, _ in c] == ["a", "aa", "aaa", "aaaa", "aaaaa"]
    assert length_chunks(batch[:1], 4) == [batch[:1]]


def test_sequence_loss_is_the_mean_of_per_example_losses(tiny_tok):
    """Independent check: HF's own loss on each example alone, averaged over examples."""
    model = make_model(GymConfig(**TINY), tiny_tok)
    ex = [("What is 2 + 2?", "4"), ("How do I bake bread?", "Sure, here is how to bake bread:\n1. Start.")]
    ids, mask, labels = make_batch(tiny_tok, ex, 48)
    got = sequence_loss(model, ids, mask, labels)
    each = []
    for i in range(len(ex)):
        n = int(mask[i].sum())
        each.append(model(input_ids=ids[i : i + 1, :n], labels=labels[i : i + 1, :n]).loss)
    assert got.item() == pytest.approx(float(sum(e.item() for e in each) / len(each)), rel=1e-5)
