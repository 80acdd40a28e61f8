"""Tiny models shared by the analysis tests."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F


def fit(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, steps: int = 60, lr: float = 0.05):
    """A few full-batch Adam steps (seeded by the caller): enough for a usable digits classifier."""
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    for _ in range(steps):
        opt.zero_grad()
        F.cross_entropy(model(x), y).backward()
        opt.step()
    return model.eval()


@pytest.fixture(scope="session")
def digits_mlp():
    """A small MLP (hidden 16) trained for a moment on digits, and the test split."""
    from advlab.data.images import load_digits_split
    from advlab.models.classifiers import build_classifier

    torch.manual_seed(0)
    x, y = load_digits_split("train")
    model = fit(build_classifier("mlp", (1, 8, 8), 10, hidden=16), x, y)
    xt, yt = load_digits_split("test")
    return model, xt, yt


@pytest.fixture(scope="session")
def tiny_chat():
    """A byte-level BPE tokenizer and a random 1-layer Llama over it (built in memory)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=300, special_tokens=["<|pad|>", "<|end|>", "<|user|>", "<|assistant|>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(["Sure, here is how to bake a cake. Tell me a story x x x ! ?"] * 5, trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<|pad|>", eos_token="<|end|>")
    torch.manual_seed(0)
    cfg = LlamaConfig(vocab_size=len(fast), hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                      num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=64, pad_token_id=0,
                      eos_token_id=1, bos_token_id=None, tie_word_embeddings=False)
    return fast, LlamaForCausalLM(cfg).eval()
