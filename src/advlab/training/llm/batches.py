"""Chat examples as token rows, and right-padded training batches.

A row is ``prompt_ids + response_ids``: the prompt is the chat template's user turn with the generation
prompt (BOS exactly once, as :class:`advlab.models.formatting.ChatFormatter` builds it), the response is
what the template writes for the assistant turn up to its end-of-turn token (what a template writes after
it, such as a newline, is never generated, so it is not labelled). Labels cover the response only. Rows
are right-padded, so prompt position i is the same in every row built from the same prompt (a prompt
perturbation δ computed on one continuation applies to another).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

from advlab.errors import ConfigError, require

IGNORE_INDEX = -100


@dataclass(frozen=True)
class Row:
    """``perturb``: the prompt positions ``[a, b)`` an adversary may perturb (an attack slot); None = all."""

    prompt_ids: tuple[int, ...]
    response_ids: tuple[int, ...]
    perturb: tuple[int, int] | None = None

    @property
    def ids(self) -> list[int]:
        return [*self.prompt_ids, *self.response_ids]


class ChatEncoder:
    """Encodes (prompt, response) pairs with the tokenizer's chat template; ``max_len`` cuts the prompt's
    start (never the response)."""

    def __init__(self, tokenizer: Any, max_len: int = 256, system_prompt: str | None = None) -> None:
        from advlab.models.formatting import ChatFormatter

        self.tokenizer = tokenizer
        self.formatter = ChatFormatter(tokenizer, system_prompt=system_prompt)
        self.max_len = max_len
        self.system_prompt = system_prompt

    def _messages(self, prompt: str) -> list[dict[str, str]]:
        sys = [{"role": "system", "content": self.system_prompt}] if self.system_prompt else []
        return [*sys, {"role": "user", "content": prompt}]

    def response_text(self, prompt: str, response: str) -> str:
        """What the template writes after the generation prompt for this reply, up to and including the
        end-of-turn token (generation stops there: what a template writes after it, such as a newline, is
        never generated, so it is not trained either)."""
        tok = self.tokenizer
        eos = tok.eos_token or ""
        head = tok.apply_chat_template(self._messages(prompt), tokenize=False, add_generation_prompt=True)
        full = tok.apply_chat_template([*self._messages(prompt), {"role": "assistant", "content": response}],
                                       tokenize=False)
        if not full.startswith(head):
            return response + eos
        text = full[len(head):]
        cut = text.find(eos, len(response)) if eos else -1
        return text[: cut + len(eos)] if cut >= 0 else text

    def prompt_ids(self, prompt: str) -> list[int]:
        return self.formatter.prompt_ids(prompt)

    def _prompt(self, prompt: str, slot: str, keep: int) -> tuple[tuple[int, ...], tuple[int, int] | None]:
        """The last ``keep`` prompt ids, and the slot's positions among them when ``slot`` is given (the
        request, a space and the slot text in the user turn, as ``attack llm``'s suffix attacks build it)."""
        if not slot:
            return tuple(self.prompt_ids(prompt)[-keep:]), None
        seg = self.formatter.segments(prompt, slot)
        ids, (a, b) = seg.prompt_ids, seg.slot_range
        cut = max(len(ids) - keep, 0)
        require(cut <= a, f"--max-len {self.max_len}: too short for the attack slot of {prompt[:40]!r}", ConfigError)
        return tuple(ids[cut:]), (a - cut, b - cut)

    def encode(self, prompt: str, response: str, slot: str = "") -> Row:
        own = self.tokenizer(response.strip(), add_special_tokens=False)["input_ids"] if response.strip() else []
        require(len(own) > 0, f"the response (refusal) {response[:40]!r} tokenises to nothing; give a non-empty one",
                ConfigError)
        text = self.response_text(f"{prompt} {slot}" if slot else prompt, response)
        r = list(self.tokenizer(text, add_special_tokens=False)["input_ids"])
        p, span = self._prompt(prompt, slot, max(self.max_len - len(r), 8))
        return Row(p, tuple(r), span)

    def encode_target(self, prompt: str, target: str, slot: str = "") -> Row:
        """A continuation without end of turn (a harmful target such as "Sure, here is ...")."""
        lead = self.formatter.assistant_lead
        t = list(self.tokenizer(lead + target.lstrip() if lead else target, add_special_tokens=False)["input_ids"])
        require(len(t) > 0, f"the target {target[:40]!r} tokenises to nothing; give a non-empty target", ConfigError)
        p, span = self._prompt(prompt, slot, max(self.max_len - len(t), 8))
        return Row(p, tuple(t), span)


def pad_rows(rows: Sequence[Row], pad_id: int, width: int | None = None) -> dict[str, torch.Tensor]:
    """Right-padded ``input_ids``, ``attention_mask``, ``labels`` (response only) and ``prompt_mask`` (the
    positions an adversary perturbs: the prompt, or a row's ``perturb`` slot)."""
    width = width or max(len(r.ids) for r in rows)
    n = len(rows)
    ids = torch.full((n, width), pad_id, dtype=torch.long)
    mask = torch.zeros((n, width), dtype=torch.long)
    labels = torch.full((n, width), IGNORE_INDEX, dtype=torch.long)
    pmask = torch.zeros((n, width), dtype=torch.bool)
    for i, r in enumerate(rows):
        a, b = len(r.prompt_ids), len(r.ids)
        ids[i, :b] = torch.tensor(r.ids)
        mask[i, :b] = 1
        labels[i, a:b] = torch.tensor(r.response_ids)
        lo, hi = r.perturb or (0, a)
        pmask[i, lo:hi] = True
    return {"input_ids": ids, "attention_mask": mask, "labels": labels, "prompt_mask": pmask}
