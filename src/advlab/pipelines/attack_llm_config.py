"""The configuration of ``advlab attack llm``: one flat dataclass (its field names are the config.yaml and
command-line contract), checked before any model loads. Light on purpose (no torch): the CLI imports its
defaults to build ``--help``.

Each attack's own config (:class:`~advlab.attacks.llm.gcg.GCGConfig`, ...) is filled from the same-named
fields by :func:`advlab.pipelines.attack_llm_setup.attack_config` (:data:`CONFIG_RENAMES` where an attack
names a field otherwise).
"""

from __future__ import annotations

import re
import urllib.parse
from dataclasses import dataclass, field

from advlab.errors import require

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
# attack config field -> the ``attack llm`` option that fills it, where the names differ
CONFIG_RENAMES: dict[str, dict[str, str]] = {
    "gcg": {"optim_str_init": "init", "use_mellowmax": "mellowmax"},
    "embedding": {"mode": "embedding_mode", "init_str": "init"},
    "autodan": {"population_size": "population"},
    "pair": {"n_iterations": "steps"},
}


def check_backend_url(url: str, option: str) -> None:
    """An http(s) URL with a host, and nothing secret in it (no user:password@, no query string)."""
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
