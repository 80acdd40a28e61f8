"""A small OpenAI-compatible chat server for a local model (stdlib ``http.server``, threaded).

It serves any chat model that :func:`advlab.models.load_chat_model` reads (the safety gym, for
one) so that everything speaking the OpenAI protocol — :class:`~advlab.models.backends.OpenAIChatBackend`,
PAIR against a "remote" target, other tools — can use it::

    port = serve("runs/gym", port=0)          # background thread, returns the bound port
    # POST http://127.0.0.1:{port}/v1/chat/completions  {"model": ..., "messages": [...]}
    stop(port)

Endpoints: ``POST /v1/chat/completions`` (``messages``, ``max_tokens``, ``temperature``, ``seed``;
no streaming, ``n`` = 1) and ``GET /v1/models``. Requests are validated (OpenAI-style JSON error,
HTTP 400), bodies are capped at 1 MiB and ``max_tokens`` at ``max_tokens_cap``; generations run
one at a time (a lock), the HTTP threads only wait. It binds to loopback unless ``allow_remote``
is set. When ``api_key_env`` is given, requests must carry ``Authorization: Bearer <that key>``.
The server logs method, path and status only — never headers or bodies.
"""

from __future__ import annotations

import argparse
import hmac
import ipaddress
import json
import logging
import os
import sys
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from advlab.errors import AdvlabError, ConfigError
from advlab.models.backends import HFChatBackend, validate_messages
from advlab.models.chat import load_chat_model
from advlab.utils import resolve_device

log = logging.getLogger("advlab.serve")
MAX_BODY = 1 << 20


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class _ApiError(Exception):
    def __init__(self, status: int, message: str, kind: str = "invalid_request_error") -> None:
        super().__init__(message)
        self.status, self.message, self.kind = status, message, kind


class ChatServer:
    """An OpenAI-compatible server around a :class:`HFChatBackend`; ``start()`` / ``stop()`` or ``with``."""

    def __init__(
        self,
        backend: HFChatBackend,
        model_name: str = "local",
        host: str = "127.0.0.1",
        port: int = 0,
        api_key_env: str | None = None,
        max_tokens_cap: int = 1024,
        allow_remote: bool = False,
    ) -> None:
        if not allow_remote and not _is_loopback(host):
            raise ConfigError(
                f"--host {host}: serving beyond loopback needs allow_remote=True; use 127.0.0.1"
            )
        if not isinstance(port, int) or not 0 <= port <= 65535:
            raise ConfigError(f"--port {port!r}: use 0 (any free port) or 1-65535")
        if max_tokens_cap < 1:
            raise ConfigError(f"max_tokens_cap must be >= 1; got {max_tokens_cap}")
        if api_key_env is not None and not os.environ.get(api_key_env):
            raise ConfigError(
                f"api_key_env={api_key_env!r}: the environment variable is unset or empty; set it"
            )
        self.backend = backend
        self.model_name = model_name
        self.api_key_env = api_key_env
        self.max_tokens_cap = max_tokens_cap
        self._gen_lock = threading.Lock()
        self._httpd = ThreadingHTTPServer((host, port), self._handler_class())
        self._httpd.daemon_threads = True
        self._thread: threading.Thread | None = None
        self.requests_served = 0

    def __repr__(self) -> str:
        return f"ChatServer(url={self.url!r}, model={self.model_name!r})"

    @property
    def host(self) -> str:
        return str(self._httpd.server_address[0])

    @property
    def port(self) -> int:
        return int(self._httpd.server_address[1])

    @property
    def url(self) -> str:
        """Base URL for :class:`OpenAIChatBackend` (``http://host:port/v1``)."""
        return f"http://{self.host}:{self.port}/v1"

    def start(self) -> ChatServer:
        """Serve in a daemon thread; returns self (``.port`` is the bound port)."""
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._httpd.serve_forever,
                kwargs={"poll_interval": 0.1},
                daemon=True,
                name=f"advlab-serve-{self.port}",
            )
            self._thread.start()
        return self

    def serve_forever(self) -> None:
        """Serve in this thread until interrupted (Ctrl-C)."""
        try:
            self._httpd.serve_forever(poll_interval=0.2)
        except KeyboardInterrupt:
            pass
        finally:
            self._httpd.server_close()

    def stop(self) -> None:
        """Stop serving, close the socket and join the thread."""
        if self._thread is not None:
            self._httpd.shutdown()
            self._thread.join(timeout=10)
            self._thread = None
        self._httpd.server_close()

    def __enter__(self) -> ChatServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ---------------------------------------------------------------- request handling (library level)
    def complete(self, body: dict[str, Any]) -> dict[str, Any]:
        """Answer one ``/v1/chat/completions`` request body (validated here)."""
        if not isinstance(body, dict):
            raise _ApiError(400, "the request body must be a JSON object")
        try:
            messages = validate_messages(body.get("messages"))
        except ConfigError as exc:
            raise _ApiError(400, str(exc)) from None
        if body.get("stream"):
            raise _ApiError(400, "stream=true is not supported by this server")
        if body.get("n", 1) != 1:
            raise _ApiError(400, "only n=1 is supported")
        max_tokens = body.get("max_tokens", body.get("max_completion_tokens", 256))
        if not isinstance(max_tokens, int) or isinstance(max_tokens, bool) or max_tokens < 1:
            raise _ApiError(400, f"max_tokens must be a positive integer; got {max_tokens!r}")
        max_tokens = min(max_tokens, self.max_tokens_cap)
        temperature = body.get("temperature", 0.0)
        if temperature is None:
            temperature = 0.0
        if (
            not isinstance(temperature, (int, float))
            or isinstance(temperature, bool)
            or not 0 <= temperature <= 2
        ):
            raise _ApiError(400, f"temperature must be a number in [0, 2]; got {temperature!r}")
        seed = body.get("seed")
        if seed is not None and (not isinstance(seed, int) or isinstance(seed, bool)):
            raise _ApiError(400, f"seed must be an integer; got {seed!r}")
        with self._gen_lock:
            out = self.backend.generate([messages], max_tokens, float(temperature), seed)[0]
            self.requests_served += 1
        return {
            "id": f"chatcmpl-{uuid.uuid4().hex[:24]}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": self.model_name,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": out.text},
                    "finish_reason": out.finish_reason,
                }
            ],
            "usage": {
                "prompt_tokens": out.prompt_tokens,
                "completion_tokens": out.completion_tokens,
                "total_tokens": out.prompt_tokens + out.completion_tokens,
            },
        }

    def _authorised(self, header: str | None) -> bool:
        if self.api_key_env is None:
            return True
        key = os.environ.get(self.api_key_env, "")
        given = header[7:] if header and header.startswith("Bearer ") else ""
        return bool(key) and hmac.compare_digest(given.encode(), key.encode())

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            server_version = "advlab-serve"

            def log_message(self, fmt: str, *args: Any) -> None:  # method/path/status only
                log.debug("%s %s", self.address_string(), fmt % args)

            def _send(self, status: int, payload: dict[str, Any]) -> None:
                data = json.dumps(payload).encode("utf-8")
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _error(self, err: _ApiError) -> None:
                self._send(err.status, {"error": {"message": err.message, "type": err.kind}})

            def do_GET(self) -> None:  # noqa: N802 - http.server naming
                if self.path.rstrip("/") == "/v1/models":
                    self._send(
                        200,
                        {
                            "object": "list",
                            "data": [{"id": server.model_name, "object": "model", "owned_by": "advlab"}],
                        },
                    )
                else:
                    self._error(_ApiError(404, f"no route GET {self.path}; use POST /v1/chat/completions"))

            def do_POST(self) -> None:  # noqa: N802 - http.server naming
                try:
                    if self.path.rstrip("/") != "/v1/chat/completions":
                        raise _ApiError(404, f"no route POST {self.path}; use /v1/chat/completions")
                    if not server._authorised(self.headers.get("Authorization")):
                        raise _ApiError(401, "missing or wrong API key", "authentication_error")
                    try:
                        length = int(self.headers.get("Content-Length", "0"))
                    except ValueError:
                        length = -1
                    if length <= 0 or length > MAX_BODY:
                        self.close_connection = True
                        raise _ApiError(400 if length <= 0 else 413, f"body must be 1..{MAX_BODY} bytes")
                    raw = self.rfile.read(length)
                    try:
                        body = json.loads(raw.decode("utf-8"))
                    except (UnicodeDecodeError, json.JSONDecodeError):
                        raise _ApiError(400, "the request body is not valid UTF-8 JSON") from None
                    self._send(200, server.complete(body))
                except _ApiError as err:
                    self._error(err)
                except Exception as exc:  # noqa: BLE001 - a model failure becomes HTTP 500, the server lives on
                    log.exception("generation failed")
                    self._error(_ApiError(500, f"generation failed: {type(exc).__name__}", "server_error"))

        return Handler


_SERVERS: dict[int, ChatServer] = {}


def make_server(
    model_dir: str,
    host: str = "127.0.0.1",
    port: int = 0,
    device: str = "cpu",
    model_name: str | None = None,
    api_key_env: str | None = None,
    allow_remote: bool = False,
) -> ChatServer:
    """Load ``model_dir`` with :func:`advlab.models.load_chat_model`; wrap it in a (not started) server."""
    if not allow_remote and not _is_loopback(host):  # before loading anything
        raise ConfigError(f"--host {host}: serving beyond loopback needs allow_remote=True; use 127.0.0.1")
    model, tokenizer = load_chat_model(str(model_dir), device=resolve_device(device))
    name = model_name or Path(str(model_dir)).name or "local"
    return ChatServer(
        HFChatBackend(model, tokenizer, name=name), name, host, port, api_key_env, allow_remote=allow_remote
    )


def serve(
    model_dir: str,
    host: str = "127.0.0.1",
    port: int = 0,
    device: str = "cpu",
    model_name: str | None = None,
    api_key_env: str | None = None,
) -> int:
    """Serve ``model_dir`` in a background thread on ``host:port`` (0 = a free port); returns the bound port.

    Stop it with :func:`stop` (``stop(port)``). Base URL for clients: ``http://{host}:{port}/v1``.
    """
    srv = make_server(model_dir, host, port, device, model_name, api_key_env).start()
    _SERVERS[srv.port] = srv
    return srv.port


def stop(port: int) -> bool:
    """Stop the server :func:`serve` started on ``port``; False if there was none."""
    srv = _SERVERS.pop(port, None)
    if srv is None:
        return False
    srv.stop()
    return True


def main(argv: list[str] | None = None) -> int:
    """``python -m advlab.models.serve MODEL_DIR [--port 8000]``: serve a local chat model until Ctrl-C."""
    parser = argparse.ArgumentParser(
        prog="python -m advlab.models.serve",
        description="Serve a local chat model through the OpenAI chat-completions protocol on 127.0.0.1. "
        "Example: python -m advlab.models.serve runs/gym --port 8000, then use "
        "--base-url http://127.0.0.1:8000/v1.",
    )
    parser.add_argument("model_dir", help="model directory (or cached hub id) that load_chat_model reads")
    parser.add_argument("--host", default="127.0.0.1", help="loopback address to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8000, help="port; 0 picks a free one (default 8000)")
    parser.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N or auto (default cpu)")
    parser.add_argument("--model-name", default=None, help="name clients send as 'model' (default: dir name)")
    parser.add_argument("--api-key-env", default=None, help="require the key in this environment variable")
    args = parser.parse_args(argv)
    try:
        srv = make_server(args.model_dir, args.host, args.port, args.device, args.model_name,
                          args.api_key_env)
    except AdvlabError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"serving {srv.model_name!r} at {srv.url} (Ctrl-C to stop)", flush=True)
    srv.serve_forever()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
