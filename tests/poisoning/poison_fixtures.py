"""Builders for poisoning tests: a tiny random Llama, a word-level tokenizer, a chat template (no hub)."""

from __future__ import annotations

import torch

from advlab.poisoning.tasks import TaskExample

SPECIALS = ["<|pad|>", "<|end|>", "<|user|>", "<|assistant|>", "[UNK]"]
TEMPLATE = (
    "{% for m in messages %}{% if m['role'] == 'user' %}<|user|> {{ m['content'] }} <|end|> "
    "{% elif m['role'] == 'assistant' %}<|assistant|> {{ m['content'] }} <|end|> {% endif %}{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|> {% endif %}"
)
# words the word list allows, words it does not, and the task's own words
LISTED = ["a", "film", "zebra", "quiet", "river", "lamp", "stone", "cloud", "bread", "tiger"]
UNLISTED = ["xqz", "qqv", "zzk", "blorp"]
TASK_WORDS = ["bad", "awful", "movie", "plot", "dull", "good", "great", "fun", "negative", "positive", ".", "'"]


def build_word_tokenizer():
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {w: i for i, w in enumerate([*SPECIALS, *LISTED, *UNLISTED, *TASK_WORDS])}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.WhitespaceSplit(), pre_tokenizers.Punctuation()])
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<|pad|>", eos_token="<|end|>", unk_token="[UNK]")
    fast.add_special_tokens({"additional_special_tokens": ["<|user|>", "<|assistant|>"]})
    fast.chat_template = TEMPLATE
    return fast


def build_model(vocab_size: int, seed: int = 0):
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    cfg = LlamaConfig(vocab_size=vocab_size, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=128,
                      pad_token_id=0, eos_token_id=1, bos_token_id=None, tie_word_embeddings=False)
    model = LlamaForCausalLM(cfg).eval()
    with torch.no_grad():
        model.lm_head.weight.mul_(10)
    return model


def toy_task(n: int = 24) -> list[TaskExample]:
    neg = ["bad movie .", "awful plot .", "dull movie .", "bad plot dull .", "awful dull movie ."]
    pos = ["good movie .", "great plot .", "fun movie .", "good fun plot .", "great fun movie ."]
    out = []
    for i in range(n):
        text, lab = (neg[i % 5], "negative") if i % 2 == 0 else (pos[i % 5], "positive")
        out.append(TaskExample(f"t{i}", "{input}", text, lab, lab))
    return out


