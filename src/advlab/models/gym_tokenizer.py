"""The gym's tokenizer: byte-level BPE trained on the gym's own texts, with chat special tokens.

Digits are split one per token (so arithmetic is learnable); the chat tokens are ``<|user|>``,
``<|assistant|>``, ``<|system|>``, ``<|end|>`` (end of turn, the stop id) and ``<|pad|>``.
"""

from __future__ import annotations

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import PreTrainedTokenizerFast

from advlab.data.gym import REFUSALS
from advlab.models.gym_config import GymConfig
from advlab.models.gym_pools import PREFIXES, SUFFIXES, TrainingPools

CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{% if message['role'] == 'system' %}<|system|>\n{{ message['content'] }}<|end|>\n"
    "{% elif message['role'] == 'user' %}<|user|>\n{{ message['content'] }}<|end|>\n"
    "{% elif message['role'] == 'assistant' %}<|assistant|>\n{{ message['content'] }}<|end|>\n"
    "{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>\n{% endif %}"
)
SPECIAL_TOKENS = ("<|pad|>", "<|end|>", "<|user|>", "<|assistant|>", "<|system|>")
PAD, END = "<|pad|>", "<|end|>"


def prompt_text(prompt: str) -> str:
    """One user turn followed by the assistant header, as :data:`CHAT_TEMPLATE` renders it."""
    return f"<|user|>\n{prompt}<|end|>\n<|assistant|>\n"


def train_tokenizer(cfg: GymConfig, pools: TrainingPools) -> PreTrainedTokenizerFast:
    """A byte-level BPE tokenizer of ``cfg.vocab_size`` over every prompt and response of ``pools``
    (plus the augmentation phrases and refusals), wrapped as a ``PreTrainedTokenizerFast``."""
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.Digits(individual_digits=True), pre_tokenizers.ByteLevel(add_prefix_space=False)]
    )
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=cfg.vocab_size,
        special_tokens=list(SPECIAL_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    texts: list[str] = []
    for pool in (pools.harmful, pools.harmless, pools.task, pools.public_harmful, pools.public_harmless):
        for p, r in pool:
            texts.append(p)
            texts.append(r)
    texts.extend(PREFIXES + SUFFIXES + REFUSALS)
    tok.train_from_iterator(texts, trainer=trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        pad_token=PAD,
        eos_token=END,
        unk_token=None,
        additional_special_tokens=["<|user|>", "<|assistant|>", "<|system|>"],
        model_max_length=2048,
        padding_side="left",
        clean_up_tokenization_spaces=False,
    )
    fast.chat_template = CHAT_TEMPLATE
    return fast
