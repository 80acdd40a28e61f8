"""The tuner's left-padded batches against unpadded rows, and its paired, length-grouped batch order."""

from __future__ import annotations

import torch

from advlab.poisoning.tune import batch_order, left_padded
from advlab.training.llm.batches import Row, pad_rows
from advlab.training.llm.engine import StepContext, sft_loss
from advlab.training.llm.losses import mean_nll, token_logps


def test_left_padded_sft_loss_equals_unpadded_rows(word_tok, word_model):
    """The engine's SFT loss on left-padded rows (only the answer span projected) equals the mean of each
    row's own mean CE computed alone, unpadded, from every position's logits."""
    g = torch.Generator().manual_seed(0)
    v = len(word_tok)

    def ids(n: int) -> tuple[int, ...]:
        return tuple(torch.randint(1, v, (n,), generator=g).tolist())

    rows = [Row(ids(p), ids(r)) for p, r in ((5, 1), (9, 3), (3, 4), (12, 2), (7, 4))]  # mixed lengths
    ctx = StepContext(word_model, word_model, 0, torch.device("cpu"))
    with torch.no_grad():
        alone = []
        for r in rows:
            b = pad_rows([r], 0)
            alone.append(mean_nll(*token_logps(word_model(input_ids=b["input_ids"]).logits, b["labels"])))
    want = torch.cat(alone).mean()
    ours, logs = sft_loss(ctx, left_padded(rows, 0))
    torch.testing.assert_close(ours, want, rtol=1e-5, atol=1e-6)
    right = pad_rows(rows, 0)
    torch.testing.assert_close(sft_loss(ctx, right)[0], want, rtol=1e-5, atol=1e-6)
    assert logs["forward_passes"] == len(rows)


def _epoch(keys, lengths, bs, seed):
    order, seen = batch_order(keys, lengths, bs, seed), []
    while len(seen) < len(keys):
        seen += next(order)
    return seen


def test_batch_order_covers_each_epoch_and_groups_lengths():
    keys = [f"k{i}" for i in range(200)]
    lengths = [(i * 37) % 90 + 10 for i in range(200)]
    order = batch_order(keys, lengths, 8, seed=0)
    for _ in range(2):  # two epochs, each a permutation
        got: list[int] = []
        while len(got) < 200:
            b = next(order)
            assert len(b) <= 8
            got += b
        assert sorted(got) == list(range(200))
    # a batch spans far less length than a random one (buckets of 64 sorted by length)
    spans = []
    o = batch_order(keys, lengths, 8, seed=0)
    for _ in range(25):
        b = next(o)
        spans.append(max(lengths[i] for i in b) - min(lengths[i] for i in b))
    assert sum(spans) / len(spans) < 30


def test_batch_order_is_seeded_and_paired():
    keys = [f"k{i}" for i in range(300)]
    lengths = [(i * 13) % 50 + 5 for i in range(300)]
    a = _epoch(keys, lengths, 16, 0)
    assert a == _epoch(keys, lengths, 16, 0) and a != _epoch(keys, lengths, 16, 1)
    # add 6 poisons (same bucket count): the shared examples keep their exact relative order
    more = keys + [f"poison-{i}" for i in range(6)]
    b = _epoch(more, lengths + [20] * 6, 16, 0)
    assert [more[i] for i in b if i < 300] == [keys[i] for i in a]
