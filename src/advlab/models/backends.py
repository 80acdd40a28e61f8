"""Chat backends: one interface for a local HF chat model and an OpenAI-compatible HTTP endpoint.

PAIR's attacker, target and judge, AutoDAN's rephrasing mutation and the LLM rating judge all talk
to a model through :class:`ChatBackend`::

    backend.chat([{"role": "user", "content": "Hi"}], max_new_tokens=64, temperature=0.0, seed=0)

``temperature == 0`` means greedy decoding; ``temperature > 0`` samples, and the same ``seed``
gives the same text on the same machine. ``chat_batch`` answers several conversations at once
(every backend here has it; :func:`chat_many` falls back to a loop for backends that do not).
"""

from __future__ import annotations

import hashlib
import json
import os
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from advlab.errors import AdvlabError, ConfigError

Message = dict[str, str]
ROLES = ("system", "user", "assistant")


class BackendError(AdvlabError):
    """A chat backend that cannot answer (unreachable endpoint, rejected request, bad reply)."""


@runtime_checkable
class ChatBackend(Protocol):
    """Anything that answers a chat conversation with text."""

    def chat(
        self,
        messages: list[Message],
        max_new_tokens: int = 150,
        temperature: float = 0.0,
        seed: int | None = None,
    ) -> str: ...


def validate_messages(messages: Any) -> list[Message]:
    """Check an OpenAI-style message list: non-empty; each has a role (system, user, assistant) and text."""
    if not isinstance(messages, list) or not messages:
        raise ConfigError("messages must be a non-empty list of {'role', 'content'} dicts")
    out = []
    for i, m in enumerate(messages):
        if not isinstance(m, dict) or m.get("role") not in ROLES or not isinstance(m.get("content"), str):
            raise ConfigError(
                f"messages[{i}] must be a dict with role in {ROLES} and string content; got {str(m)[:80]!r}"
            )
        out.append({"role": m["role"], "content": m["content"]})
    return out


def _check_generation_args(max_new_tokens: int, temperature: float) -> None:
    if not isinstance(max_new_tokens, int) or max_new_tokens < 1:
        raise ConfigError(f"max_new_tokens must be a positive integer; got {max_new_tokens!r}")
    if not (temperature >= 0.0):
        raise ConfigError(f"temperature must be >= 0 (0 = greedy); got {temperature!r}")


def chat_many(
    backend: ChatBackend,
    conversations: list[list[Message]],
    max_new_tokens: int = 150,
    temperature: float = 0.0,
    seed: int | None = None,
) -> list[str]:
    """Answer several conversations: one batched call when the backend has ``chat_batch``, else a loop.

    In the loop, conversation ``i`` is sampled with seed ``seed + i`` (so it stays reproducible).
    """
    if not conversations:
        return []
    batch = getattr(backend, "chat_batch", None)
    if callable(batch):
        return list(batch(conversations, max_new_tokens=max_new_tokens, temperature=temperature, seed=seed))
    return [
        backend.chat(
            c, max_new_tokens=max_new_tokens, temperature=temperature, seed=None if seed is None else seed + i
        )
        for i, c in enumerate(conversations)
    ]


# --------------------------------------------------------------------------------------------- local HF


@dataclass
class Completion:
    """One generated answer with its token accounting (used by the local server for ``usage``)."""

    text: str
    prompt_tokens: int
    completion_tokens: int
    finish_reason: str  # "stop" (end-of-turn token) or "length" (max_new_tokens reached)


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
        """Answer a batch of conversations (left-padded); returns the text and token counts of each."""
        import torch

        _check_generation_args(max_new_tokens, temperature)
        prompts = [self.prompt_ids(c) for c in conversations]
        tok, model = self.tokenizer, self.model
        device = next(model.parameters()).device
        pad_id = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
        if pad_id is None:
            pad_id = 0
        width = max(len(p) for p in prompts)
        ids = torch.full((len(prompts), width), pad_id, dtype=torch.long)
        mask = torch.zeros((len(prompts), width), dtype=torch.long)
        for i, p in enumerate(prompts):
            ids[i, width - len(p) :] = torch.tensor(p, dtype=torch.long)
            mask[i, width - len(p) :] = 1
        gen_kwargs: dict[str, Any] = {
            "max_new_tokens": max_new_tokens,
            "pad_token_id": pad_id,
            "do_sample": temperature > 0,
        }
        if temperature > 0:
            gen_kwargs.update(temperature=float(temperature), top_k=0, top_p=1.0)
        else:
            gen_kwargs.update(temperature=None, top_k=None, top_p=None)
        devices = [device] if device.type == "cuda" else []
        with torch.random.fork_rng(devices=devices), torch.inference_mode():
            torch.manual_seed(0 if seed is None else int(seed))
            out = model.generate(input_ids=ids.to(device), attention_mask=mask.to(device), **gen_kwargs)
        new = out[:, width:].tolist()
        stop_ids = self._stop_ids()
        results = []
        for p, row in zip(prompts, new):
            cut = len(row)
            for j, t in enumerate(row):
                if t in stop_ids:
                    cut = j
                    break
            finish = "stop" if cut < len(row) else "length"
            text = tok.decode(row[:cut], skip_special_tokens=True)
            results.append(Completion(text.strip(), len(p), cut, finish))
        return results

    def _stop_ids(self) -> set[int]:
        ids: set[int] = set()
        eos = getattr(getattr(self.model, "generation_config", None), "eos_token_id", None)
        for e in eos if isinstance(eos, list) else [eos]:
            if e is not None:
                ids.add(int(e))
        if self.tokenizer.eos_token_id is not None:
            ids.add(int(self.tokenizer.eos_token_id))
        return ids

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


# ------------------------------------------------------------------------------------------ OpenAI HTTP


def chat_completions_url(base_url: str) -> str:
    """The ``/chat/completions`` URL for a base URL.

    ``http://host:port`` → ``http://host:port/v1/chat/completions``; ``.../v1`` (OpenAI's own
    convention) → ``.../v1/chat/completions``; a URL already ending in ``/chat/completions`` is kept.
    """
    parsed = urllib.parse.urlparse(base_url or "")
    if parsed.scheme not in ("http", "https") or not parsed.hostname:
        raise ConfigError(f"--base-url {base_url!r}: expected http(s)://host[:port][/v1]")
    if parsed.username or parsed.password:
        raise ConfigError(
            "--base-url must not contain credentials; put the API key in the environment variable"
        )
    path = parsed.path.rstrip("/")
    if path.endswith("/chat/completions"):
        pass
    elif path == "":
        path = "/v1/chat/completions"
    else:
        path = path + "/chat/completions"
    return urllib.parse.urlunparse(parsed._replace(path=path, params="", query="", fragment=""))


class OpenAIChatBackend:
    """A model behind an OpenAI-compatible ``POST /v1/chat/completions`` endpoint (stdlib urllib).

    The API key is read from the environment variable named by ``api_key_env`` at each request and
    sent as ``Authorization: Bearer``; it is never stored on the object, logged, or put in an error
    message (when the variable is unset no header is sent, which local servers accept). Transient
    failures (connection refused, timeouts, HTTP 408/409/429/5xx) are retried ``max_retries`` times
    with exponential backoff ``backoff * 2**attempt`` (capped at 30 s, honouring ``Retry-After``);
    then a :class:`BackendError` names the endpoint and the last problem. Other HTTP errors (400,
    401, 404, ...) fail at once.
    """

    RETRY_STATUS = frozenset({408, 409, 429, 500, 502, 503, 504})

    def __init__(
        self,
        base_url: str,
        model: str,
        api_key_env: str = "OPENAI_API_KEY",
        timeout: float = 60.0,
        max_retries: int = 3,
        backoff: float = 1.0,
    ) -> None:
        self.url = chat_completions_url(base_url)
        if not model or not isinstance(model, str):
            raise ConfigError(
                "--model-name must name the served model (e.g. gpt-4o-mini, or the local server's name)"
            )
        if not (timeout > 0):
            raise ConfigError(f"timeout must be > 0 seconds; got {timeout!r}")
        if not isinstance(max_retries, int) or max_retries < 0:
            raise ConfigError(f"max_retries must be an integer >= 0; got {max_retries!r}")
        if not (backoff >= 0):
            raise ConfigError(f"backoff must be >= 0 seconds; got {backoff!r}")
        self.model = model
        self.api_key_env = api_key_env
        self.timeout = float(timeout)
        self.max_retries = max_retries
        self.backoff = float(backoff)
        self.name = model
        self.requests_sent = 0  # HTTP attempts, retries included

    def __repr__(self) -> str:  # names the variable, never its value
        return f"OpenAIChatBackend(url={self.url!r}, model={self.model!r}, api_key_env={self.api_key_env!r})"

    def _headers(self) -> dict[str, str]:
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        key = os.environ.get(self.api_key_env) if self.api_key_env else None
        if key:
            headers["Authorization"] = f"Bearer {key}"
        return headers

    def _post(self, payload: dict[str, Any]) -> dict[str, Any]:
        body = json.dumps(payload).encode("utf-8")
        last = "no attempt made"
        for attempt in range(self.max_retries + 1):
            if attempt:
                time.sleep(self._delay(attempt - 1, None))
            req = urllib.request.Request(self.url, data=body, headers=self._headers(), method="POST")
            self.requests_sent += 1
            try:
                with urllib.request.urlopen(req, timeout=self.timeout) as resp:  # noqa: S310 - http(s) only
                    raw = resp.read()
            except urllib.error.HTTPError as exc:
                detail = _error_detail(exc)
                if exc.code in self.RETRY_STATUS:
                    last = f"HTTP {exc.code} {detail}"
                    retry_after = exc.headers.get("Retry-After") if exc.headers else None
                    if attempt < self.max_retries and retry_after:
                        time.sleep(self._delay(attempt, retry_after))
                    continue
                hint = ""
                if exc.code in (401, 403):
                    hint = f"; set the API key in the environment variable ${self.api_key_env}"
                elif exc.code == 404:
                    hint = "; check --base-url (it should end in /v1) and the model name"
                raise BackendError(
                    f"{self.url} refused the request: HTTP {exc.code} {detail}{hint}"
                ) from None
            except (urllib.error.URLError, TimeoutError, ConnectionError, OSError) as exc:
                reason = getattr(exc, "reason", exc)
                last = f"{type(reason).__name__}: {reason}"
                continue
            try:
                return json.loads(raw.decode("utf-8"))
            except (UnicodeDecodeError, json.JSONDecodeError):
                raise BackendError(
                    f"{self.url} answered with something that is not JSON: {raw[:80]!r}"
                ) from None
        raise BackendError(
            f"cannot reach {self.url} after {self.max_retries + 1} attempt(s) ({last}); "
            "check that the server is running and --base-url is right, then re-run to resume"
        )

    def _delay(self, attempt: int, retry_after: str | None) -> float:
        if retry_after:
            try:
                return min(30.0, max(0.0, float(retry_after)))
            except ValueError:
                pass
        return min(30.0, self.backoff * (2**attempt))

    def chat(
        self,
        messages: list[Message],
        max_new_tokens: int = 150,
        temperature: float = 0.0,
        seed: int | None = None,
    ) -> str:
        messages = validate_messages(messages)
        _check_generation_args(max_new_tokens, temperature)
        payload: dict[str, Any] = {
            "model": self.model,
            "messages": messages,
            "max_tokens": max_new_tokens,
            "temperature": float(temperature),
        }
        if seed is not None:
            payload["seed"] = int(seed)
        data = self._post(payload)
        try:
            content = data["choices"][0]["message"]["content"]
        except (KeyError, IndexError, TypeError):
            raise BackendError(
                f"{self.url} answered without choices[0].message.content: {str(data)[:120]}"
            ) from None
        return "" if content is None else str(content)

    def chat_batch(
        self,
        conversations: list[list[Message]],
        max_new_tokens: int = 150,
        temperature: float = 0.0,
        seed: int | None = None,
    ) -> list[str]:
        """One request per conversation (conversation ``i`` gets seed ``seed + i``)."""
        return [
            self.chat(c, max_new_tokens, temperature, None if seed is None else seed + i)
            for i, c in enumerate(conversations)
        ]


def _error_detail(exc: urllib.error.HTTPError) -> str:
    try:
        body = exc.read().decode("utf-8", "replace")
        msg = json.loads(body).get("error", {})
        msg = msg.get("message", "") if isinstance(msg, dict) else str(msg)
        return (msg or body)[:160].replace("\n", " ")
    except Exception:  # noqa: BLE001 - the detail is best effort
        return str(exc.reason)[:160]


def derive_seed(*parts: int) -> int:
    """A stable 31-bit seed from integers (for per-stream / per-iteration sampling seeds)."""
    digest = hashlib.sha256(",".join(str(int(p)) for p in parts).encode()).digest()
    return int.from_bytes(digest[:4], "big") & 0x7FFFFFFF


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
    from advlab.models import load_chat_model

    model, tokenizer = load_chat_model(value, device=device)
    return HFChatBackend(model, tokenizer, name=value)
