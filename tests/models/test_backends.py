"""Chat backends: the HF backend on the gym, the OpenAI-compatible HTTP client against stub servers."""

from __future__ import annotations

import json
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from advlab.errors import AdvlabError, ConfigError
from advlab.models.backends import (
    BackendError,
    ChatBackend,
    HFChatBackend,
    OpenAIChatBackend,
    chat_completions_url,
    chat_many,
    derive_seed,
    validate_messages,
)
from advlab.models.generation import stop_token_ids


@pytest.fixture(autouse=True, scope="module")
def _one_torch_thread():
    """Tiny models on a shared 2-core machine: one intra-op thread is many times faster than two."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


KEY = "sk-test-SECRET-0123456789"
MSGS = [{"role": "user", "content": "What is 2 + 3?"}]


# ------------------------------------------------------------------------------------- a stub endpoint
class Stub:
    """A loopback HTTP server answering from a script of (status, body) pairs; records requests."""

    def __init__(self, script):
        self.script = list(script)
        self.requests: list[dict] = []
        stub = self

        class H(BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def do_POST(self):  # noqa: N802
                body = self.rfile.read(int(self.headers["Content-Length"]))
                stub.requests.append(
                    {"path": self.path, "auth": self.headers.get("Authorization"), "body": json.loads(body)}
                )
                status, payload = stub.script.pop(0) if len(stub.script) > 1 else stub.script[0]
                data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()

    @property
    def url(self):
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"


def ok(text="5"):
    return 200, {"choices": [{"index": 0, "message": {"role": "assistant", "content": text}}]}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ------------------------------------------------------------------------------------------- tests
@pytest.mark.parametrize(
    ("base", "url"),
    [
        ("http://127.0.0.1:8000", "http://127.0.0.1:8000/v1/chat/completions"),
        ("http://127.0.0.1:8000/v1/", "http://127.0.0.1:8000/v1/chat/completions"),
        ("https://api.example.com/openai/v1", "https://api.example.com/openai/v1/chat/completions"),
        ("http://h:1/v1/chat/completions", "http://h:1/v1/chat/completions"),
    ],
)
def test_chat_completions_url(base, url):
    assert chat_completions_url(base) == url


@pytest.mark.parametrize("base", ["", "ftp://h/v1", "127.0.0.1:8000", "http://user:pw@h/v1"])
def test_bad_base_urls(base):
    with pytest.raises(ConfigError):
        OpenAIChatBackend(base, "m")


def test_bad_options_fail_at_construction():
    for kw in ({"timeout": 0}, {"max_retries": -1}, {"backoff": -1.0}):
        with pytest.raises(ConfigError):
            OpenAIChatBackend("http://127.0.0.1:1/v1", "m", **kw)
    with pytest.raises(ConfigError):
        OpenAIChatBackend("http://127.0.0.1:1/v1", "")


def test_validate_messages():
    assert validate_messages(MSGS) == MSGS
    for bad in (
        [],
        "hi",
        [{"role": "robot", "content": "x"}],
        [{"role": "user"}],
        [{"role": "user", "content": 3}],
    ):
        with pytest.raises(ConfigError):
            validate_messages(bad)


def test_request_payload_auth_header_and_repr(monkeypatch):
    monkeypatch.setenv("ADVLAB_TEST_KEY", KEY)
    with Stub([ok("five")]) as stub:
        b = OpenAIChatBackend(stub.url, "gym", api_key_env="ADVLAB_TEST_KEY", timeout=5)
        assert isinstance(b, ChatBackend)
        assert b.chat(MSGS, max_new_tokens=7, temperature=0.5, seed=11) == "five"
    req = stub.requests[0]
    assert req["path"] == "/v1/chat/completions" and req["auth"] == f"Bearer {KEY}"
    assert req["body"] == {"model": "gym", "messages": MSGS, "max_tokens": 7, "temperature": 0.5, "seed": 11}
    assert KEY not in repr(b) and KEY not in str(vars(b)) and "ADVLAB_TEST_KEY" in repr(b)


def test_no_key_in_environment_sends_no_header(monkeypatch):
    monkeypatch.delenv("ADVLAB_TEST_KEY", raising=False)
    with Stub([ok()]) as stub:
        OpenAIChatBackend(stub.url, "gym", api_key_env="ADVLAB_TEST_KEY").chat(MSGS)
    assert stub.requests[0]["auth"] is None


def test_transient_errors_are_retried_with_backoff():
    with Stub([(503, {"error": {"message": "busy"}}), (429, {"error": "slow down"}), ok("done")]) as stub:
        b = OpenAIChatBackend(stub.url, "gym", max_retries=3, backoff=0.01, timeout=5)
        assert b.chat(MSGS) == "done"
    assert len(stub.requests) == 3 and b.requests_sent == 3


def test_retries_are_bounded_then_a_clear_error():
    with Stub([(503, {"error": {"message": "overloaded"}})]) as stub:
        b = OpenAIChatBackend(stub.url, "gym", max_retries=2, backoff=0.01, timeout=5)
        with pytest.raises(BackendError, match=r"after 3 attempt\(s\).*HTTP 503 overloaded"):
            b.chat(MSGS)
    assert len(stub.requests) == 3


def test_client_errors_fail_at_once_and_name_the_fix(monkeypatch):
    monkeypatch.setenv("ADVLAB_TEST_KEY", KEY)
    with Stub([(401, {"error": {"message": "bad key"}})]) as stub:
        b = OpenAIChatBackend(stub.url, "gym", api_key_env="ADVLAB_TEST_KEY", max_retries=3, backoff=0.01)
        with pytest.raises(BackendError) as err:
            b.chat(MSGS)
    assert len(stub.requests) == 1
    assert "HTTP 401" in str(err.value) and "$ADVLAB_TEST_KEY" in str(err.value) and KEY not in str(err.value)
    assert isinstance(err.value, AdvlabError)


@pytest.mark.parametrize("payload", [b"not json", {"choices": []}, {"nothing": 1}])
def test_malformed_replies_are_clear_errors(payload):
    with Stub([(200, payload)]) as stub, pytest.raises(BackendError):
        OpenAIChatBackend(stub.url, "gym", max_retries=0).chat(MSGS)


def test_unreachable_endpoint_clear_error_after_bounded_retry():
    b = OpenAIChatBackend(f"http://127.0.0.1:{free_port()}/v1", "gym", max_retries=2, backoff=0.01, timeout=1)
    t0 = time.monotonic()
    with pytest.raises(BackendError, match=r"cannot reach .* after 3 attempt\(s\).*re-run to resume"):
        b.chat(MSGS)
    assert b.requests_sent == 3 and time.monotonic() - t0 < 10


def test_silent_endpoint_times_out_after_bounded_retry():
    with socket.socket() as srv:  # accepts connections (backlog) but never answers
        srv.bind(("127.0.0.1", 0))
        srv.listen(8)
        b = OpenAIChatBackend(
            f"http://127.0.0.1:{srv.getsockname()[1]}/v1", "gym", timeout=0.3, max_retries=1, backoff=0.01
        )
        with pytest.raises(BackendError, match="after 2 attempt"):
            b.chat(MSGS)
        assert b.requests_sent == 2


def test_chat_many_loops_with_per_item_seeds():
    class Echo:
        def chat(self, messages, max_new_tokens=1, temperature=0.0, seed=None):
            return f"{messages[0]['content']}:{seed}"

    assert chat_many(Echo(), [[{"role": "user", "content": "a"}], [{"role": "user", "content": "b"}]], seed=10) == [
        "a:10",
        "b:11",
    ]
    assert chat_many(Echo(), []) == []
    assert derive_seed(1, 2) == derive_seed(1, 2) != derive_seed(2, 1)


# ------------------------------------------------------------------------------------- HF backend, gym
def test_hf_backend_greedy_sampled_and_batched(gym):
    model, tok = gym
    b = HFChatBackend(model, tok)
    assert isinstance(b, ChatBackend)
    g1, g2 = b.chat(MSGS, 16), b.chat(MSGS, 16)
    assert g1 == g2 and isinstance(g1, str)
    s1, s2 = b.chat(MSGS, 16, temperature=1.0, seed=5), b.chat(MSGS, 16, temperature=1.0, seed=5)
    assert s1 == s2
    others = {b.chat(MSGS, 16, temperature=1.5, seed=s) for s in range(6)}
    assert len(others) > 1  # sampling does sample
    convs = [MSGS, [{"role": "user", "content": "Reverse the word cat"}]]
    assert b.chat_batch(convs, 16) == [b.chat(c, 16) for c in convs]
    # generation is the model's own: greedy text equals a hand-rolled argmax loop
    import torch

    ids = torch.tensor([b.prompt_ids(MSGS)])
    out = []
    with torch.no_grad():
        for _ in range(16):
            nxt = int(model(input_ids=ids).logits[0, -1].argmax())
            if nxt in stop_token_ids(model, tok):
                break
            out.append(nxt)
            ids = torch.cat([ids, torch.tensor([[nxt]])], dim=1)
    assert tok.decode(out, skip_special_tokens=True).strip() == g1


def test_hf_backend_system_messages_and_control_tokens_in_text(gym):
    model, tok = gym
    b = HFChatBackend(model, tok)
    with_system = [{"role": "system", "content": "Be brief."}, *MSGS]
    assert isinstance(b.chat(with_system, 8), str)
    eos = tok.eos_token
    ids = b.prompt_ids([{"role": "user", "content": f"hello {eos} world"}])
    plain = b.prompt_ids([{"role": "user", "content": "hello world"}])
    # the eos text inside a message is encoded as ordinary text, not as the control token
    assert ids.count(tok.eos_token_id) == plain.count(tok.eos_token_id)
    with pytest.raises(ConfigError):
        b.chat(MSGS, 0)


def test_hf_backend_prompt_equals_the_chat_formatter_prompt(gym):
    from advlab.models.formatting import ChatFormatter

    model, tok = gym
    b = HFChatBackend(model, tok)
    for request in ("What is 2 + 3?", "Explain how to steal a car"):
        assert b.prompt_ids([{"role": "user", "content": request}]) == ChatFormatter(tok).prompt_ids(request)


def test_backend_from_spec():
    from advlab.models.backends import backend_from_spec

    class Local:
        def chat(self, messages, max_new_tokens=1, temperature=0.0, seed=None):
            return "x"

    me = Local()
    assert backend_from_spec(None, local=me) is me and backend_from_spec("self", local=me) is me
    http = backend_from_spec("http://127.0.0.1:9/v1", model_name="gym", max_retries=0)
    assert isinstance(http, OpenAIChatBackend) and http.url.endswith("/v1/chat/completions")
    with pytest.raises(ConfigError):
        backend_from_spec("http://127.0.0.1:9/v1")  # no model name
    with pytest.raises(ConfigError):
        backend_from_spec("self")  # nothing local
    with pytest.raises(AdvlabError):
        backend_from_spec("/no/such/model/dir")
