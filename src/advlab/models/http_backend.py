"""A model behind an OpenAI-compatible ``POST /v1/chat/completions`` endpoint (stdlib urllib only)."""

from __future__ import annotations

import json
import os
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from typing import Any

from advlab.errors import ConfigError
from advlab.models.chat_api import BackendError, Message, check_generation_args, validate_messages


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
        check_generation_args(max_new_tokens, temperature)
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


class NamedBackend:
    """A backend whose :class:`BackendError` messages name the command-line option that configured it."""

    def __init__(self, backend: Any, option: str) -> None:
        self.backend, self.option, self.name = backend, option, getattr(backend, "name", option)

    def _call(self, fn: Callable[..., Any], *args: Any) -> Any:
        try:
            return fn(*args)
        except BackendError as exc:
            raise BackendError(f"{self.option}: " + str(exc).replace("--base-url", self.option)) from None

    def chat(self, messages: Any, max_new_tokens: int = 150, temperature: float = 0.0, seed: int | None = None) -> str:
        return self._call(self.backend.chat, messages, max_new_tokens, temperature, seed)

    def chat_batch(
        self, conversations: Any, max_new_tokens: int = 150, temperature: float = 0.0, seed: int | None = None
    ) -> list[str]:
        return self._call(self.backend.chat_batch, conversations, max_new_tokens, temperature, seed)

    def __repr__(self) -> str:
        return f"{self.option} {self.backend!r}"
