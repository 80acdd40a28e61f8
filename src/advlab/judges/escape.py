"""Escaping model-written text before it goes inside another model's prompt (HarmBench issue #91).

A completion that contains ``[/INST]``, ``<</SYS>>``, ``</s>``, ``<|eot_id|>`` or the judge's own special
tokens must not close the judge's instruction or start a new turn. :func:`escape_model_text` neutralises
exactly what can act as prompt structure and leaves everything else as the model wrote it (``#include
<stdio.h>``, ``a < b && b > c`` and HTML reach the judge unaltered):

- bracket markers ``[INST]``, ``[/INST]``, ``[SYS]``, ``[AVAILABLE_TOOLS]``, … become ``(INST)``, ``(/INST)``, …;
- angle markers of chat formats (``<|...|>`` tokens such as ``<|im_start|>``, ``<|eot_id|>``,
  ``<|start_header_id|>``; ``<s>``, ``</s>``, ``<<SYS>>``, ``<start_of_turn>``, ``<end_of_turn>``, ``<bos>``,
  ``<eos>``) and the delimiters of advlab's judge prompts (``<request>``, ``</response>``, …) get a
  zero-width space after their ``<``;
- any special or added token string of the judge's tokenizer that survives is broken the same way.

:func:`special_token_count` lets callers verify the result at the token level.
"""

from __future__ import annotations

import re
from typing import Any

ZWSP = "\u200b"
PROMPT_TAGS = ("request", "response")  # the quoting delimiters of advlab.judges.rating's template
_BRACKET = re.compile(r"\[(/?)(INST|SYS|AVAILABLE_TOOLS|TOOL_CALLS|TOOL_RESULTS)\]", re.IGNORECASE)
_ANGLE = re.compile(
    r"<(?=\|[^|<>\s]{1,40}\|>"  # <|im_start|>, <|eot_id|>, <|user|>, <|endoftext|>
    r"|｜[^｜<>\s]{1,40}｜>"  # DeepSeek's full-width <｜User｜>
    r"|</?SYS>>"  # <<SYS>>, <</SYS>>
    r"|/?(?:s|bos|eos|start_of_turn|end_of_turn|" + "|".join(PROMPT_TAGS) + r")>)",
    re.IGNORECASE,
)


def control_strings(tokenizer: Any | None) -> list[str]:
    """Special and added token strings of a tokenizer (longest first)."""
    if tokenizer is None:
        return []
    out = {str(t) for t in getattr(tokenizer, "all_special_tokens", [])}
    decoder = getattr(tokenizer, "added_tokens_decoder", {}) or {}
    out |= {t.content for t in decoder.values()}
    return sorted((s for s in out if s and s.strip()), key=len, reverse=True)


def escape_model_text(text: str, tokenizer: Any | None = None) -> str:
    """Text whose role/turn markers and ``tokenizer`` control strings are inert; all else unchanged."""
    text = _BRACKET.sub(lambda m: f"({m.group(1)}{m.group(2)})", str(text))
    text = _ANGLE.sub("<" + ZWSP, text)
    for tok in control_strings(tokenizer):
        if len(tok) > 1 and tok in text:
            text = text.replace(tok, tok[0] + ZWSP + tok[1:])
    return text


def special_token_count(tokenizer: Any, text: str) -> int:
    """How many special/added-token ids the tokenizer produces for ``text``."""
    special = {tokenizer.convert_tokens_to_ids(s) for s in control_strings(tokenizer)}
    return sum(1 for i in tokenizer(text, add_special_tokens=False)["input_ids"] if i in special)
