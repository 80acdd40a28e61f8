"""``advlab attack llm``: attack a chat model on a set of behaviours, judge what it then says.

Per behaviour: run the attack (embedding, GCG, AutoDAN or PAIR), then generate the completion
greedily **from the adversarial input the attack produced** (the adversarial prompt ids, or the
perturbed prompt embeddings) — the optimisation target is never prepended — then judge the
completion with every configured judge, then append the record::

    id, behavior, target, method, adv_string, best_loss, loss_history, completion, judges,
    success, steps, forward_passes, backward_passes, seconds (+ early_stopped, adv_prompt)

``success`` is the verdict of the first (default) judge. Default judges: ``compliance`` (not a refusal,
on topic, not degenerate: the cheap check for the safety gym and quick looks; it sets ``asr``) then
``refusal`` (phrase list, reported alongside because papers report it); real models want ``harmbench``.
``metrics.json``: ``asr`` (default judge), ``asr_by_judge`` and the budget (mean/median steps, forward
and backward passes, seconds).
Resumable (finished ids are skipped); shardable with ``accelerate launch`` (each process takes
every world_size-th behaviour; the main process writes the merged metrics after a barrier).

GCG modes: ``universal`` optimises one suffix s* = argmin_s (1/B) Σ_b L_b(s) over all selected
behaviours (computed once, stored atomically in ``universal_suffix.json`` so that a resumed run
reuses it), then every behaviour gets its own record, judged on its own completion with s*;
``transfer_models`` adds models (same tokenizer) whose losses are summed into the objective.

Helper models (PAIR's attacker and 1-10 rating judge, AutoDAN's rephraser) are chat backends: an
OpenAI-compatible endpoint (``*_url`` + ``*_model``, API key read from the environment variable
named by ``api_key_env`` at each request, never stored) or a local model (``*_model`` alone).
Without them PAIR uses the attacked model as attacker and judge, and AutoDAN mutates by synonyms.
"""

from __future__ import annotations

import re
import statistics
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from advlab.errors import ConfigError, DataError, require

JOB = "attack-llm"
METHODS = ("embedding", "gcg", "autodan", "pair")
DEFAULT_BEHAVIORS = "builtin:gym-harmful-test"
DEFAULT_STEPS = {"embedding": 100, "gcg": 250, "autodan": 100, "pair": 3}
DEFAULT_JUDGES = ("compliance", "refusal")  # the first sets ``success`` and ``asr``
# Embedding attack defaults of ``attack llm``, from a measurement on the quick safety gym (30 behaviours,
# suffix mode, 100 steps): signed steps of 1e-3 reproduced the target on 1/30 at any eps, Adam(lr 1e-2)
# inside a relative L2 ball of eps 1.0 on 13/30 (compliance ASR 0.40). The CAT training attack keeps the
# paper's sign-step defaults in ``EmbeddingAttackConfig``.
EMBEDDING_OPTIMIZER = "adam"
EMBEDDING_STEP_SIZE = 1e-2
EMBEDDING_EPS = 1.0
OPTIMIZERS = ("sign", "adam")
DEFAULT_INIT = " ".join(["x"] * 20)
DEFAULT_STREAMS = 20  # PAIR (HarmBench)
DEFAULT_POPULATION = 64  # AutoDAN (HarmBench)
DEFAULT_API_KEY_ENV = "OPENAI_API_KEY"
UNIVERSAL_FILE = "universal_suffix.json"
# helper backend role -> methods that use it
BACKEND_ROLES = {"attacker": ("pair",), "rating_judge": ("pair",), "rephraser": ("autodan",)}
ROLE_TEXT = {
    "attacker": "PAIR's attacker model",
    "rating_judge": "PAIR's 1-10 rating judge",
    "rephraser": "AutoDAN's rephrasing model",
}
# keys that may change on resume: where things run and how to reach them, not what is computed
RESUME_IGNORE = ("device", "limit", "api_key_env", "http_timeout", "http_retries") + tuple(
    f"{role}_url" for role in BACKEND_ROLES
)
_ENV_NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def check_backend_url(url: str, option: str) -> None:
    """An http(s) URL with a host, and nothing secret in it (no user:password@, no query string)."""
    import urllib.parse

    parsed = urllib.parse.urlparse(str(url).strip())
    require(
        parsed.scheme in ("http", "https") and bool(parsed.hostname),
        f"{option} must be an http(s) URL such as http://127.0.0.1:8000/v1",
    )
    require(
        not (parsed.username or parsed.password or parsed.query or parsed.fragment),
        f"{option} must not carry credentials or a query string; put the API key in the variable named by "
        "--api-key-env",
    )


@dataclass
class AttackLLMConfig:
    """Everything ``advlab attack llm`` needs; invalid values fail before any work starts.

    ``steps=None`` takes the method's default (embedding 100, GCG 250, AutoDAN 100, PAIR 3).
    Embedding attack: ``optimizer`` (``adam`` or ``sign``; None = adam, refused with other methods),
    ``step_size`` (Adam learning rate or absolute signed step), ``eps`` relative per-token radius
    (None or inf = unbounded; stored as None), ``norm``, ``embedding_mode``; defaults Adam, 1e-2, 1.0
    (measured on the gym, see ``EMBEDDING_*``). Judges: ``compliance`` then ``refusal``.
    GCG: ``search_width``, ``topk``, ``n_replace``, ``init``, ``buffer_size``, ``mellowmax``, ``allow_non_ascii``.
    """

    method: str
    model: str
    behaviors: str = DEFAULT_BEHAVIORS
    limit: int | None = None
    steps: int | None = None
    search_width: int = 512
    topk: int = 256
    n_replace: int = 1
    eps: float | None = EMBEDDING_EPS
    step_size: float = EMBEDDING_STEP_SIZE
    optimizer: str | None = None
    norm: str = "l2"
    embedding_mode: str = "suffix"
    init: str = DEFAULT_INIT
    buffer_size: int = 0
    mellowmax: bool = False
    allow_non_ascii: bool = False
    early_stop: bool = True
    max_new_tokens: int = 64
    judges: list[str] = field(default_factory=lambda: list(DEFAULT_JUDGES))
    judge_model: str | None = None
    system_prompt: str | None = None
    seed: int = 0
    universal: bool = False
    transfer_models: list[str] = field(default_factory=list)
    n_streams: int | None = None
    population: int | None = None
    attacker_url: str | None = None
    attacker_model: str | None = None
    rating_judge_url: str | None = None
    rating_judge_model: str | None = None
    rephraser_url: str | None = None
    rephraser_model: str | None = None
    api_key_env: str = DEFAULT_API_KEY_ENV
    http_timeout: float = 60.0
    http_retries: int = 3

    def __post_init__(self) -> None:
        require(self.method in METHODS, f"--method {self.method}: unknown; use one of {', '.join(METHODS)}")
        require(bool(str(self.model).strip()), "--model is empty; pass a model directory or hub id")
        require(bool(str(self.behaviors).strip()), "--behaviors is empty; pass a file or builtin:NAME")
        require(self.limit is None or self.limit >= 1, f"--limit {self.limit}: must be at least 1")
        if self.steps is None:
            self.steps = DEFAULT_STEPS[self.method]
        require(self.steps >= 1, f"--steps {self.steps}: must be at least 1")
        require(self.search_width >= 1, f"--search-width {self.search_width}: must be at least 1 (default 512)")
        require(self.topk >= 1, f"--topk {self.topk}: must be at least 1 (default 256)")
        require(self.n_replace >= 1, f"--n-replace {self.n_replace}: must be at least 1 (default 1)")
        if self.eps is not None and self.eps == float("inf"):
            self.eps = None  # unbounded
        require(
            self.eps is None or self.eps >= 0,  # NaN fails too
            f"--eps {self.eps}: must be 0 or more (or 'none' for unbounded)",
        )
        require(self.step_size > 0, f"--step-size {self.step_size}: must be positive")
        require(self.norm in ("l2", "linf"), f"--norm {self.norm}: use l2 or linf")
        require(self.embedding_mode in ("suffix", "instruction"), "--embedding-mode: use suffix or instruction")
        require(self.max_new_tokens >= 1, f"--max-new-tokens {self.max_new_tokens}: must be at least 1")
        require(bool(self.judges), "--judge: give at least one judge (e.g. compliance)")
        if self.method in ("gcg", "embedding") and (self.method == "gcg" or self.embedding_mode == "suffix"):
            require(bool(self.init.strip()), "--init is empty; pass an initial attack string such as 'x x x x x'")
        self._check_method_options()
        self._check_backends()

    def _check_method_options(self) -> None:
        """Options that belong to one method are refused with the others (they would be ignored)."""
        m = self.method
        if self.optimizer is not None:
            require(
                m == "embedding",
                f"--optimizer sets the embedding attack's update rule; it needs --method embedding, not {m}",
            )
            require(
                self.optimizer in OPTIMIZERS,
                f"--optimizer {self.optimizer}: use one of {', '.join(OPTIMIZERS)} (default {EMBEDDING_OPTIMIZER})",
            )
        elif m == "embedding":
            self.optimizer = EMBEDDING_OPTIMIZER
        require(
            not self.universal or m == "gcg",
            f"--universal optimises one GCG suffix over all behaviours; it needs --method gcg, not {m}",
        )
        self.transfer_models = [str(x) for x in (self.transfer_models or [])]
        if self.transfer_models:
            require(
                m == "gcg",
                f"--transfer-model adds models GCG optimises the suffix on jointly; it needs --method gcg, not {m}",
            )
            for t in self.transfer_models:
                require(bool(t.strip()), "--transfer-model is empty; pass a model directory or hub id")
                require(
                    t.strip() != str(self.model).strip(),
                    f"--transfer-model {t} is the attacked --model itself; pass other models",
                )
            require(
                len(set(self.transfer_models)) == len(self.transfer_models),
                "--transfer-model: a model is given twice; give each model once",
            )
        if self.n_streams is not None:
            require(m == "pair", f"--n-streams sets PAIR's parallel conversations; it needs --method pair, not {m}")
            require(self.n_streams >= 1, f"--n-streams {self.n_streams}: must be at least 1 (default 20)")
        elif m == "pair":
            self.n_streams = DEFAULT_STREAMS
        if self.population is not None:
            require(m == "autodan", f"--population sets AutoDAN's population; it needs --method autodan, not {m}")
            require(self.population >= 2, f"--population {self.population}: must be at least 2 (default 64)")
        elif m == "autodan":
            self.population = DEFAULT_POPULATION

    def _check_backends(self) -> None:
        """URLs, model names and the key variable of the helper backends (checked before any model loads)."""
        for role, methods in BACKEND_ROLES.items():
            url, name = getattr(self, f"{role}_url"), getattr(self, f"{role}_model")
            opt = "--" + role.replace("_", "-")
            if url is None and name is None:
                continue
            require(
                self.method in methods,
                f"{opt}-url/{opt}-model set {ROLE_TEXT[role]}; they need --method {' or '.join(methods)}, "
                f"not {self.method}",
            )
            if name is not None:
                require(bool(str(name).strip()), f"{opt}-model is empty; pass a served model name or a model directory")
            if url is not None:
                check_backend_url(url, f"{opt}-url")
                require(
                    name is not None,
                    f"{opt}-url needs {opt}-model NAME, the model name the endpoint serves (e.g. gpt-4o-mini)",
                )
        require(
            bool(_ENV_NAME_RE.fullmatch(self.api_key_env or "")),
            "--api-key-env must be the NAME of an environment variable holding the key (e.g. OPENAI_API_KEY), "
            "not the key itself",
        )
        require(self.http_timeout > 0, f"--http-timeout {self.http_timeout}: must be positive (seconds)")
        require(self.http_retries >= 0, f"--http-retries {self.http_retries}: must be 0 or more")

    @property
    def mode(self) -> str:
        """``universal`` (one GCG suffix for every behaviour) or ``individual``."""
        return "universal" if self.universal else "individual"

    def gcg_config(self) -> Any:
        from advlab.attacks.llm.gcg import GCGConfig

        return GCGConfig(
            steps=self.steps,
            search_width=self.search_width,
            topk=self.topk,
            n_replace=self.n_replace,
            optim_str_init=self.init,
            buffer_size=self.buffer_size,
            use_mellowmax=self.mellowmax,
            allow_non_ascii=self.allow_non_ascii,
            early_stop=self.early_stop,
            seed=self.seed,
        )

    def embedding_config(self) -> Any:
        from advlab.attacks.llm.embedding import EmbeddingAttackConfig

        return EmbeddingAttackConfig(
            steps=self.steps,
            eps=self.eps,
            norm=self.norm,
            step_size=self.step_size,
            optimizer=self.optimizer,
            mode=self.embedding_mode,
            early_stop=self.early_stop,
            init_str=self.init,
        )


def load_attack_behaviors(cfg: AttackLLMConfig) -> list[Any]:
    """The behaviours to attack (first ``limit``), validated before any model is loaded."""
    from advlab.data.behavior_loaders import load_behaviors

    items = list(load_behaviors(cfg.behaviors))
    items = [b for b in items if str(getattr(b, "target", "") or "").strip()]
    if not items:
        raise DataError(
            f"--behaviors {cfg.behaviors}: no behaviour with a target string; attacks need targets "
            "(e.g. 'Sure, here is ...'), use a file with a target column or builtin:gym-harmful-test"
        )
    if cfg.limit is not None:
        items = items[: cfg.limit]
    ids = [str(b.id) for b in items]
    require(len(set(ids)) == len(ids), f"--behaviors {cfg.behaviors}: behaviour ids repeat", DataError)
    return items


def make_judges(names: Sequence[str], judge_model: str | None = None) -> list[Any]:
    """Judge objects for names (``refusal``, ``harmbench`` with ``judge_model``), validated up front."""
    try:
        from advlab.judges import get_judge
    except ImportError:  # judges registry not there: only the refusal judge
        get_judge = None
    out = []
    for name in names:
        if get_judge is not None:
            out.append(get_judge(name, model=judge_model) if name == "harmbench" else get_judge(name))
        elif name == "refusal":
            from advlab.judges.refusal import RefusalJudge

            out.append(RefusalJudge())
        else:
            raise ConfigError(f"--judge {name}: unknown judge; use refusal")
    return out


def _attack_fn(method: str) -> Callable[..., Any]:
    """The attack entry point for ``method`` (AutoDAN and PAIR come from their own modules)."""
    if method == "autodan":
        from advlab.attacks.llm.autodan import run_autodan

        return run_autodan
    if method == "pair":
        from advlab.attacks.llm.pair import run_pair_local

        return run_pair_local
    raise ConfigError(f"--method {method}: unknown")


@dataclass
class AttackAux:
    """What an attack needs besides the attacked model: helper chat backends and transfer models.

    ``None`` means the default: PAIR's attacker and rating judge are the attacked model itself,
    AutoDAN mutates by synonym substitution, GCG optimises on the attacked model alone.
    """

    attacker: Any = None
    rating_judge: Any = None
    rephraser: Any = None
    transfer: list[Any] = field(default_factory=list)  # extra models (the tokenizer is the attacked model's)


class _NamedBackend:
    """An HTTP backend whose errors name the command-line option that configured it."""

    def __init__(self, backend: Any, option: str) -> None:
        self.backend, self.option, self.name = backend, option, getattr(backend, "name", option)

    def _call(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        from advlab.models.backends import BackendError

        try:
            return fn(*args, **kwargs)
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


def _load_local(name: str, option: str, cfg: AttackLLMConfig, local: tuple[Any, Any], device: Any) -> tuple[Any, Any]:
    """The attacked model when ``name`` is --model, else ``name`` loaded as a chat model."""
    from advlab.errors import ModelError

    if name.strip() == str(cfg.model).strip():
        return local
    from advlab.models import load_chat_model

    try:
        return load_chat_model(name.strip(), device=device)
    except ModelError as exc:
        raise ModelError(f"{option} {name}: {exc}") from None


def build_aux(cfg: AttackLLMConfig, model: Any, tok: Any, device: Any) -> AttackAux:
    """Helper backends and transfer models from the config; every model is loaded (and checked) here,
    before the run directory is created. HTTP backends are not contacted until the attack runs."""
    from advlab.models.backends import HFChatBackend, OpenAIChatBackend

    aux = AttackAux()
    for role in BACKEND_ROLES:
        url, name = getattr(cfg, f"{role}_url"), getattr(cfg, f"{role}_model")
        opt = "--" + role.replace("_", "-")
        if url is not None:
            http = OpenAIChatBackend(
                url, name, api_key_env=cfg.api_key_env, timeout=cfg.http_timeout, max_retries=cfg.http_retries
            )
            setattr(aux, role, _NamedBackend(http, f"{opt}-url"))
        elif name is not None:
            m, t = _load_local(name, f"{opt}-model", cfg, (model, tok), device)
            setattr(aux, role, HFChatBackend(m, t, name=name))
    for name in cfg.transfer_models:
        m, t = _load_local(name, "--transfer-model", cfg, (model, tok), device)
        require(
            t.get_vocab() == tok.get_vocab(),
            f"--transfer-model {name}: its tokenizer differs from --model's; transfer GCG needs one shared tokenizer",
        )
        aux.transfer.append(m)
    return aux


class _RatingProgress:
    """A PAIR rating judge that reports each round: ``on_step(round, success_rating - best rating)``.

    PAIR calls ``rate_many`` once per round with every live stream's reply, so this is the one
    per-round hook that run_pair offers (a round where no attacker reply parsed is not rated).
    """

    def __init__(self, judge: Any, success_rating: int, on_step: Callable[[int, float], None] | None) -> None:
        self.judge, self.success_rating, self.on_step, self.rounds = judge, success_rating, on_step, 0

    def rate_many(self, pairs: list[tuple[str, str]]) -> list[Any]:
        out = self.judge.rate_many(pairs)
        self.rounds += 1
        if self.on_step is not None and out:
            self.on_step(self.rounds, float(self.success_rating - max(r.rating for r in out)))
        return out


def attack_one(
    model: Any,
    tokenizer: Any,
    formatter: Any,
    behavior: Any,
    cfg: AttackLLMConfig,
    judges: Sequence[Any],
    *,
    on_step: Callable[[int, float], None] | None = None,
    aux: AttackAux | None = None,
) -> dict[str, Any]:
    """Attack one behaviour, generate from the adversarial input, judge; return the record.

    ``on_step(steps_done, current_loss)`` is called as the attack advances (per GCG/embedding step,
    AutoDAN generation, PAIR round)."""
    aux = aux or AttackAux()
    if cfg.method == "gcg":
        from advlab.attacks.llm.gcg import run_gcg

        segs = formatter.segments(behavior.request, cfg.init, behavior.target)
        models = [model, *aux.transfer] if aux.transfer else model
        res = run_gcg(models, tokenizer, segs, cfg.gcg_config(), on_step=on_step)
        gen = {"input_ids": [res.adv_prompt_ids]}
    elif cfg.method == "embedding":
        from advlab.attacks.llm.embedding import run_embedding_attack

        slot_text = cfg.init if cfg.embedding_mode == "suffix" else ""
        segs = formatter.segments(behavior.request, slot_text, behavior.target)
        # on_step fires live at every evaluation (step 0 = the clean prompt, then after each update)
        res = run_embedding_attack(model, tokenizer, segs, cfg.embedding_config(), on_step=on_step)[0]
        gen = {"inputs_embeds": res.adv_embeds}
    elif cfg.method == "autodan":
        fn = _attack_fn("autodan")
        progress = None if on_step is None else (lambda step, loss: on_step(step + 1, loss))
        res = fn(
            model,
            tokenizer,
            behavior,
            _other_config(cfg),
            formatter=formatter,
            backend=aux.rephraser,
            progress=progress,
        )
        gen = {"input_ids": [res.adv_prompt_ids]}
    else:
        from advlab.judges.rating import RatingJudge
        from advlab.models.backends import HFChatBackend

        fn = _attack_fn("pair")
        pcfg = _other_config(cfg)
        judge_backend = aux.rating_judge or HFChatBackend(model, tokenizer, name="target")
        rater = _RatingProgress(
            RatingJudge(judge_backend, max_new_tokens=pcfg.judge_max_new_tokens), pcfg.success_rating, on_step
        )
        res = fn(model, tokenizer, behavior, pcfg, formatter=formatter, attacker=aux.attacker, judge=rater)
        gen = {"input_ids": [res.adv_prompt_ids]}
    require(res.adv_prompt_ids is not None, f"{cfg.method} returned no adversarial prompt ids", ConfigError)
    completion, verdicts = generate_and_judge(model, tokenizer, behavior, cfg, judges, gen)
    return make_record(
        behavior,
        cfg,
        judges,
        completion,
        verdicts,
        adv_string=res.adv_string,
        adv_prompt=tokenizer.decode(res.adv_prompt_ids),
        best_loss=res.best_loss,
        loss_history=res.loss_history,
        early_stopped=res.early_stopped,
        budget=asdict(res.budget),
        details=_details(cfg.method, res.extra),
    )


# per method: the result's ``extra`` keys worth keeping in the record (small, JSON-able)
_DETAIL_KEYS = {
    "gcg": ("init_loss", "filtered_out", "adv_ids"),
    "embedding": ("success_step", "radius", "max_delta_norm"),
    "autodan": ("stop_reason", "mutation", "mutations", "rephrase_fallbacks", "template"),
    "pair": (
        "best_rating",
        "best_iteration",
        "best_stream",
        "ratings",
        "queries",
        "unparsable_attacker_replies",
        "unreadable_ratings",
        "completion",
    ),
}


def _details(method: str, extra: dict[str, Any]) -> dict[str, Any]:
    return {k: extra[k] for k in _DETAIL_KEYS.get(method, ()) if k in extra}


def generate_and_judge(
    model: Any, tokenizer: Any, behavior: Any, cfg: AttackLLMConfig, judges: Sequence[Any], gen: dict[str, Any]
) -> tuple[str, dict[str, Any]]:
    """Greedy completion from the adversarial input (``input_ids`` or ``inputs_embeds``; the target is
    never appended) and every judge's verdict on it."""
    from advlab.attacks.llm.common import eos_token_ids, greedy_generate, pad_id_of

    new = greedy_generate(
        model,
        max_new_tokens=cfg.max_new_tokens,
        eos_ids=eos_token_ids(model, tokenizer),
        pad_id=pad_id_of(tokenizer),
        **gen,
    )[0]
    completion = tokenizer.decode(new, skip_special_tokens=True)
    verdicts = {j.name: j.judge(behavior.request, completion).to_dict() for j in judges}
    return completion, verdicts


def make_record(
    behavior: Any,
    cfg: AttackLLMConfig,
    judges: Sequence[Any],
    completion: str,
    verdicts: dict[str, Any],
    *,
    adv_string: str | None,
    adv_prompt: str | None,
    best_loss: float,
    loss_history: list[float],
    early_stopped: bool,
    budget: dict[str, Any],
    details: dict[str, Any],
    **more: Any,
) -> dict[str, Any]:
    """One results.jsonl record (DESIGN.md fields, then the budget, then method details).
    ``success`` is the first judge's verdict."""
    return {
        "id": str(behavior.id),
        "behavior": behavior.behavior,
        "target": behavior.target,
        "category": behavior.category,
        "method": cfg.method,
        "mode": cfg.mode,
        "adv_string": adv_string,
        "adv_prompt": adv_prompt,
        "best_loss": best_loss,
        "loss_history": loss_history,
        "completion": completion,
        "judges": verdicts,
        "success": bool(verdicts[judges[0].name]["jailbroken"]),
        "early_stopped": early_stopped,
        **{k: budget.get(k) for k in ("steps", "forward_passes", "backward_passes", "seconds")},
        **more,
        "details": details,
    }


def _other_config(cfg: AttackLLMConfig) -> Any:
    """AutoDAN / PAIR config from the shared options (their own defaults otherwise)."""
    if cfg.method == "autodan":
        from advlab.attacks.llm.autodan import AutoDANConfig

        return AutoDANConfig(steps=cfg.steps, population_size=cfg.population, early_stop=cfg.early_stop, seed=cfg.seed)
    from advlab.attacks.llm.pair import PAIRConfig

    return PAIRConfig(n_iterations=cfg.steps, n_streams=cfg.n_streams, early_stop=cfg.early_stop, seed=cfg.seed)


def compute_metrics(records: Sequence[dict[str, Any]], default_judge: str) -> dict[str, Any]:
    """ASR per judge (fraction of records whose verdict is jailbroken) and the budget beside it."""
    n = len(records)
    judges: list[str] = []
    for r in records:
        for k in r.get("judges", {}):
            if k not in judges:
                judges.append(k)
    asr_by = {
        j: (sum(bool(r["judges"][j]["jailbroken"]) for r in records if j in r["judges"]) / n if n else None)
        for j in judges
    }

    def agg(key: str) -> dict[str, float | None]:
        vals = [float(r[key]) for r in records if r.get(key) is not None]
        if not vals:
            return {"mean": None, "median": None, "total": None}
        return {"mean": statistics.fmean(vals), "median": statistics.median(vals), "total": sum(vals)}

    losses = [float(r["best_loss"]) for r in records if r.get("best_loss") is not None]
    return {
        "asr": asr_by.get(default_judge) if n else None,
        "asr_by_judge": asr_by,
        "default_judge": default_judge,
        "n": n,
        "n_success": sum(bool(r.get("success")) for r in records),
        "early_stopped": sum(bool(r.get("early_stopped")) for r in records),
        "median_best_loss": statistics.median(losses) if losses else None,
        "budget": {k: agg(k) for k in ("steps", "forward_passes", "backward_passes", "seconds")},
    }


def run_attack_llm(
    cfg: AttackLLMConfig,
    out: str | Path,
    *,
    device: str = "auto",
    argv: list[str] | None = None,
    model_and_tokenizer: tuple[Any, Any] | None = None,
    judges: Sequence[Any] | None = None,
    show_progress: bool = True,
    aux: AttackAux | None = None,
) -> dict[str, Any]:
    """Run the attack over the behaviours into run directory ``out``; returns the metrics.

    ``aux`` replaces the helper backends / transfer models the config would load (tests, notebooks)."""
    from advlab import distributed
    from advlab.runs import RunDir, check_out_path
    from advlab.utils import resolve_device

    check_out_path(out)
    dev = distributed.local_device(resolve_device(device))  # a bare cuda becomes cuda:LOCAL_RANK under a launcher
    behaviors = load_attack_behaviors(cfg)
    judge_objs = list(judges) if judges is not None else make_judges(cfg.judges, cfg.judge_model)
    if cfg.method in ("autodan", "pair"):
        _attack_fn(cfg.method)  # fail early when the method is not available
    check_universal_resume(cfg, out, behaviors)
    # gloo for a CPU device (also on a GPU machine), nccl for CUDA; rank 0 of 1 without a launcher
    shard = distributed.init_from_env(dev)
    if model_and_tokenizer is None:
        from advlab.models import load_chat_model

        model, tok = load_chat_model(cfg.model, device=dev)
    else:
        model, tok = model_and_tokenizer
    from advlab.models.formatting import ChatFormatter

    formatter = ChatFormatter(
        tok,
        system_prompt=cfg.system_prompt,
        slot="request" if cfg.embedding_mode == "instruction" and cfg.method == "embedding" else "suffix",
    )
    aux = aux if aux is not None else build_aux(cfg, model, tok, dev)
    preflight(model, tok, formatter, behaviors, cfg, aux)
    config = asdict(cfg)
    run = RunDir(
        out,
        JOB,
        config,
        seed=cfg.seed,
        device=str(dev),
        argv=argv,
        resume_ignore=RESUME_IGNORE,
        rank=shard.rank,
        world_size=shard.world_size,
    )
    with run:  # opened on every rank, rank 0 first (RunDir.open_all_ranks)
        todo = list(run.pending(behaviors, key=lambda b: str(b.id)))
        show = show_progress and shard.is_main
        if cfg.universal:
            _loop_universal(model, tok, formatter, behaviors, todo, cfg, judge_objs, run, show, aux)
        else:
            _loop(model, tok, formatter, todo, cfg, judge_objs, run, show, aux)
        distributed.barrier()  # every rank's records are on disk before rank 0 merges them
        metrics = compute_metrics(_merged(run, behaviors), judge_objs[0].name)
        metrics.update(mode_metrics(cfg, run.path, metrics))
        run.write_metrics(metrics)
        run.update_manifest(budget=metrics["budget"])
    if shard.is_main:
        from advlab.report.html import write_report

        write_report(run.path)
    return metrics


def preflight(
    model: Any, tok: Any, formatter: Any, behaviors: Sequence[Any], cfg: AttackLLMConfig, aux: AttackAux | None = None
) -> None:
    """Checks that need the model and tokenizer, done before the run directory is created."""
    from advlab.attacks.llm.common import embedding_matrix

    vocab = int(embedding_matrix(model).shape[0])
    if cfg.method == "gcg":
        require(
            cfg.topk <= vocab, f"--topk {cfg.topk} exceeds the vocabulary size {vocab}; pass --topk {vocab} or less"
        )
        for name, m in zip(cfg.transfer_models, aux.transfer if aux is not None else []):
            other = int(embedding_matrix(m).shape[0])
            require(
                other == vocab,
                f"--transfer-model {name}: vocabulary size {other} differs from --model's {vocab}; "
                "transfer GCG needs one shared tokenizer",
            )
    if cfg.method == "gcg" or (cfg.method == "embedding" and cfg.embedding_mode == "suffix"):
        slot_lens = set()
        for b in behaviors:
            segs = formatter.segments(b.request, cfg.init, b.target)
            require(len(segs.slot) > 0, f"--init {cfg.init!r} tokenises to zero tokens; pass a non-empty string")
            require(len(segs.target) > 0, f"behaviour {b.id} has an empty target; give it a target string")
            slot_lens.add(len(segs.slot))
            if cfg.method == "gcg":
                require(
                    cfg.n_replace <= len(segs.slot),
                    f"--n-replace {cfg.n_replace} exceeds the {len(segs.slot)} tokens of --init; lower it",
                )
        require(
            not cfg.universal or len(slot_lens) == 1,
            f"--universal: --init {cfg.init!r} tokenises to different lengths next to different behaviours; "
            "use a string of separate simple tokens such as 'x x x x x'",
        )


def check_universal_resume(cfg: AttackLLMConfig, out: str | Path, behaviors: Sequence[Any]) -> None:
    """Universal mode runs in one process, and a stored suffix must belong to the selected behaviours."""
    import os

    if not cfg.universal:
        return
    require(
        int(os.environ.get("WORLD_SIZE", "1")) <= 1,
        "--universal optimises one suffix in one process; launch it without accelerate launch / torchrun",
    )
    stored = _read_universal(Path(out))
    if stored is not None:
        ids = [str(b.id) for b in behaviors]
        require(
            stored.get("behavior_ids") == ids,
            f"{Path(out) / UNIVERSAL_FILE} holds a suffix optimised over other behaviours "
            f"({len(stored.get('behavior_ids') or [])}) than the {len(ids)} selected now; "
            "use the same --behaviors/--limit or a new --out",
        )


def _read_universal(path: Path) -> dict[str, Any] | None:
    import json

    f = Path(path) / UNIVERSAL_FILE
    if not f.exists():
        return None
    try:
        return json.loads(f.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return None  # unreadable (atomic writes make this unlikely): optimise again


def mode_metrics(cfg: AttackLLMConfig, run_path: Path, metrics: dict[str, Any]) -> dict[str, Any]:
    """Mode fields for metrics.json; in universal mode the budget total is the one shared attack's."""
    extra: dict[str, Any] = {"method": cfg.method, "mode": cfg.mode, "transfer_models": list(cfg.transfer_models)}
    if cfg.universal:
        u = _read_universal(Path(run_path))
        if u is not None:
            keys = ("steps", "forward_passes", "backward_passes", "seconds")
            extra["universal"] = {k: u.get(k) for k in ("adv_string", "best_loss", "early_stopped", *keys)}
            for k in keys:
                if metrics.get("budget", {}).get(k, {}).get("total") is not None:
                    metrics["budget"][k]["total"] = u.get(k)
    return extra


def _merged(run: Any, behaviors: Sequence[Any]) -> list[dict[str, Any]]:
    """Records of the behaviours of this config (all ranks), in behaviour order."""
    by_id = {str(r["id"]): r for r in run.all_records()}
    return [by_id[str(b.id)] for b in behaviors if str(b.id) in by_id]


class _Bar:
    """A rich progress bar (or nothing) that moves with every attack step.

    ``total`` counts items (behaviours, or steps of a universal suffix); ``on_step(done, loss)``
    sets the current item's fraction ``done / steps`` and shows the current loss; ``item_done``
    advances by one item and updates the running ASR (successes / judged behaviours).
    """

    def __init__(self, show: bool, label: str, total: int, completed: int, wins: int, steps: int) -> None:
        self.show, self.label, self.total, self.completed = show, label, total, completed
        self.wins, self.judged, self.steps = wins, completed, max(1, steps)
        self.prog: Any = None
        self.task: Any = None

    def __enter__(self) -> _Bar:
        if self.show:
            from rich.console import Console
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

            self.prog = Progress(
                TextColumn("[bold]{task.fields[label]}"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("ASR {task.fields[asr]}  loss {task.fields[loss]}"),
                TimeElapsedColumn(),
                console=Console(stderr=True),
                transient=False,
            )
            self.prog.__enter__()
            self.task = self.prog.add_task(
                "attack", total=self.total, completed=self.completed, label=self.label, asr=self.asr(), loss="-"
            )
        return self

    def __exit__(self, *exc: object) -> None:
        if self.prog is not None:
            self.prog.__exit__(*exc)

    def asr(self) -> str:
        return f"{self.wins}/{self.judged} = {self.wins / self.judged:.0%}" if self.judged else "-"

    def on_step(self, done: int, loss: float) -> None:
        if self.prog is None:
            return
        frac = min(max(done, 0), self.steps) / self.steps
        shown = "-" if loss != loss else f"{loss:.3f}"  # NaN: not known
        self.prog.update(
            self.task, completed=self.completed + frac, loss=f"{shown} (step {done}/{self.steps})", asr=self.asr()
        )

    def step_item(self, done: int, loss: float) -> None:
        """Universal suffix: one item per step."""
        self.completed = min(done, self.total)
        if self.prog is not None:
            shown = "-" if loss != loss else f"{loss:.3f}"
            self.prog.update(self.task, completed=self.completed, loss=shown)

    def item_done(self, success: bool | None = None) -> None:
        self.completed += 1
        if success is not None:
            self.judged += 1
            self.wins += int(bool(success))
        if self.prog is not None:
            self.prog.update(self.task, completed=self.completed, asr=self.asr())


def _loop(
    model: Any,
    tok: Any,
    formatter: Any,
    todo: Sequence[Any],
    cfg: AttackLLMConfig,
    judges: Sequence[Any],
    run: Any,
    show: bool,
    aux: AttackAux | None = None,
) -> None:
    """Attack, generate and judge each pending behaviour; one record each, appended as it finishes."""
    import torch

    from advlab.utils import seed_everything

    done = run.records
    wins = sum(bool(r.get("success")) for r in done)
    label = f"attack {cfg.method}" + (" (transfer)" if cfg.transfer_models else "")
    with _Bar(show, label, len(todo) + len(done), len(done), wins, int(cfg.steps or 1)) as bar:
        for b in todo:
            seed_everything(cfg.seed)
            with torch.enable_grad():
                rec = attack_one(model, tok, formatter, b, cfg, judges, on_step=bar.on_step if show else None, aux=aux)
            run.append(rec)
            bar.item_done(rec["success"])


def universal_suffix(
    model: Any,
    tok: Any,
    formatter: Any,
    behaviors: Sequence[Any],
    cfg: AttackLLMConfig,
    run_path: Path,
    *,
    aux: AttackAux | None = None,
    on_step: Callable[[int, float], None] | None = None,
) -> dict[str, Any]:
    """The universal GCG suffix over ``behaviors`` (and the transfer models): read from
    ``universal_suffix.json`` in the run directory when a previous (interrupted) run stored it, else
    optimised now, s* = argmin_s (1/B) Σ_b Σ_m L_{b,m}(s), and stored atomically before any record."""
    import torch

    from advlab.attacks.llm.gcg import run_gcg
    from advlab.runs import atomic_write_json
    from advlab.utils import seed_everything

    ids = [str(b.id) for b in behaviors]
    stored = _read_universal(run_path)
    if stored is not None and stored.get("behavior_ids") == ids and stored.get("adv_ids"):
        return stored
    aux = aux or AttackAux()
    segs = [formatter.segments(b.request, cfg.init, b.target) for b in behaviors]
    models = [model, *aux.transfer] if aux.transfer else model
    seed_everything(cfg.seed)
    with torch.enable_grad():
        res = run_gcg(models, tok, segs, cfg.gcg_config(), on_step=on_step)
    suffix = {
        "behavior_ids": ids,
        "transfer_models": list(cfg.transfer_models),
        "adv_ids": list(res.extra["adv_ids"]),
        "adv_string": res.adv_string,
        "best_loss": res.best_loss,
        "init_loss": res.extra.get("init_loss"),
        "loss_history": res.loss_history,
        "early_stopped": res.early_stopped,
        "steps": res.budget.steps,
        "forward_passes": res.budget.forward_passes,
        "backward_passes": res.budget.backward_passes,
        "seconds": res.budget.seconds,
    }
    atomic_write_json(Path(run_path) / UNIVERSAL_FILE, suffix)
    return suffix


def _behavior_loss(model: Any, prompt_ids: list[int], target_ids: list[int]) -> float:
    """L_b(s*) = −(1/T) Σ_t log p(y_t | prompt with s*, y_<t): this behaviour's target loss."""
    from advlab.attacks.llm.common import batch_target_loss, model_device, to_ids_tensor

    dev = model_device(model)
    rows = to_ids_tensor([*prompt_ids, *target_ids], dev).unsqueeze(0)
    return float(batch_target_loss(model, rows, to_ids_tensor(target_ids, dev))[0]) if target_ids else float("nan")


def _loop_universal(
    model: Any,
    tok: Any,
    formatter: Any,
    behaviors: Sequence[Any],
    todo: Sequence[Any],
    cfg: AttackLLMConfig,
    judges: Sequence[Any],
    run: Any,
    show: bool,
    aux: AttackAux | None = None,
) -> None:
    """Universal GCG: one suffix for every behaviour (computed once), then per behaviour its own
    greedy completion from its prompt with that suffix, its judges' verdicts and its record."""
    if not todo:
        return
    done = run.records
    label = f"gcg universal suffix over {len(behaviors)}" + (" (transfer)" if cfg.transfer_models else "")
    stored = _read_universal(run.path)
    computed = stored is not None and stored.get("behavior_ids") == [str(b.id) for b in behaviors]
    with _Bar(show and not computed, label, int(cfg.steps or 1), 0, 0, 1) as bar:
        suffix = universal_suffix(
            model, tok, formatter, behaviors, cfg, run.path, aux=aux, on_step=bar.step_item if bar.show else None
        )
    adv_ids = list(suffix["adv_ids"])
    wins = sum(bool(r.get("success")) for r in done)
    with _Bar(show, "judge gcg universal", len(todo) + len(done), len(done), wins, 1) as bar:
        for b in todo:
            segs = formatter.segments(b.request, cfg.init, b.target)
            prompt = [*segs.before, *adv_ids, *segs.after]
            completion, verdicts = generate_and_judge(model, tok, b, cfg, judges, {"input_ids": [prompt]})
            rec = make_record(
                b,
                cfg,
                judges,
                completion,
                verdicts,
                adv_string=suffix["adv_string"],
                adv_prompt=tok.decode(prompt),
                best_loss=suffix["best_loss"],
                loss_history=suffix["loss_history"],
                early_stopped=suffix["early_stopped"],
                budget=suffix,
                details={"adv_ids": adv_ids, "n_behaviors": len(behaviors)},
                behavior_loss=_behavior_loss(model, prompt, list(segs.target)),
            )
            run.append(rec)
            bar.item_done(rec["success"])
