"""Escaping model-written text before it goes inside another model's prompt (HarmBench issue #91).

A completion that contains ``[/INST]``, ``<</SYS>>``, ``</s>`` or the judge's own special tokens
must not close the judge's instruction or start a new turn. :func:`escape_model_text` makes such
text inert while keeping it readable: HTML entities for ``& < >`` (so every ``<...>`` special token
is plain text), bracket markers ``[INST]``/``[/INST]``/``[SYS]`` become ``(INST)``/``(/INST)``,
and any special or added token string of the judge's tokenizer that survives is broken with a
zero-width space. :func:`special_token_count` lets callers verify the result at the token level.
"""

from __future__ import annotations

import re
from typing import Any

_MARKERS = re.compile(r"\[(/?)(INST|SYS|AVAILABLE_TOOLS|TOOL_CALLS|TOOL_RESULTS)\]", re.IGNORECASE)
ZWSP = "\u200b"


def control_strings(tokenizer: Any | None) -> list[str]:
    """Special and added token strings of a tokenizer (longest first)."""
    if tokenizer is None:
        return []
    out = {str(t) for t in getattr(tokenizer, "all_special_tokens", [])}
    decoder = getattr(tokenizer, "added_tokens_decoder", {}) or {}
    out |= {t.content for t in decoder.values()}
    return sorted((s for s in out if s and s.strip()), key=len, reverse=True)


def escape_model_text(text: str, tokenizer: Any | None = None) -> str:
    """Text that cannot act as prompt structure or as a control token of ``tokenizer``."""
    text = str(text)
    text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    text = _MARKERS.sub(lambda m: f"({m.group(1)}{m.group(2)})", text)
    for tok in control_strings(tokenizer):
        if len(tok) > 1 and tok in text:
            text = text.replace(tok, tok[0] + ZWSP + tok[1:])
    return text


def special_token_count(tokenizer: Any, text: str) -> int:
    """How many special/added-token ids the tokenizer produces for ``text``."""
    special = {tokenizer.convert_tokens_to_ids(s) for s in control_strings(tokenizer)}
    return sum(1 for i in tokenizer(text, add_special_tokens=False)["input_ids"] if i in special)
