"""Chat formatting with an attack slot: ``before | slot | after | target`` token segments.

The chat template is rendered with a sentinel in place of the slot; the text is split around it and
each piece is tokenised. The segments are accepted only when ``before + slot + after + target`` equals
the tokenizer's ids for the full text (with the tokenizer's BOS added exactly once: not when the
template already writes it). When separate pieces do not reproduce the full ids, two remedies that
never change the text are tried: splitting the full encoding at the piece boundaries (character
offsets), and moving whitespace at a boundary into the right-hand piece (GPT-2 style tokenizers
attach a space to the following word). If a token still crosses a boundary, :class:`ModelError`
names it instead of silently misaligning.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from advlab.errors import ConfigError, ModelError
from advlab.models.segments import PromptSegments

SLOT_MODES = ("suffix", "prefix", "request")
_SLOT = "\ue000ADVLAB_SLOT\ue001"
_MARK = "\ue000ADVLAB_REPLY\ue001"


def _render(tokenizer: Any, messages: list[dict[str, str]], add_generation_prompt: bool) -> str:
    try:
        out = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=add_generation_prompt)
    except Exception as exc:  # noqa: BLE001 - jinja raises TemplateError, others ValueError
        msg = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        if any(m["role"] == "system" for m in messages):
            raise ConfigError(
                f"the chat template cannot render a system prompt ({msg}); leave the system prompt out"
            ) from exc
        raise ModelError(f"the chat template failed to render ({msg}); pass a working --chat-template") from exc
    return out if isinstance(out, str) else out[0]


def assistant_turn_parts(tokenizer: Any, system_prompt: str | None = None) -> tuple[str, str]:
    """``(lead, tail)`` of an assistant reply: text the template puts between the generation prompt and
    the reply (llama-2: ``" "``), and the text right after the reply (``"<|eot_id|>"``, ``" </s>"``)."""
    msgs = _messages(system_prompt, "hello")
    prompt = _render(tokenizer, msgs, True)
    conv = _render(tokenizer, [*msgs, {"role": "assistant", "content": _MARK}], False)
    at = conv.find(_MARK)
    if at < 0:
        return "", ""
    lead = conv[len(prompt) : at] if conv.startswith(prompt) and at >= len(prompt) else ""
    return lead, conv[at + len(_MARK) :]


def _messages(system_prompt: str | None, content: str) -> list[dict[str, str]]:
    msgs = [{"role": "system", "content": system_prompt}] if system_prompt else []
    return [*msgs, {"role": "user", "content": content}]


@dataclass
class _Tok:
    """Tokenizer facts the formatter needs: the ids it adds in front of a text, and the BOS string."""

    prefix: list[int]
    bos: str | None


def _tokenizer_prefix(tokenizer: Any) -> _Tok:
    plain = tokenizer("a", add_special_tokens=False)["input_ids"]
    full = tokenizer("a", add_special_tokens=True)["input_ids"]
    prefix: list[int] = []
    for i in range(len(full) - len(plain) + 1):
        if full[i : i + len(plain)] == plain:
            prefix = list(full[:i])
            break
    return _Tok(prefix=prefix, bos=getattr(tokenizer, "bos_token", None))


class ChatFormatter:
    """Places an attack slot in the user turn of a chat template and returns verified token segments.

    ``slot``: ``"suffix"`` (request + separator + slot), ``"prefix"`` (slot + separator + request) or
    ``"request"`` (the slot is the whole user message). ``system_prompt`` is rendered by the template
    when given (templates without system support still work when it is ``None``).
    """

    def __init__(
        self, tokenizer: Any, system_prompt: str | None = None, slot: str = "suffix", separator: str = " "
    ) -> None:
        if slot not in SLOT_MODES:
            raise ConfigError(f"slot={slot!r}: unknown slot mode; use one of {', '.join(SLOT_MODES)}")
        if not getattr(tokenizer, "chat_template", None):
            raise ModelError("the tokenizer has no chat template; load it with load_chat_model(chat_template=...)")
        self.tokenizer = tokenizer
        self.system_prompt = system_prompt or None
        self.slot = slot
        self.separator = separator
        self._tok = _tokenizer_prefix(tokenizer)
        self.assistant_lead, _ = assistant_turn_parts(tokenizer, self.system_prompt)

    # ---- text -------------------------------------------------------------------------------
    def render(self, content: str) -> str:
        """The prompt text (with generation prompt) for one user message."""
        return _render(self.tokenizer, _messages(self.system_prompt, content), True)

    def _content(self, request: str, slot_text: str, slot: str) -> str:
        if self.slot == "suffix":
            return f"{request}{self.separator}{slot}"
        if self.slot == "prefix":
            return f"{slot}{self.separator}{request}"
        return slot

    def pieces(self, request: str, slot_text: str, target: str = "") -> tuple[str, str, str, str]:
        """``(before, slot, after, target)`` texts whose concatenation is the rendered prompt + target."""
        if self.slot == "request" and not slot_text:
            slot_text = request
        if not slot_text:
            raise ConfigError("empty slot text; pass the attack's initial string (e.g. '! ! ! ! !')")
        if self.assistant_lead and target[:1].isspace():
            target = target.lstrip()  # the template already puts its own space before the reply
        marked = self.render(self._content(request, slot_text, _SLOT))
        if marked.count(_SLOT) != 1:
            raise ModelError("the chat template drops or repeats the user message; pass a standard --chat-template")
        before, after = marked.split(_SLOT)
        real = self.render(self._content(request, slot_text, slot_text))
        if before + slot_text + after != real:
            raise ConfigError(
                "the chat template changes the user message around the slot (e.g. trims or rewrites it); "
                "strip leading/trailing whitespace from the request and slot text"
            )
        return before, slot_text, after, (self.assistant_lead + target) if target else ""

    # ---- ids --------------------------------------------------------------------------------
    def _encode(self, text: str) -> list[int]:
        return list(self.tokenizer(text, add_special_tokens=False)["input_ids"]) if text else []

    def _prefix_for(self, text: str) -> list[int]:
        """The tokenizer's own leading specials (BOS), unless the template already wrote them."""
        if self._tok.bos and text.startswith(self._tok.bos):
            return []
        return list(self._tok.prefix)

    def prompt_ids(self, request: str) -> list[int]:
        """Token ids of the prompt for plain generation (no slot), BOS exactly once."""
        text = self.render(request)
        return self._prefix_for(text) + self._encode(text)

    def segments(self, request: str, slot_text: str, target: str = "") -> PromptSegments:
        """Verified ``before | slot | after | target`` ids for ``request`` with ``slot_text`` in the slot."""
        if not isinstance(request, str) or (self.slot != "request" and not request.strip()):
            raise ConfigError("empty request; every behaviour needs request text")
        texts = list(self.pieces(request, slot_text, target))
        full_text = "".join(texts)
        prefix = self._prefix_for(full_text)
        full = prefix + self._encode(full_text)
        crossing: tuple[int, str] | None = None
        for shift in (False, True):
            cand = _shift_whitespace(texts) if shift else texts
            if shift and cand == texts:
                break
            ids = [self._encode(t) for t in cand]
            ids[0] = prefix + ids[0]
            if sum(ids, []) == full:
                return PromptSegments(*ids, text=full_text)
            split = self._split_by_offsets(cand, prefix)
            if isinstance(split, list) and sum(split, []) == full:
                return PromptSegments(*split, text=full_text)
            if isinstance(split, tuple):
                crossing = split
        raise ModelError(self._merge_message(texts, crossing))

    def slot_ids(self, slot_text: str) -> list[int]:
        """Token ids of a slot text on its own (what an attack edits); see :meth:`segments` for context."""
        return self._encode(slot_text)

    def rebuild(self, segments: PromptSegments, slot: list[int]) -> PromptSegments:
        """The same prompt with new slot ids (``PromptSegments.with_slot``); ``text`` is cleared."""
        out = segments.with_slot(slot)
        out.text = ""
        return out

    def retokenizes(self, segments: PromptSegments) -> bool:
        """Whether decoding the segments and re-encoding the text gives the same ids (GCG's filter)."""
        text = self.tokenizer.decode(segments.input_ids, skip_special_tokens=False, clean_up_tokenization_spaces=False)
        return self._prefix_for(text) + self._encode(text) == segments.input_ids

    # ---- helpers ----------------------------------------------------------------------------
    def _split_by_offsets(self, texts: list[str], prefix: list[int]) -> list[list[int]] | tuple[int, str] | None:
        """Split the full encoding at the character boundaries of ``texts``. Returns the parts, or
        ``(boundary index, token)`` when a token crosses a boundary, or None without offsets."""
        full_text = "".join(texts)
        try:
            enc = self.tokenizer(full_text, add_special_tokens=False, return_offsets_mapping=True)
        except (NotImplementedError, ValueError, TypeError):
            return None
        ids, offsets = list(enc["input_ids"]), list(enc["offset_mapping"])
        # effective span of a token: from the end of the previous token (gaps such as trimmed
        # leading spaces belong to the token that follows them) to its own end
        ends, prev = [], 0
        for _start, end in offsets:
            end = max(end, prev)
            ends.append(end)
            prev = end
        bounds, acc = [], 0
        for t in texts[:-1]:
            acc += len(t)
            bounds.append(acc)
        cuts = [0]
        for j, b in enumerate(bounds):
            k = sum(1 for e in ends if e <= b)
            start = ends[k - 1] if k > 0 else 0
            if k < len(ids) and start != b:  # token k starts before b and ends after it
                return j, str(self.tokenizer.convert_ids_to_tokens(ids[k]))
            cuts.append(max(k, cuts[-1]))
        cuts.append(len(ids))
        parts = [ids[cuts[i] : cuts[i + 1]] for i in range(len(texts))]
        parts[0] = prefix + parts[0]
        return parts

    def _merge_message(self, texts: list[str], crossing: tuple[int, str] | None = None) -> str:
        names = ("before|slot", "slot|after", "after|target")
        where = None
        if crossing is not None:
            where = crossing[0]
        else:
            for i in range(3):
                left, right = "".join(texts[: i + 1]), "".join(texts[i + 1 :])
                if left and right and self._encode(left) + self._encode(right) != self._encode(left + right):
                    where = i
                    break
        if where is None:
            return "the segments do not reproduce the tokenizer's ids for the full text; change the slot text"
        left, right = "".join(texts[: where + 1]), "".join(texts[where + 1 :])
        token = f" (token {crossing[1]!r})" if crossing is not None else ""
        fix = "change the start of the target" if where == 2 else "use a separator (e.g. ' ') or change the slot text"
        return (
            f"token merge across the {names[where]} boundary at {left[-12:]!r}|{right[:12]!r}{token}: the "
            f"tokenizer joins text from both sides into one token; {fix}"
        )


def _shift_whitespace(texts: list[str]) -> list[str]:
    """Move trailing whitespace of each non-empty piece to the start of the next piece (text unchanged)."""
    out = list(texts)
    for i in range(len(out) - 1):
        stripped = out[i].rstrip(" ")
        if stripped != out[i] and stripped and out[i + 1]:
            out[i + 1] = out[i][len(stripped) :] + out[i + 1]
            out[i] = stripped
    return out
