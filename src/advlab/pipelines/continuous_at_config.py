"""Budgets of ``advlab reproduce continuous-at`` (Xhonneux et al. 2024, arXiv 2405.15589): one dataclass,
the default (full gym) and ``--quick`` (quick gym, a few minutes on 2 CPU cores). No torch here."""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from advlab.errors import require

MODELS = ("base", "cat", "capo", "r2d2")
TRAINED = ("cat", "capo", "r2d2")
ATTACKS = ("gcg", "embedding", "autodan")
# The gradient-masking check: the trained models under budgets stronger than any they trained against.
STRONG = ("gcg_2x", "embedding_4x", "embedding_unbounded")
ALL_ATTACKS = ATTACKS + STRONG
HELD_OUT = "builtin:gym-harmful-test"


@dataclass
class ContinuousATConfig:
    """Training steps per method, evaluation and attack budgets, and the ε sweep of CAT.

    ``strong``: also attack the trained models with GCG at 2× the steps and the embedding attack at 2× the
    steps with 4× the radius and unbounded (the gradient-masking check; base is not attacked again).

    ``model`` empty: the safety gym (quick with ``quick``). ``behaviors``: the held-out harmful behaviours
    attacked and used for clean refusal (the training overlap check guards them)."""

    model: str = ""
    quick: bool = False
    behaviors: str = HELD_OUT
    steps: dict[str, int] = field(default_factory=lambda: {"cat": 200, "capo": 200, "r2d2": 20})
    save_every: int = 50
    eps: float = 1.0
    r2d2_gcg_steps: int = 5
    r2d2_search_width: int = 512
    eval_limit: int = 96
    attack_limit: int = 20
    gcg_steps: int = 100
    gcg_search_width: int = 128
    embedding_steps: int = 100
    embedding_eps: float = 1.0
    strong: bool = True
    autodan_steps: int = 20
    autodan_population: int = 32
    max_new_tokens: int = 48
    sweep_eps: tuple[float, ...] = (0.0, 0.1, 0.3, 1.0, 3.0)
    sweep_steps: int = 100
    seed: int = 0
    device: str = "cpu"

    def __post_init__(self) -> None:
        self.sweep_eps = tuple(float(e) for e in self.sweep_eps)
        require(set(self.steps) == set(TRAINED), f"steps: give one count for each of {', '.join(TRAINED)}")
        require(all(int(v) >= 1 for v in self.steps.values()), "steps: every method needs at least 1 step")
        require(bool(str(self.behaviors).strip()), "--behaviors is empty; pass a behaviours file or builtin:NAME")
        require(all(e >= 0 for e in self.sweep_eps), "sweep eps values must be >= 0")
        for k in ("eval_limit", "attack_limit", "gcg_steps", "embedding_steps", "autodan_steps", "sweep_steps"):
            name = "--limit" if k == "attack_limit" else k
            require(getattr(self, k) >= 1, f"{name} {getattr(self, k)}: must be at least 1")

    def attack_options(self, attack: str) -> dict:
        """``attack llm`` options of ``attack`` (one of ALL_ATTACKS): method and budget."""
        gcg = {"method": "gcg", "search_width": self.gcg_search_width, "topk": min(256, self.gcg_search_width)}
        return {"gcg": {**gcg, "steps": self.gcg_steps},
                "gcg_2x": {**gcg, "steps": 2 * self.gcg_steps},
                "embedding": {"method": "embedding", "steps": self.embedding_steps, "eps": self.embedding_eps},
                "embedding_4x": {"method": "embedding", "steps": 2 * self.embedding_steps,
                                 "eps": 4 * self.embedding_eps},
                "embedding_unbounded": {"method": "embedding", "steps": 2 * self.embedding_steps, "eps": None},
                "autodan": {"method": "autodan", "steps": self.autodan_steps,
                            "population": self.autodan_population}}[attack]

    def attacks_of(self, model: str) -> tuple[str, ...]:
        """The attacks run on ``model``: the default budgets, and for trained models the stronger ones."""
        return ALL_ATTACKS if self.strong and model in TRAINED else ATTACKS

    def budget(self, attack: str) -> str:
        """The attack budget as written in the table."""
        o = self.attack_options(attack)
        if o["method"] == "gcg":
            return f"{o['steps']} steps x {o['search_width']} candidates"
        if o["method"] == "embedding":
            radius = "unbounded" if o["eps"] is None else f"eps {o['eps']:g}"
            return f"{o['steps']} Adam steps, {radius}"
        return f"{o['steps']} generations x {o['population']}"


def recipe_config(quick: bool = False, model: str = "", behaviors: str = HELD_OUT, seed: int = 0,
                  device: str = "cpu", limit: int | None = None) -> ContinuousATConfig:
    """The default budgets, or ``--quick``'s: tiny step counts and few behaviours; ``limit`` behaviours
    per attack replaces either's (20, or 6 with ``quick``)."""
    cfg = ContinuousATConfig(model=model, quick=quick, behaviors=behaviors, seed=seed, device=device)
    if quick:
        cfg = replace(cfg, steps={"cat": 30, "capo": 30, "r2d2": 3}, save_every=10, r2d2_gcg_steps=2,
                      r2d2_search_width=64, eval_limit=24, attack_limit=6, gcg_steps=20, gcg_search_width=64,
                      embedding_steps=30, autodan_steps=4, autodan_population=8, sweep_eps=(0.0, 0.3, 1.0),
                      sweep_steps=30, max_new_tokens=32)
    return cfg if limit is None else replace(cfg, attack_limit=limit)
