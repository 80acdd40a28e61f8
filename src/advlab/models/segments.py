"""Token-id segments of a chat prompt with an attack slot.

``before | slot | after | target``: ``before`` is everything up to the attack slot
(system prompt, chat-template header, the request if the slot is a suffix), ``slot`` the
tokens an attack may change (a suffix, a prefix or the whole request), ``after`` the rest
of the user turn and the assistant header, ``target`` the response the attack aims for.
The formatter guarantees that ``before + slot + after + target`` is exactly what the
tokenizer produces for the full text.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class PromptSegments:
    before: list[int]
    slot: list[int]
    after: list[int]
    target: list[int] = field(default_factory=list)
    text: str = ""  # the full formatted text (prompt + target), for logs

    @property
    def prompt_ids(self) -> list[int]:
        """The ids the model sees as its input (without the target)."""
        return [*self.before, *self.slot, *self.after]

    @property
    def input_ids(self) -> list[int]:
        """The ids of prompt and target together (for teacher-forced losses)."""
        return [*self.before, *self.slot, *self.after, *self.target]

    @property
    def slot_range(self) -> tuple[int, int]:
        start = len(self.before)
        return start, start + len(self.slot)

    @property
    def target_range(self) -> tuple[int, int]:
        start = len(self.before) + len(self.slot) + len(self.after)
        return start, start + len(self.target)

    def with_slot(self, slot: list[int]) -> PromptSegments:
        return PromptSegments(list(self.before), list(slot), list(self.after), list(self.target), "")
