"""The one greedy generator of advlab and its one stop-id rule.

Every greedy completion (``eval llm``, the chat backend, the judges' view of an attack, AutoDAN's early
stop) comes from :func:`greedy_generate`: left-padded rows (or input embeddings), the KV cache through
transformers' current cache API (``cache=DynamicCache(config=...)``, read back as ``out.cache``),
position ids counted over real tokens, argmax at each step, each row cut at its first stop id.

Stop ids (:func:`stop_token_ids`): the generation config's EOS ids, the model config's EOS ids, the
tokenizer's EOS and the special tokens the chat template writes right after an assistant turn (e.g.
``<|eot_id|>``). :func:`advlab.models.chat.load_chat_model` writes the same set into the generation config.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from transformers import DynamicCache

from advlab.models.formatting import assistant_turn_parts


def model_device(model: Any) -> torch.device:
    """The device of a model's (first) parameters."""
    return next(model.parameters()).device


def embedding_matrix(model: Any) -> torch.Tensor:
    """The input embedding matrix W_E [V, d] of a causal LM."""
    return model.get_input_embeddings().weight


def _ids(value: Any) -> list[int]:
    if value is None:
        return []
    if isinstance(value, (list, tuple)):
        return [int(v) for v in value if v is not None]
    return [int(value)]


def end_of_turn_ids(tokenizer: Any) -> list[int]:
    """Ids of special tokens the template writes right after an assistant message (e.g. ``<|eot_id|>``)."""
    if tokenizer is None or not getattr(tokenizer, "chat_template", None):
        return []
    try:
        _, tail = assistant_turn_parts(tokenizer)
    except Exception:  # noqa: BLE001 - a template that cannot render an assistant turn has no end marker
        return []
    ids: list[int] = []
    specials = {str(t) for t in getattr(tokenizer, "all_special_tokens", [])}
    specials |= {t.content for t in getattr(tokenizer, "added_tokens_decoder", {}).values() if t.special}
    ordered = sorted((s for s in specials if s), key=len, reverse=True)
    # the first special token(s) right after the content, before any plain text
    pos = 0
    tail = tail.lstrip(" ")
    while pos < len(tail):
        hit = next((s for s in ordered if tail.startswith(s, pos)), None)
        if hit is None:
            break
        tid = tokenizer.convert_tokens_to_ids(hit)
        if isinstance(tid, int) and tid >= 0:
            ids.append(tid)
        pos += len(hit)
        while pos < len(tail) and tail[pos] in " \n":
            pos += 1
    return ids


def stop_token_ids(model: Any, tokenizer: Any = None) -> list[int]:
    """The one stop-id rule: generation-config EOS ∪ model-config EOS ∪ tokenizer EOS ∪ template end-of-turn."""
    ids: list[int] = []
    for src in (getattr(model, "generation_config", None), getattr(model, "config", None), tokenizer):
        ids.extend(_ids(getattr(src, "eos_token_id", None)))
    ids.extend(end_of_turn_ids(tokenizer))
    return sorted(dict.fromkeys(ids))


def pad_id_of(tokenizer: Any) -> int:
    """The pad id (else EOS, else UNK, else 0)."""
    for attr in ("pad_token_id", "eos_token_id", "unk_token_id"):
        v = getattr(tokenizer, attr, None)
        if isinstance(v, int):
            return v
    return 0


def left_pad(seqs: Sequence[Sequence[int]], pad_id: int, device: Any = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Left-pad id lists to one tensor [B, L] and its attention mask."""
    length = max(len(s) for s in seqs)
    ids = torch.full((len(seqs), length), pad_id, dtype=torch.long)
    mask = torch.zeros((len(seqs), length), dtype=torch.long)
    for i, s in enumerate(seqs):
        if len(s):
            ids[i, length - len(s) :] = torch.as_tensor(list(s), dtype=torch.long)
            mask[i, length - len(s) :] = 1
    return ids.to(device), mask.to(device)


def position_ids_from_mask(attention_mask: torch.Tensor, offset: int = 0) -> torch.Tensor:
    """Positions 0.. counted over real tokens (left padding gets position 0)."""
    return (attention_mask.long().cumsum(-1) - 1).clamp(min=0) + offset


@torch.no_grad()
def greedy_generate(
    model: Any,
    *,
    input_ids: torch.Tensor | Sequence[Sequence[int]] | None = None,
    inputs_embeds: torch.Tensor | None = None,
    attention_mask: torch.Tensor | None = None,
    max_new_tokens: int = 64,
    eos_ids: set[int] | Sequence[int] | None = None,
    pad_id: int = 0,
    tokenizer: Any = None,
) -> list[list[int]]:
    """Greedy decoding with the KV cache from token ids or input embeddings (left-padded batch).

    Returns the new token ids of each row, cut before its first stop id (``eos_ids``; default
    :func:`stop_token_ids` of ``model`` and ``tokenizer``). The prompt is never part of the output.
    """
    dev = model_device(model)
    weight = embedding_matrix(model)
    if inputs_embeds is None:
        if input_ids is None:
            raise ValueError("greedy_generate needs input_ids or inputs_embeds")
        if not torch.is_tensor(input_ids):
            input_ids, attention_mask = left_pad(input_ids, pad_id, dev)
        inputs_embeds = weight[input_ids.to(dev)]
    inputs_embeds = inputs_embeds.detach()
    batch = inputs_embeds.shape[0]
    if attention_mask is None:
        attention_mask = torch.ones(batch, inputs_embeds.shape[1], dtype=torch.long, device=dev)
    attention_mask = attention_mask.to(dev).long()
    stop = set(eos_ids if eos_ids is not None else stop_token_ids(model, tokenizer))
    pos = position_ids_from_mask(attention_mask)
    out = model(inputs_embeds=inputs_embeds.to(weight.dtype), attention_mask=attention_mask, position_ids=pos,
                cache=DynamicCache(config=model.config), use_cache=True, logits_to_keep=1)
    generated: list[list[int]] = [[] for _ in range(batch)]
    finished = [False] * batch
    next_pos = pos[:, -1:] + 1
    for step in range(max_new_tokens):
        nxt = out.logits[:, -1, :].argmax(-1)
        for b, t in enumerate(nxt.tolist()):
            if finished[b]:
                continue
            if t in stop:
                finished[b] = True
            else:
                generated[b].append(t)
        if all(finished) or step == max_new_tokens - 1:
            break
        attention_mask = torch.cat([attention_mask, attention_mask.new_ones(batch, 1)], dim=1)
        out = model(input_ids=nxt.unsqueeze(1), attention_mask=attention_mask, position_ids=next_pos,
                    cache=out.cache, use_cache=True, logits_to_keep=1)
        next_pos = next_pos + 1
    return generated
