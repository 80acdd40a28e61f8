"""Golden outputs of ``attack llm`` (GCG individual and universal, embedding) and ``eval llm`` on the quick
safety gym, recorded before the LLM code was moved onto the job layer (issue 11): the same config and seed
must give the same records and metrics. Ids, strings, booleans and step counts compare exactly, floats
(losses) to 1e-5; wall-clock fields (``seconds``) are not recorded.

Re-record (only when a change of results is intended and explained in the commit):
``ADVLAB_RECORD_GOLDEN=1 pytest tests/golden/test_golden_llm.py``.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from pathlib import Path

import pytest

from advlab.pipelines.attack_llm import AttackLLMConfig, run_attack_llm
from advlab.pipelines.eval_llm import EvalLLMConfig, run_eval_llm
from advlab.runs import read_records

HERE = Path(__file__).parent
RECORD = os.environ.get("ADVLAB_RECORD_GOLDEN") == "1"
DROP = {"seconds", "model"}  # wall-clock time; the gym's cache path

ATTACKS = {
    "attack_llm_gcg": {"method": "gcg", "limit": 2, "steps": 3, "search_width": 16, "topk": 16, "max_new_tokens": 16},
    "attack_llm_gcg_universal": {
        "method": "gcg", "universal": True, "limit": 2, "steps": 2, "search_width": 8, "topk": 8, "max_new_tokens": 8,
    },
    "attack_llm_embedding": {"method": "embedding", "limit": 2, "steps": 5, "max_new_tokens": 16},
}


def _clean(x):
    if isinstance(x, dict):
        return {k: _clean(v) for k, v in x.items() if k not in DROP}
    if isinstance(x, list):
        return [_clean(v) for v in x]
    return x


def _compare(got, want, where="$"):
    if isinstance(want, dict):
        assert isinstance(got, dict) and sorted(got) == sorted(want), f"{where}: keys {sorted(got)} != {sorted(want)}"
        for k in want:
            _compare(got[k], want[k], f"{where}.{k}")
    elif isinstance(want, list):
        assert isinstance(got, list) and len(got) == len(want), f"{where}: length {len(got)} != {len(want)}"
        for i, (g, w) in enumerate(zip(got, want)):
            _compare(g, w, f"{where}[{i}]")
    elif isinstance(want, float) and not isinstance(want, bool):
        assert isinstance(got, (int, float)), f"{where}: {got!r} is not a number"
        if math.isnan(want):
            assert math.isnan(got), f"{where}: {got} != nan"
        else:
            assert got == pytest.approx(want, rel=1e-5, abs=1e-5), f"{where}: {got} != {want}"
    else:
        assert got == want, f"{where}: {got!r} != {want!r}"


def _weights_hash(gym_dir: Path) -> str:
    return hashlib.sha256((Path(gym_dir) / "model.safetensors").read_bytes()).hexdigest()[:16]


def _check(name: str, out: Path, metrics: dict, gym_dir: Path) -> None:
    records = read_records(out / "results.jsonl")
    got = _clean({"gym_weights": _weights_hash(gym_dir), "records": records, "metrics": metrics})
    path = HERE / f"{name}.json"
    if RECORD:
        path.write_text(json.dumps(got, indent=1, sort_keys=True) + "\n", encoding="utf-8")
        return
    want = json.loads(path.read_text(encoding="utf-8"))
    assert got["gym_weights"] == want["gym_weights"], (
        "the quick gym's weights changed (models/zoo* or data/gym* edited): the goldens describe another model; "
        "re-record them from the commit before the change, see the module docstring"
    )
    _compare(got, want)


@pytest.mark.parametrize("name", sorted(ATTACKS))
def test_attack_llm_golden(name, gym, gym_dir, tmp_path):
    cfg = AttackLLMConfig(model=str(gym_dir), seed=0, **ATTACKS[name])
    out = tmp_path / name
    metrics = run_attack_llm(cfg, out, device="cpu", model_and_tokenizer=gym, show_progress=False)
    _check(name, out, metrics, gym_dir)


def test_eval_llm_golden(gym, gym_dir, tmp_path):
    cfg = EvalLLMConfig(model=str(gym_dir), limit=3, max_new_tokens=16, batch_size=4, seed=0)
    out = tmp_path / "eval"
    metrics = run_eval_llm(cfg, out, device="cpu", model_and_tokenizer=gym)
    _check("eval_llm", out, metrics, gym_dir)
