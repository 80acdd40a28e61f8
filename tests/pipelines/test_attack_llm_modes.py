"""``attack llm`` modes and helper models: universal and transfer GCG, PAIR's attacker and rating judge
and AutoDAN's rephraser (local, or over HTTP from a real server on 127.0.0.1), per-step progress, and
the validation of every such option. Quick safety gym, tiny budgets."""

from __future__ import annotations

import json
import shutil

import pytest
import torch

from advlab.errors import AdvlabError, ConfigError
from advlab.pipelines.attack_llm import AttackAux, AttackLLMConfig, attack_one, run_attack_llm


@pytest.fixture(autouse=True, scope="module")
def _one_torch_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def local(gym):
    from advlab.models.backends import HFChatBackend

    model, tok = gym
    return HFChatBackend(model, tok, name="gym")


@pytest.fixture(scope="module")
def server(local):
    from advlab.models.serve import ChatServer

    with ChatServer(local, model_name="gym") as srv:
        yield srv


class _OneByOne:
    """A backend without chat_batch: chat_many then sends conversation i alone with seed + i."""

    def __init__(self, backend):
        self.backend = backend

    def chat(self, messages, max_new_tokens=150, temperature=0.0, seed=None):
        return self.backend.chat(messages, max_new_tokens, temperature, seed)


def _records(path):
    return [json.loads(x) for x in (path / "results.jsonl").read_text().splitlines()]


def _gcg(gym_dir, **kw):
    base = dict(method="gcg", model=str(gym_dir), steps=2, search_width=8, topk=8, max_new_tokens=8, init="x x x x x")
    return AttackLLMConfig(**{**base, **kw})


def _full_loss(model, prompt_ids, target_ids):
    """Mean target cross-entropy from one plain forward pass (independent of the attack code)."""
    ids = torch.tensor([list(prompt_ids) + list(target_ids)])
    with torch.no_grad():
        logits = model(input_ids=ids).logits[0].float()
    n = len(target_ids)
    return float(torch.nn.functional.cross_entropy(logits[-n - 1 : -1], torch.tensor(target_ids)))


# ------------------------------------------------------------------------------------ universal GCG


def test_universal_gcg_one_suffix_own_completions_and_resume(gym, gym_dir, tmp_path, monkeypatch):
    from advlab.models.formatting import ChatFormatter

    model, tok = gym
    out = tmp_path / "u"
    cfg = _gcg(gym_dir, limit=3, universal=True)
    metrics = run_attack_llm(cfg, out, device="cpu", model_and_tokenizer=gym, show_progress=False)
    recs = _records(out)
    stored = json.loads((out / "universal_suffix.json").read_text())
    assert len(recs) == 3 and stored["behavior_ids"] == [r["id"] for r in recs]
    fmt = ChatFormatter(tok)
    losses = []
    for r in recs:
        assert r["mode"] == "universal" and r["adv_string"] == stored["adv_string"]
        assert r["loss_history"] == stored["loss_history"] and len(r["loss_history"]) == 2
        segs = fmt.segments(r["behavior"], "x x x x x", r["target"])
        prompt = [*segs.before, *stored["adv_ids"], *segs.after]
        assert tok.decode(prompt) == r["adv_prompt"]  # its own prompt with the shared suffix
        own = _full_loss(model, prompt, segs.target)
        assert r["behavior_loss"] == pytest.approx(own, rel=1e-4, abs=1e-4)
        losses.append(own)
    # the shared objective is the mean over behaviours of their own losses
    assert stored["best_loss"] == pytest.approx(sum(losses) / 3, rel=1e-4, abs=1e-4)
    assert len({r["completion"] for r in recs}) >= 1 and metrics["mode"] == "universal"
    assert metrics["universal"]["adv_string"] == stored["adv_string"]
    assert metrics["budget"]["forward_passes"]["total"] == stored["forward_passes"]  # one shared attack
    # crash after two records: resuming judges the third with the stored suffix, no new optimisation
    lines = (out / "results.jsonl").read_text().splitlines()
    (out / "results.jsonl").write_text("\n".join(lines[:2]) + "\n")

    def boom(*a, **k):
        raise AssertionError("the universal suffix was optimised again on resume")

    monkeypatch.setattr("advlab.attacks.llm.gcg.run_gcg", boom)
    run_attack_llm(cfg, out, device="cpu", model_and_tokenizer=gym, show_progress=False)
    again = _records(out)
    assert [r["id"] for r in again] == [r["id"] for r in recs] and again[2]["completion"] == recs[2]["completion"]
    # another selection of behaviours does not match the stored suffix: refused before anything runs
    with pytest.raises(ConfigError, match="universal_suffix.json"):
        run_attack_llm(_gcg(gym_dir, limit=2, universal=True), out, device="cpu", model_and_tokenizer=gym)


def test_universal_is_deterministic(gym, gym_dir, tmp_path):
    for name in ("a", "b"):
        run_attack_llm(
            _gcg(gym_dir, limit=2, universal=True),
            tmp_path / name,
            device="cpu",
            model_and_tokenizer=gym,
            show_progress=False,
        )
    a, b = (json.loads((tmp_path / n / "universal_suffix.json").read_text()) for n in ("a", "b"))
    assert a["adv_ids"] == b["adv_ids"] and a["loss_history"] == b["loss_history"]


# ------------------------------------------------------------------------------------- transfer GCG


def test_transfer_model_enters_the_objective(gym, gym_dir, tmp_path):
    twin = tmp_path / "twin"
    shutil.copytree(gym_dir, twin)  # the same weights under another name: the loss must double
    single = run_attack_llm(
        _gcg(gym_dir, limit=1, steps=1), tmp_path / "s", device="cpu", model_and_tokenizer=gym, show_progress=False
    )
    cfg = _gcg(gym_dir, limit=1, steps=1, transfer_models=[str(twin)])
    joint = run_attack_llm(cfg, tmp_path / "t", device="cpu", model_and_tokenizer=gym, show_progress=False)
    (s,), (t,) = _records(tmp_path / "s"), _records(tmp_path / "t")
    assert t["details"]["init_loss"] == pytest.approx(2 * s["details"]["init_loss"], rel=1e-5)
    assert t["forward_passes"] > s["forward_passes"]
    assert joint["transfer_models"] == [str(twin)] and single["transfer_models"] == []
    assert "transfer_models" in (tmp_path / "t" / "config.yaml").read_text()


def test_transfer_model_with_another_tokenizer_is_refused(gym, gym_dir, tmp_path, monkeypatch):
    model, tok = gym

    class OtherTok:
        def get_vocab(self):
            return {"a": 0}

    monkeypatch.setattr("advlab.pipelines.attack_llm_setup.load_chat_model", lambda *a, **k: (model, OtherTok()))
    with pytest.raises(ConfigError, match="tokenizer"):
        run_attack_llm(
            _gcg(gym_dir, limit=1, transfer_models=["other"]), tmp_path / "x", device="cpu", model_and_tokenizer=gym
        )
    assert not (tmp_path / "x").exists()


# ------------------------------------------------------------------------------ PAIR / AutoDAN helpers


def test_pair_attacker_and_rating_judge_over_http(gym, gym_dir, server, local, tmp_path, monkeypatch):
    from advlab.attacks.llm.pair import PAIRConfig, run_pair_local
    from advlab.data.behavior_loaders import load_behaviors
    from advlab.models.formatting import ChatFormatter

    monkeypatch.setenv("ADVLAB_T_KEY", "sk-never-written-424242")
    cfg = AttackLLMConfig(
        method="pair",
        model=str(gym_dir),
        limit=1,
        steps=1,
        n_streams=2,
        max_new_tokens=8,
        attacker_url=server.url,
        attacker_model="gym",
        rating_judge_url=server.url,
        rating_judge_model="gym",
        api_key_env="ADVLAB_T_KEY",
    )
    before = server.requests_served
    run_attack_llm(cfg, tmp_path / "p", device="cpu", model_and_tokenizer=gym, show_progress=False)
    (rec,) = _records(tmp_path / "p")
    q = rec["details"]["queries"]
    assert server.requests_served - before == q["attacker"] + q["judge"] and q["judge"] == 2
    # the same attack in Python with the local model as attacker and judge gives the same prompt
    # (one conversation per call with seed + i, as the HTTP client sends them)
    beh = next(iter(load_behaviors("builtin:gym-harmful-test")))
    model, tok = gym
    local = _OneByOne(local)
    direct = run_pair_local(
        model,
        tok,
        beh,
        PAIRConfig(n_iterations=1, n_streams=2, seed=0),
        formatter=ChatFormatter(tok),
        attacker=local,
        judge=local,
    )
    assert rec["adv_string"] == direct.adv_string and rec["details"]["ratings"] == direct.extra["ratings"]
    for f in ("config.yaml", "manifest.json", "results.jsonl", "metrics.json"):
        assert "sk-never-written" not in (tmp_path / "p" / f).read_text()
    assert "ADVLAB_T_KEY" in (tmp_path / "p" / "config.yaml").read_text()  # the variable's name only


def test_pair_default_attacker_is_the_target(gym, gym_dir, tmp_path):
    cfg = AttackLLMConfig(method="pair", model=str(gym_dir), limit=1, steps=1, n_streams=2, max_new_tokens=8)
    assert cfg.n_streams == 2
    run_attack_llm(cfg, tmp_path / "p", device="cpu", model_and_tokenizer=gym, show_progress=False)
    (rec,) = _records(tmp_path / "p")
    assert rec["method"] == "pair" and rec["details"]["queries"]["target"] <= 2 and rec["steps"] == 1


def test_autodan_rephraser_over_http_and_synonyms_without(gym, gym_dir, server, tmp_path):
    base = dict(method="autodan", model=str(gym_dir), limit=1, steps=1, population=12, max_new_tokens=8)
    before = server.requests_served
    run_attack_llm(
        AttackLLMConfig(**base, rephraser_url=server.url, rephraser_model="gym"),
        tmp_path / "r",
        device="cpu",
        model_and_tokenizer=gym,
        show_progress=False,
    )
    (rec,) = _records(tmp_path / "r")
    assert rec["details"]["mutation"] == "rephrase" and rec["details"]["mutations"] >= 2  # 12 - 10 prototypes
    assert server.requests_served - before == rec["details"]["mutations"]
    run_attack_llm(AttackLLMConfig(**base), tmp_path / "s", device="cpu", model_and_tokenizer=gym, show_progress=False)
    (syn,) = _records(tmp_path / "s")
    assert syn["details"]["mutation"] == "synonym"


def test_local_rephraser_model_directory(gym, gym_dir, tmp_path):
    cfg = AttackLLMConfig(
        method="autodan",
        model=str(gym_dir),
        limit=1,
        steps=1,
        population=11,
        max_new_tokens=4,
        rephraser_model=str(gym_dir),
    )
    run_attack_llm(cfg, tmp_path / "r", device="cpu", model_and_tokenizer=gym, show_progress=False)
    assert _records(tmp_path / "r")[0]["details"]["mutation"] == "rephrase"


def test_unreachable_attacker_is_a_clear_error_after_bounded_retry(gym, gym_dir, tmp_path):
    import socket

    from advlab.models.backends import BackendError

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cfg = AttackLLMConfig(
        method="pair",
        model=str(gym_dir),
        limit=1,
        steps=1,
        n_streams=1,
        attacker_url=f"http://127.0.0.1:{port}/v1",
        attacker_model="gym",
        http_retries=1,
    )
    with pytest.raises(BackendError, match=r"--attacker-url: cannot reach .* 2 attempt") as err:
        run_attack_llm(cfg, tmp_path / "p", device="cpu", model_and_tokenizer=gym, show_progress=False)
    assert "\n" not in str(err.value) and "--base-url" not in str(err.value)
    assert json.loads((tmp_path / "p" / "manifest.json").read_text())["status"] == "failed"


# ------------------------------------------------------------------------------------------ progress


class _Forwards:
    """Counts model forward passes (a forward hook), to see *when* progress callbacks happen."""

    def __init__(self, model):
        self.n = 0
        self.handle = model.register_forward_hook(self._hook)

    def _hook(self, *_):
        self.n += 1


@pytest.mark.parametrize(
    "method, kw",
    [
        ("embedding", {"steps": 4, "eps": None, "step_size": 0.01, "early_stop": False}),
        ("gcg", {"steps": 3, "search_width": 8, "topk": 8, "early_stop": False}),
        ("autodan", {"steps": 3, "population": 4, "early_stop": False}),
        ("pair", {"steps": 2, "n_streams": 1, "early_stop": False}),
    ],
)
def test_progress_moves_with_every_step(gym, gym_dir, method, kw):
    from advlab.data.behavior_loaders import load_behaviors
    from advlab.judges.refusal import RefusalJudge
    from advlab.models.formatting import ChatFormatter

    model, tok = gym
    cfg = AttackLLMConfig(method=method, model=str(gym_dir), max_new_tokens=4, init="x x x x x", **kw)
    beh = next(iter(load_behaviors("builtin:gym-harmful-test")))
    counter = _Forwards(model)
    calls = []
    try:
        rec = attack_one(
            model,
            tok,
            ChatFormatter(tok),
            beh,
            cfg,
            [RefusalJudge()],
            on_step=lambda step, loss: calls.append((step, loss, counter.n)),
        )
    finally:
        counter.handle.remove()
    steps = [c[0] for c in calls]
    assert steps == sorted(steps) and steps[-1] == cfg.steps and len(calls) >= cfg.steps
    # the callbacks are spread over the attack (forward passes between them), not replayed at the end
    # (AutoDAN caches the fitness of prompts it has seen, so a generation may need no forward pass)
    assert len({c[2] for c in calls}) >= (2 if method == "autodan" else cfg.steps)
    hist = rec["loss_history"]
    if method == "embedding":  # one call per evaluation: step 0 is the clean prompt
        assert steps == list(range(cfg.steps + 1)) and [c[1] for c in calls] == pytest.approx(hist, rel=1e-6)
    else:
        assert [c[1] for c in calls[-cfg.steps :]] == pytest.approx(
            hist if method != "autodan" else [min(hist[: i + 1]) for i in range(len(hist))], rel=1e-5
        )


# -------------------------------------------------------------------------------------- validation


@pytest.mark.parametrize(
    "kw, match",
    [
        ({"method": "pair", "universal": True}, "--universal .*--method gcg"),
        ({"method": "embedding", "universal": True}, "--universal"),
        ({"method": "autodan", "transfer_models": ["m2"]}, "--transfer-model .*--method gcg"),
        ({"transfer_models": ["m"]}, "--transfer-model m is the attacked --model"),
        ({"transfer_models": ["a", "a"]}, "twice"),
        ({"transfer_models": [" "]}, "--transfer-model is empty"),
        ({"n_streams": 3}, "--n-streams .*--method pair"),
        ({"method": "pair", "n_streams": 0}, "--n-streams 0"),
        ({"population": 8}, "--population .*--method autodan"),
        ({"method": "autodan", "population": 1}, "--population 1"),
        ({"attacker_model": "x"}, "--attacker-url/--attacker-model .*--method pair"),
        ({"method": "autodan", "rating_judge_url": "http://h/v1", "rating_judge_model": "j"}, "--rating-judge"),
        ({"method": "pair", "rephraser_model": "x"}, "--rephraser-url/--rephraser-model .*--method autodan"),
        ({"method": "pair", "attacker_url": "http://127.0.0.1:1/v1"}, "--attacker-url needs --attacker-model"),
        ({"method": "pair", "attacker_url": "ftp://h", "attacker_model": "a"}, "--attacker-url must be an http"),
        ({"method": "pair", "attacker_url": "http://u:pw@h/v1", "attacker_model": "a"}, "credentials"),
        ({"method": "pair", "attacker_url": "http://h/v1?key=sk-1", "attacker_model": "a"}, "query"),
        ({"method": "pair", "attacker_model": "  "}, "--attacker-model is empty"),
        ({"method": "autodan", "rephraser_url": "http://h/v1"}, "--rephraser-url needs --rephraser-model"),
        ({"api_key_env": "sk-abc123secret"}, "NAME of an environment variable"),
        ({"http_timeout": 0}, "--http-timeout"),
        ({"http_retries": -1}, "--http-retries"),
    ],
)
def test_bad_option_combinations(kw, match):
    base = {"method": "gcg", "model": "m"}
    with pytest.raises(ConfigError, match=match) as err:
        AttackLLMConfig(**{**base, **kw})
    assert "\n" not in str(err.value) and "sk-abc123secret" not in str(err.value)


def test_universal_needs_one_process(gym_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "2")
    with pytest.raises(AdvlabError, match="one process"):
        run_attack_llm(_gcg(gym_dir, universal=True), tmp_path / "x", device="cpu", show_progress=False)
    assert not (tmp_path / "x").exists()


def test_missing_local_helper_model_fails_before_the_run_dir(gym, gym_dir, tmp_path):
    cfg = AttackLLMConfig(method="pair", model=str(gym_dir), attacker_model=str(tmp_path / "no-such-model"))
    with pytest.raises(AdvlabError, match="--attacker-model"):
        run_attack_llm(cfg, tmp_path / "x", device="cpu", model_and_tokenizer=gym)
    assert not (tmp_path / "x").exists()


def test_aux_can_be_given_from_python(gym, gym_dir, local, tmp_path):
    class CountingBackend:
        def __init__(self):
            self.calls = 0

        def chat(self, messages, max_new_tokens=150, temperature=0.0, seed=None):
            self.calls += 1
            return local.chat(messages, max_new_tokens, temperature, seed)

    attacker = CountingBackend()
    cfg = AttackLLMConfig(method="pair", model=str(gym_dir), limit=1, steps=1, n_streams=2, max_new_tokens=4)
    run_attack_llm(
        cfg,
        tmp_path / "p",
        device="cpu",
        model_and_tokenizer=gym,
        show_progress=False,
        aux=AttackAux(attacker=attacker),
    )
    assert attacker.calls == _records(tmp_path / "p")[0]["details"]["queries"]["attacker"] >= 2
