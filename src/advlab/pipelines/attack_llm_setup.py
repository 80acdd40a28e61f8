"""What ``attack llm`` prepares before its run directory exists: the behaviours, the attack's own config,
helper backends and transfer models, checks that need the model, the universal-suffix file of a resumed run."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from advlab.attacks.llm.base import AttackHelpers
from advlab.attacks.llm.common import embedding_matrix
from advlab.attacks.llm.registry import get_llm_attack
from advlab.data.behavior_loaders import load_behaviors
from advlab.errors import DataError, ModelError, require
from advlab.models.backends import HFChatBackend, NamedBackend, OpenAIChatBackend
from advlab.models.chat import load_chat_model
from advlab.models.formatting import ChatFormatter
from advlab.pipelines.attack_llm_config import BACKEND_ROLES, CONFIG_RENAMES, UNIVERSAL_FILE, AttackLLMConfig
from advlab.utils import fill


def load_attack_behaviors(cfg: AttackLLMConfig) -> list[Any]:
    """The behaviours to attack (first ``limit``), validated before any model is loaded."""
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


def attack_config(cfg: AttackLLMConfig, method: str | None = None) -> Any:
    """The config dataclass of ``method`` (default ``cfg.method``: ``GCGConfig``, ``EmbeddingAttackConfig``,
    ...) filled from ``cfg``'s same-named fields, and :data:`CONFIG_RENAMES` where the attack names one otherwise."""
    method = method or cfg.method
    rename = {source: field for field, source in CONFIG_RENAMES[method].items()}
    return fill(get_llm_attack(method).config_type, vars(cfg), rename=rename)


def _load_local(name: str, option: str, cfg: AttackLLMConfig, local: tuple[Any, Any], device: Any) -> tuple[Any, Any]:
    """The attacked model when ``name`` is --model, else ``name`` loaded as a chat model."""
    if name.strip() == str(cfg.model).strip():
        return local
    try:
        return load_chat_model(name.strip(), device=device)
    except ModelError as exc:
        raise ModelError(f"{option} {name}: {exc}") from None


def build_helpers(cfg: AttackLLMConfig, model: Any, tok: Any, device: Any) -> AttackHelpers:
    """Helper backends and transfer models from the config; every model is loaded (and checked) here,
    before the run directory is created. HTTP backends are not contacted until the attack runs."""
    helpers = AttackHelpers()
    for role in BACKEND_ROLES:
        url, name = getattr(cfg, f"{role}_url"), getattr(cfg, f"{role}_model")
        opt = "--" + role.replace("_", "-")
        if url is not None:
            http = OpenAIChatBackend(
                url, name, api_key_env=cfg.api_key_env, timeout=cfg.http_timeout, max_retries=cfg.http_retries
            )
            setattr(helpers, role, NamedBackend(http, f"{opt}-url"))
        elif name is not None:
            m, t = _load_local(name, f"{opt}-model", cfg, (model, tok), device)
            setattr(helpers, role, HFChatBackend(m, t, name=name))
    for name in cfg.transfer_models:
        m, t = _load_local(name, "--transfer-model", cfg, (model, tok), device)
        require(
            t.get_vocab() == tok.get_vocab(),
            f"--transfer-model {name}: its tokenizer differs from --model's; transfer GCG needs one shared tokenizer",
        )
        helpers.transfer.append(m)
    return helpers


def preflight(
    model: Any, tok: Any, formatter: ChatFormatter, behaviors: Sequence[Any], cfg: AttackLLMConfig,
    helpers: AttackHelpers | None = None,
) -> None:
    """Checks that need the model and tokenizer, done before the run directory is created."""
    vocab = int(embedding_matrix(model).shape[0])
    if cfg.method == "gcg":
        require(
            cfg.topk <= vocab, f"--topk {cfg.topk} exceeds the vocabulary size {vocab}; pass --topk {vocab} or less"
        )
        for name, m in zip(cfg.transfer_models, helpers.transfer if helpers is not None else []):
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


def read_universal(run_path: Path) -> dict[str, Any] | None:
    """The stored universal suffix of a run directory (None when absent or unreadable)."""
    f = Path(run_path) / UNIVERSAL_FILE
    if not f.exists():
        return None
    try:
        return json.loads(f.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return None  # unreadable (atomic writes make this unlikely): optimise again


def check_universal_resume(cfg: AttackLLMConfig, out: str | Path, behaviors: Sequence[Any]) -> None:
    """Universal mode runs in one process, and a stored suffix must belong to the selected behaviours."""
    if not cfg.universal:
        return
    require(
        int(os.environ.get("WORLD_SIZE", "1")) <= 1,
        "--universal optimises one suffix in one process; launch it without accelerate launch / torchrun",
    )
    stored = read_universal(Path(out))
    if stored is not None:
        ids = [str(b.id) for b in behaviors]
        require(
            stored.get("behavior_ids") == ids,
            f"{Path(out) / UNIVERSAL_FILE} holds a suffix optimised over other behaviours "
            f"({len(stored.get('behavior_ids') or [])}) than the {len(ids)} selected now; "
            "use the same --behaviors/--limit or a new --out",
        )
