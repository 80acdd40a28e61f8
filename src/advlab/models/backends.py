"""Chat backends: one interface for a local HF chat model and an OpenAI-compatible HTTP endpoint.

PAIR's attacker, target and judge, AutoDAN's rephrasing mutation and the LLM rating judge all talk
to a model through :class:`ChatBackend`::

    backend.chat([{"role": "user", "content": "Hi"}], max_new_tokens=64, temperature=0.0, seed=0)

``temperature == 0`` means greedy decoding; ``temperature > 0`` samples, and the same ``seed``
gives the same text on the same machine. ``chat_batch`` answers several conversations at once
(every backend here has it; :func:`chat_many` falls back to a loop for backends that do not).
"""

from __future__ import annotations

from typing import Any

import torch

from advlab.errors import ConfigError
from advlab.models.chat import load_chat_model
from advlab.models.chat_api import (
    ROLES,
    BackendError,
    ChatBackend,
    Completion,
    Message,
    chat_many,
    check_generation_args,
    derive_seed,
    validate_messages,
)
from advlab.models.generation import greedy_generate, left_pad, model_device, pad_id_of, stop_token_ids
from advlab.models.http_backend import NamedBackend, OpenAIChatBackend, chat_completions_url

__all__ = [
    "ROLES",
    "BackendError",
    "ChatBackend",
    "Completion",
    "HFChatBackend",
    "Message",
    "NamedBackend",
    "OpenAIChatBackend",
    "backend_from_spec",
    "chat_completions_url",
    "chat_many",
    "derive_seed",
    "validate_messages",
]


def _cut(row: list[int], stop_ids: list[int]) -> list[int]:
    """The tokens of ``row`` before its first stop id."""
    return next((row[:j] for j, t in enumerate(row) if t in stop_ids), row)


def _merge_system(messages: list[Message]) -> list[Message]:
    """For templates without a system role: fold system text into the first user turn."""
    system = "\n\n".join(m["content"] for m in messages if m["role"] == "system")
    rest = [dict(m) for m in messages if m["role"] != "system"]
    if system:
        if rest and rest[0]["role"] == "user":
            rest[0]["content"] = f"{system}\n\n{rest[0]['content']}"
        else:
            rest.insert(0, {"role": "user", "content": system})
    return rest


class HFChatBackend:
    """A local HF causal LM behind the chat interface, prompted through its own chat template.

    Control tokens that appear inside message text (e.g. ``<|im_end|>`` in a model's reply) are
    encoded as ordinary text (transformers' ``sanitize_control_tokens``), so a message cannot
    forge a turn boundary. Generation: greedy when ``temperature == 0``, otherwise sampling with
    the torch RNG forked and seeded by ``seed`` (the global RNG is left untouched).
    """

    def __init__(self, model: Any, tokenizer: Any, name: str = "local") -> None:
        if getattr(tokenizer, "chat_template", None) is None:
            raise ConfigError(
                "the tokenizer has no chat template; use a chat model (or set tokenizer.chat_template)"
            )
        self.model = model
        self.tokenizer = tokenizer
        self.name = name

    def __repr__(self) -> str:
        return f"HFChatBackend(name={self.name!r}, model={type(self.model).__name__})"

    # -- prompt ids
    def _template_ids(self, messages: list[Message]) -> list[int]:
        tok = self.tokenizer
        kwargs = {"add_generation_prompt": True, "tokenize": True, "return_dict": True}
        try:
            out = tok.apply_chat_template(messages, sanitize_control_tokens=True, **kwargs)
        except TypeError:  # older transformers without sanitize_control_tokens
            out = tok.apply_chat_template(messages, **kwargs)
        ids = list(out["input_ids"] if isinstance(out, dict) or hasattr(out, "keys") else out)
        # BOS exactly once, as the chat formatter does: the tokenizer's own leading specials are
        # added unless the template already wrote them
        prefix = self._special_prefix()
        if prefix and ids[: len(prefix)] != prefix:
            ids = prefix + ids
        return ids

    def _special_prefix(self) -> list[int]:
        if not hasattr(self, "_prefix"):
            plain = list(self.tokenizer("a", add_special_tokens=False)["input_ids"])
            full = list(self.tokenizer("a", add_special_tokens=True)["input_ids"])
            self._prefix: list[int] = []
            for i in range(len(full) - len(plain) + 1):
                if full[i : i + len(plain)] == plain:
                    self._prefix = full[:i]
                    break
        return self._prefix

    def prompt_ids(self, messages: list[Message]) -> list[int]:
        """Token ids of the conversation with the assistant header appended (what the model continues)."""
        messages = validate_messages(messages)
        try:
            return self._template_ids(messages)
        except Exception as exc:  # noqa: BLE001 - templates raise jinja errors for unsupported roles
            if any(m["role"] == "system" for m in messages):
                return self._template_ids(_merge_system(messages))
            raise ConfigError(f"the chat template cannot render these messages: {exc}") from exc

    # -- generation
    def generate(
        self,
        conversations: list[list[Message]],
        max_new_tokens: int = 150,
        temperature: float = 0.0,
        seed: int | None = None,
    ) -> list[Completion]:
        """Answer a batch of conversations (left-padded); returns the text and token counts of each.

        Greedy (``temperature == 0``) through :func:`~advlab.models.generation.greedy_generate`; sampling
        through ``model.generate`` with the torch RNG forked and seeded. Rows are cut at the first stop id
        (:func:`~advlab.models.generation.stop_token_ids`)."""
        check_generation_args(max_new_tokens, temperature)
        prompts = [self.prompt_ids(c) for c in conversations]
        tok, model = self.tokenizer, self.model
        device = model_device(model)
        stop_ids = stop_token_ids(model, tok)
        pad_id = pad_id_of(tok)
        if temperature > 0:
            ids, mask = left_pad(prompts, pad_id, device)
            devices = [device] if device.type == "cuda" else []
            with torch.random.fork_rng(devices=devices), torch.inference_mode():
                torch.manual_seed(0 if seed is None else int(seed))
                out = model.generate(input_ids=ids, attention_mask=mask, max_new_tokens=max_new_tokens,
                                     pad_token_id=pad_id, do_sample=True, temperature=float(temperature),
                                     top_k=0, top_p=1.0)
            rows = [_cut(r, stop_ids) for r in out[:, ids.shape[1] :].tolist()]
        else:
            rows = greedy_generate(model, input_ids=prompts, max_new_tokens=max_new_tokens, eos_ids=stop_ids,
                                   pad_id=pad_id)
        results = []
        for p, row in zip(prompts, rows):
            finish = "length" if len(row) >= max_new_tokens else "stop"
            results.append(Completion(tok.decode(row, skip_special_tokens=True).strip(), len(p), len(row), finish))
        return results

    def chat(
        self,
        messages: list[Message],
        max_new_tokens: int = 150,
        temperature: float = 0.0,
        seed: int | None = None,
    ) -> str:
        return self.generate([messages], max_new_tokens, temperature, seed)[0].text

    def chat_batch(
        self,
        conversations: list[list[Message]],
        max_new_tokens: int = 150,
        temperature: float = 0.0,
        seed: int | None = None,
    ) -> list[str]:
        if not conversations:
            return []
        return [c.text for c in self.generate(conversations, max_new_tokens, temperature, seed)]


def backend_from_spec(
    spec: str | None,
    *,
    local: ChatBackend | None = None,
    model_name: str | None = None,
    api_key_env: str = "OPENAI_API_KEY",
    device: Any = "auto",
    timeout: float = 60.0,
    max_retries: int = 3,
) -> ChatBackend:
    """A backend from a command-line value (for PAIR's ``--attacker`` / ``--judge``, AutoDAN's rephraser).

    ``None``/``""``/``"self"`` → ``local`` (the attacked model itself); ``http(s)://...`` → an
    :class:`OpenAIChatBackend` (``model_name`` required, key from ``$api_key_env``); anything else →
    a local model directory or hub id loaded with :func:`advlab.models.load_chat_model`.
    URLs and names are checked before any model is loaded.
    """
    value = (spec or "").strip()
    if value in ("", "self"):
        if local is None:
            raise ConfigError("no local model to use as 'self'; pass a model directory or an http(s) URL")
        return local
    if value.startswith(("http://", "https://")):
        if not model_name:
            raise ConfigError(f"{value}: an HTTP backend needs the served model name; pass it with the URL")
        return OpenAIChatBackend(value, model_name, api_key_env=api_key_env, timeout=timeout,
                                 max_retries=max_retries)
    model, tokenizer = load_chat_model(value, device=device)
    return HFChatBackend(model, tokenizer, name=value)
