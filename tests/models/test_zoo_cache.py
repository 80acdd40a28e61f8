"""The gym's cache key: it survives documentation edits and changes with any code or data edit."""

from __future__ import annotations

import json
import shutil

from advlab.models import zoo_cache
from advlab.models.zoo_cache import PACKAGE_ROOT, code_fingerprint, recipe_files, recipe_hash


def test_code_fingerprint_ignores_docs_but_not_code():
    src = 'X = 1\n\n\ndef f(a):\n    """Doc."""\n    return a + X\n'
    base = code_fingerprint(src)
    doc_edit = '"""Module doc."""\nX = 1  # a comment\n\n\ndef f(a):\n    """Another doc."""\n\n    return a + X\n'
    assert code_fingerprint(doc_edit) == base
    assert code_fingerprint(src.replace("X = 1", "X = 2")) != base
    assert code_fingerprint(src.replace("a + X", "a - X")) != base


def test_recipe_covers_the_gym_modules_and_tables():
    names = {p.relative_to(PACKAGE_ROOT).as_posix() for p in recipe_files()}
    for name in (
        "data/gym.py",
        "data/gym_requests.py",
        "data/gym_tasks.py",
        "data/gym_tables.py",
        "data/builtin/gym_requests.json",
        "data/builtin/gym_tasks.json",
        "data/builtin/gym_augment.json",
        "models/gym_config.py",
        "models/gym_pools.py",
        "models/gym_tokenizer.py",
        "models/gym_eval.py",
        "models/lm_trainer.py",
        "models/zoo.py",
        "models/zoo_cache.py",
    ):
        assert name in names, name
    assert len(recipe_hash()) == 10


def test_recipe_hash_changes_with_data_not_with_layout_or_notes(tmp_path):
    root = tmp_path / "advlab"
    for p in recipe_files():
        dst = root / p.relative_to(PACKAGE_ROOT)
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(p, dst)
    base = recipe_hash(root)
    table = root / "data" / "builtin" / "gym_tasks.json"
    data = json.loads(table.read_text(encoding="utf-8"))
    table.write_text(json.dumps({**data, "_about": "edited note"}, indent=4), encoding="utf-8")
    assert recipe_hash(root) == base  # layout and notes only
    data["words"] = [*data["words"], "zebra"]
    table.write_text(json.dumps(data), encoding="utf-8")
    assert recipe_hash(root) != base
    table.write_text(json.dumps({**data, "words": data["words"][:-1]}), encoding="utf-8")
    assert recipe_hash(root) == base
    (root / "models" / "zoo_cache.py").write_text("X = 2\n", encoding="utf-8")
    assert recipe_hash(root) != base


def test_cached_gym_path_names_preset_seed_and_recipe(tmp_path, monkeypatch):
    monkeypatch.setenv("ADVLAB_CACHE", str(tmp_path))
    path = zoo_cache.cached_gym_path(quick=False, seed=3)
    assert path == tmp_path / "zoo" / f"safety-gym-full-s3-{recipe_hash()}"
