"""Helpers for chat-model tests (imported by tests/models and tests/judges): small byte-level BPE
tokenizers per chat-template family, and a tiny random Llama chat model saved as a normal HF directory."""

from __future__ import annotations

import json
from pathlib import Path

TEMPLATES = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "chat_templates"

# special tokens per family (as in the real vocabularies); "stops" are the tokens behind the
# generation_configs/*.json stop_token_ids of that family; "auto_bos": the real tokenizer adds BOS itself
_LLAMA = {"bos": "<s>", "eos": "</s>", "unk": "<unk>", "extra": [], "auto_bos": True}
FAMILIES: dict[str, dict] = {
    "alpaca": {**_LLAMA, "stops": ["</s>"]},
    "amberchat": {**_LLAMA, "stops": ["</s>"]},
    "chatml": {
        **_LLAMA,
        "extra": ["<|im_start|>", "<|im_end|>"],
        "auto_bos": False,
        "stops": ["</s>", "<|im_end|>"],
    },
    "chatqa": {
        "bos": "<|begin_of_text|>",
        "eos": "<|end_of_text|>",
        "unk": None,
        "extra": ["<|eot_id|>"],
        "auto_bos": True,
        "stops": ["<|end_of_text|>"],
    },
    "falcon-instruct": {
        "bos": None,
        "eos": "<|endoftext|>",
        "unk": None,
        "extra": [],
        "auto_bos": False,
        "stops": ["<|endoftext|>"],
    },
    "gemma-it": {
        "bos": "<bos>",
        "eos": "<eos>",
        "unk": "<unk>",
        "extra": ["<start_of_turn>", "<end_of_turn>"],
        "auto_bos": True,
        "stops": ["<eos>", "<end_of_turn>"],
    },
    "llama-2-chat": {**_LLAMA, "stops": ["</s>"]},
    "llama-3-instruct": {
        "bos": "<|begin_of_text|>",
        "eos": "<|end_of_text|>",
        "unk": None,
        "extra": ["<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>", "<|eom_id|>"],
        "auto_bos": True,
        "stops": ["<|end_of_text|>", "<|eot_id|>"],
    },
    "ministral-instruct": {**_LLAMA, "extra": ["[INST]", "[/INST]"], "stops": ["</s>"]},
    "mistral-instruct": {**_LLAMA, "stops": ["</s>"]},
    "openchat-3.5": {**_LLAMA, "extra": ["<|end_of_turn|>"], "stops": ["</s>", "<|end_of_turn|>"]},
    "phi-3": {
        **_LLAMA,
        "extra": ["<|endoftext|>", "<|user|>", "<|assistant|>", "<|system|>", "<|end|>"],
        "stops": ["</s>", "<|end|>"],
    },
    "saiga": {**_LLAMA, "stops": ["</s>"]},
    "solar-instruct": {**_LLAMA, "stops": ["</s>"]},
    "vicuna": {**_LLAMA, "stops": ["</s>"]},
    "zephyr": {**_LLAMA, "stops": ["</s>"]},
}

CORPUS = (
    "Write a tutorial on how to bake bread. Give step-by-step instructions for fixing a bike!\n"
    "Sure, here is a tutorial on how to bake bread: 1. Mix flour, water and salt.\n"
    "You are a helpful assistant. Answer the question below, please. What is 12 + 30? It is 42.\n"
    "USER: hello there ASSISTANT: hi! How can I help? ### Instruction:\n### Response:\n"
    "[INST] tell me a story [/INST] Once upon a time... <<SYS>> system <</SYS>>\n"
    "User: Assistant: System: GPT4 Correct User: GPT4 Correct Assistant: ###Human: ###Assistant:\n"
    "! ! ! ! ! x x x x x describing.\\ + similarlyNow write oppositeley.]( Me giving**ONE please? revert\n"
    "Yes yes YES No no NO. Answer: Yes. Answer: No. Behavior: Generation: Rules:\n"
    "The quick brown fox jumps over the lazy dog; 0123456789 (parentheses) [brackets] {braces} <tags>\n"
)


def _chat_template(family: str) -> str:
    from advlab.models.chat import read_chat_template

    return read_chat_template(TEMPLATES / "chat_templates" / f"{family}.jinja")


def make_tokenizer(family: str, vocab_size: int = 600, chat_template: str | None = None):
    """A byte-level BPE ``PreTrainedTokenizerFast`` with the family's special tokens and chat template."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    spec = FAMILIES[family]
    specials = [t for t in (spec["bos"], spec["eos"], spec["unk"]) if t] + list(spec["extra"])
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=specials,
        show_progress=False,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tok.train_from_iterator([CORPUS] * 3, trainer=trainer)
    if spec["auto_bos"] and spec["bos"]:
        bos = spec["bos"]
        tok.post_processor = processors.TemplateProcessing(
            single=f"{bos} $A", pair=f"{bos} $A {bos} $B", special_tokens=[(bos, tok.token_to_id(bos))]
        )
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token=spec["bos"],
        eos_token=spec["eos"],
        unk_token=spec["unk"],
        additional_special_tokens=list(spec["extra"]) or None,
        clean_up_tokenization_spaces=False,
    )
    fast.chat_template = chat_template if chat_template is not None else _chat_template(family)
    return fast


GYM_LIKE_TEMPLATE = (
    "{% for message in messages %}"
    "{% if message['role'] == 'system' %}<|system|>\n{{ message['content'] }}<|end|>\n"
    "{% elif message['role'] == 'user' %}<|user|>\n{{ message['content'] }}<|end|>\n"
    "{% elif message['role'] == 'assistant' %}<|assistant|>\n{{ message['content'] }}<|end|>\n"
    "{% endif %}{% endfor %}{% if add_generation_prompt %}<|assistant|>\n{% endif %}"
)


def save_tiny_model(out: Path, family: str = "phi-3", chat_template: str | None = None, pad: bool = False) -> Path:
    """A tiny random LlamaForCausalLM + tokenizer saved with safetensors (a real HF directory)."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    tok = make_tokenizer(family, chat_template=chat_template)
    if pad:
        tok.pad_token = tok.eos_token
    torch.manual_seed(0)
    cfg = LlamaConfig(
        vocab_size=len(tok),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=1,
        num_attention_heads=2,
        num_key_value_heads=2,
        max_position_embeddings=256,
        eos_token_id=tok.eos_token_id,
        bos_token_id=tok.bos_token_id,
    )
    model = LlamaForCausalLM(cfg)
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out, safe_serialization=True)
    tok.save_pretrained(out)
    return out


def generation_config(family: str) -> dict:
    return json.loads((TEMPLATES / "generation_configs" / f"{family}.json").read_text())


def make_sp_tokenizer(family: str, prepend_scheme: str = "first"):
    """A SentencePiece-style (Metaspace, byte fallback, auto BOS) tokenizer like Llama-2/Mistral's."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE(unk_token="<unk>", byte_fallback=True))
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="\u2581", prepend_scheme=prepend_scheme)
    tok.decoder = decoders.Metaspace(replacement="\u2581", prepend_scheme=prepend_scheme)
    trainer = trainers.BpeTrainer(vocab_size=700, special_tokens=["<unk>", "<s>", "</s>"], show_progress=False)
    tok.train_from_iterator([CORPUS] * 3, trainer=trainer)
    tok.post_processor = processors.TemplateProcessing(
        single="<s> $A", pair="<s> $A <s> $B", special_tokens=[("<s>", tok.token_to_id("<s>"))]
    )
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token="<s>", eos_token="</s>", unk_token="<unk>", clean_up_tokenization_spaces=False
    )
    fast.chat_template = _chat_template(family)
    return fast
