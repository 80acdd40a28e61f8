"""The cache key of a gym build: a fingerprint of the recipe's code and data.

The recipe is every file :func:`recipe_files` lists: the gym's data modules and tables
(``data/gym*.py``, ``data/builtin/gym_*.json``) and the build's modules (``models/gym_*.py``,
``models/lm_trainer.py``, ``models/zoo*.py``). Python files count by their AST without docstrings
and comments, JSON tables by their content without layout and without ``_``-prefixed notes, so editing
documentation keeps cached builds while any change of code or data makes a new one.
"""

from __future__ import annotations

import ast
import hashlib
import json
from pathlib import Path

from advlab.utils import cache_dir

PACKAGE_ROOT = Path(__file__).resolve().parents[1]  # src/advlab
RECIPE_GLOBS = (
    "data/gym*.py",
    "data/builtin/gym_*.json",
    "models/gym_*.py",
    "models/lm_trainer.py",
    "models/zoo*.py",
)


def code_fingerprint(source: str) -> str:
    """SHA-256 of Python source with comments, docstrings and layout removed (its AST): editing the
    documentation of the recipe does not invalidate cached builds; changing its code or data does."""
    tree = ast.parse(source)
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if (
            isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
            and body
            and isinstance(body[0], ast.Expr)
            and isinstance(body[0].value, ast.Constant)
            and isinstance(body[0].value.value, str)
        ):
            node.body = body[1:] or [ast.Pass()]
    return hashlib.sha256(ast.dump(tree, include_attributes=False).encode("utf-8")).hexdigest()


def table_fingerprint(text: str) -> str:
    """SHA-256 of a JSON table's content: key order kept (it fixes item order), layout and top-level
    ``_``-prefixed notes ignored."""
    data = json.loads(text)
    if isinstance(data, dict):
        data = {k: v for k, v in data.items() if not k.startswith("_")}
    return hashlib.sha256(json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode("utf-8")).hexdigest()


def recipe_files(root: Path = PACKAGE_ROOT) -> list[Path]:
    """The files that make up the gym's recipe under the package directory ``root``, sorted."""
    return sorted({p for pattern in RECIPE_GLOBS for p in root.glob(pattern)})


def recipe_hash(root: Path = PACKAGE_ROOT) -> str:
    """10 hex digits over the fingerprints of :func:`recipe_files` (with their paths), so that a
    cached build made by another version of advlab is never reused."""
    h = hashlib.sha256()
    for path in recipe_files(root):
        text = path.read_text(encoding="utf-8")
        digest = table_fingerprint(text) if path.suffix == ".json" else code_fingerprint(text)
        h.update(f"{path.relative_to(root).as_posix()}\0{digest}\n".encode())
    return h.hexdigest()[:10]


def cached_gym_path(quick: bool, seed: int) -> Path:
    """Where :func:`advlab.models.zoo.get_safety_gym` keeps the build of (``quick``, ``seed``)."""
    return cache_dir() / "zoo" / f"safety-gym-{'quick' if quick else 'full'}-s{seed}-{recipe_hash()}"
