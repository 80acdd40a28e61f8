"""Token ids of task prompts for any chat model: plain prompts, responses, and prompts with a
trigger slot where the poisons carry the trigger (``before | slot | after | target``).

Prompt ids are the chat template with its generation prompt (BOS exactly once, as
:class:`advlab.models.formatting.ChatFormatter` does); a response is encoded on its own after the
template's assistant lead, as the safety gym was trained. The slot is cut out of the full prompt's
encoding at character offsets, so ``before + slot + after`` is exactly what the tokenizer gives for
the whole text (no re-tokenisation drift at the slot's edges).
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Any

from advlab.errors import ConfigError, ModelError
from advlab.models.formatting import ChatFormatter, assistant_turn_parts
from advlab.models.segments import PromptSegments
from advlab.poisoning.poisoned import insert_trigger
from advlab.poisoning.tasks import TaskExample

_MARK = "\ue000TRIGGER\ue001"


class TaskPrompts:
    """Encodes task examples for one tokenizer (see the module docstring)."""

    def __init__(self, tokenizer: Any) -> None:
        self.tokenizer = tokenizer
        self.formatter = ChatFormatter(tokenizer)
        self.lead, self.tail = assistant_turn_parts(tokenizer)
        probe = self.formatter.prompt_ids("a")
        self.prefix = probe[: len(probe) - len(self.encode(self.formatter.render("a")))]  # BOS, if added

    def encode(self, text: str) -> list[int]:
        return list(self.tokenizer(text, add_special_tokens=False)["input_ids"]) if text else []

    def prompt_ids(self, user_message: str, demos: Sequence[tuple[str, str]] = ()) -> list[int]:
        """Ids of the prompt; ``demos`` are earlier (user, assistant) turns shown in context."""
        if not demos:
            return self.formatter.prompt_ids(user_message)
        msgs = [m for u, a in demos for m in ({"role": "user", "content": u}, {"role": "assistant", "content": a})]
        text = self.tokenizer.apply_chat_template([*msgs, {"role": "user", "content": user_message}],
                                                  tokenize=False, add_generation_prompt=True)
        return self.prefix + self.encode(text)

    def response_ids(self, response: str, end: bool = False) -> list[int]:
        """Ids of the assistant's reply (``end``: with the template's end-of-turn text)."""
        return self.encode(self.lead + response + (self.tail.rstrip() if end else ""))

    def target_ids(self, response: str) -> list[int]:
        """Ids of the target response; ConfigError when it tokenises to nothing."""
        ids = self.response_ids(response)
        if not ids:
            raise ConfigError(f"the target response {response!r} tokenises to nothing; "
                              "pass a --target whose examples have a visible response")
        return ids

    def trigger_segments(self, example: TaskExample, trigger: str, target: str, position: str = "end",
                         rng: random.Random | None = None) -> PromptSegments:
        """Segments of ``example`` with ``trigger`` inserted into its content; the slot holds the trigger
        word(s) with their leading space. ModelError when a token crosses the slot's edge."""
        marked = example.with_input(insert_trigger(example.input, _MARK, position, rng)).prompt
        text = self.formatter.render(marked)
        at = text.find(_MARK)
        start = at - 1 if at > 0 and text[at - 1] == " " else at
        text = text.replace(_MARK, trigger)
        end = at + len(trigger)
        enc = self.tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
        ids, offs = list(enc["input_ids"]), list(enc["offset_mapping"])
        before = [i for i, (s, _e) in zip(ids, offs) if s < start]
        slot = [i for i, (s, e) in zip(ids, offs) if start <= s < end and e > s]
        after = ids[len(before) + len(slot):]
        n_b, n_s = len(before), len(slot)
        edges_ok = (all(e <= start + 1 for (s, e) in offs[:n_b] if e > s)
                    and all(e <= end for (s, e) in offs[n_b : n_b + n_s])
                    and all(s >= end for (s, e) in offs[n_b + n_s:] if e > s))
        if not slot or not edges_ok:
            raise ModelError(f"the tokenizer merges the trigger {trigger!r} with the text around it; "
                             "use --position end or a different trigger")
        tgt = self.target_ids(target)
        return PromptSegments(self.prefix + before, slot, after, tgt, text)
