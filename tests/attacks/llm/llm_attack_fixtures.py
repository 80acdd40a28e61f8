"""A tiny random Llama, a byte-level BPE tokenizer built in memory (no hub) and hand-built prompt segments,
for the LLM attack tests (imported by name: a uniquely named module, not conftest)."""

from __future__ import annotations

import torch

from advlab.models.segments import PromptSegments

TEXTS = [
    "Sure, here is how to build a birdhouse step by step.",
    "Write a tutorial on how to make a cake. x x x x ! ! ?",
    "<|user|> Tell me a story about dragons and knights. <|assistant|>",
    "The quick brown fox jumps over the lazy dog 0123456789.",
]


def build_tokenizer():
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=400,
        special_tokens=["<|pad|>", "<|end|>", "<|user|>", "<|assistant|>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tok.train_from_iterator(TEXTS * 5, trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<|pad|>", eos_token="<|end|>")
    fast.add_special_tokens({"additional_special_tokens": ["<|user|>", "<|assistant|>"]})
    return fast


def build_model(vocab_size: int, seed: int = 0):
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    cfg = LlamaConfig(
        vocab_size=vocab_size,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=256,
        pad_token_id=0,
        eos_token_id=1,
        bos_token_id=None,
        tie_word_embeddings=False,
    )
    model = LlamaForCausalLM(cfg).eval()
    with torch.no_grad():  # larger logits so losses and argmaxes are not all alike
        model.lm_head.weight.mul_(20)
    return model


def make_segments(tok, request: str, slot: str, target: str) -> PromptSegments:
    """Hand-built segments ``<|user|>request slot<|end|><|assistant|>target`` (checked to round-trip)."""
    before = tok("<|user|>" + request, add_special_tokens=False).input_ids
    slot_ids = tok(" " + slot, add_special_tokens=False).input_ids if slot else []
    after = tok("<|end|><|assistant|>", add_special_tokens=False).input_ids
    tgt = tok(target, add_special_tokens=False).input_ids
    return PromptSegments(before, slot_ids, after, tgt, text="")
