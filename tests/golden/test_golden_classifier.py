"""Golden outputs of the classifier and analysis commands on digits, recorded before they were moved onto
the job layer (issue 11): ``attack classifier --method worst-case``, ``analyze valley``, ``check-update`` and
``update classifier --method rcat`` (small budgets, fixed seed) must give the same records and metrics.
Ids, booleans, integers and strings compare exactly, floats to 1e-5; wall-clock fields are not recorded.

The two models are trained here (a few seeded epochs of a small MLP, one of them PGD-AT); their weights'
hash is part of the golden, so a change of the models is told apart from a change of the commands.

Re-record (only when a change of results is intended and explained in the commit):
``ADVLAB_RECORD_GOLDEN=1 pytest tests/golden/test_golden_classifier.py``.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import sys
from pathlib import Path

import pytest
import torch

from advlab.data.images import load_image_split
from advlab.models.classifiers import build_classifier, save_classifier
from advlab.runs import read_records
from advlab.training.classifier import pgd_at_loss, standard_loss, train_epoch

pytestmark = pytest.mark.slow

HERE = Path(__file__).parent
RECORD = os.environ.get("ADVLAB_RECORD_GOLDEN") == "1"
DROP = {"seconds"}  # wall-clock time

COMMANDS = {
    "attack_classifier_worst_case": lambda m, out: [
        "attack", "classifier", "--method", "worst-case", "--model", m["old"], "--eps", "0.1", "--eps", "0.2",
        "--steps", "5", "--limit", "48", "--batch-size", "20", "--seed", "3", "--out", out],
    "analyze_valley": lambda m, out: [
        "analyze", "valley", "--model", m["old"], "--data", "digits", "--steps", "8", "--n-examples", "16",
        "--batch-size", "4", "--seed", "3", "--out", out],
    "check_update": lambda m, out: [
        "check-update", "--old", m["old"], "--new", m["new"], "--steps", "5", "--limit", "60", "--batch-size", "25",
        "--eps", "0.15", "--seed", "3", "--out", out],
    "update_classifier_rcat": lambda m, out: [
        "update", "classifier", "--method", "rcat", "--old", m["old"], "--new", m["new"], "--epochs", "1",
        "--steps", "5", "--limit", "60", "--val-limit", "60", "--eps", "0.15", "--train-eps", "0.15",
        "--optimizer", "adam", "--seed", "3", "--out", out],
}  # fmt: skip


def _clean(x, models_dir: str):
    if isinstance(x, dict):
        return {k: _clean(v, models_dir) for k, v in x.items() if k not in DROP}
    if isinstance(x, list):
        return [_clean(v, models_dir) for v in x]
    if isinstance(x, str):
        return x.replace(models_dir, "MODELS")  # the models' temporary directory
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
    elif isinstance(want, float):
        assert isinstance(got, (int, float)) and not isinstance(got, bool), f"{where}: {got!r} is not a number"
        if math.isnan(want):
            assert math.isnan(got), f"{where}: {got} != nan"
        else:
            assert got == pytest.approx(want, rel=1e-5, abs=1e-6), f"{where}: {got} != {want}"
    else:
        assert got == want, f"{where}: {got!r} != {want!r}"


def _train(path: Path, seed: int, hidden: int, loss, epochs: int) -> Path:
    torch.manual_seed(seed)
    x, y = load_image_split("digits", "train")
    model = build_classifier("mlp", (1, 8, 8), 10, hidden=hidden, depth=1)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    for epoch in range(epochs):
        torch.manual_seed(seed * 100 + epoch)
        train_epoch(model, x, y, loss, opt, batch_size=64, generator=torch.Generator().manual_seed(epoch))
    meta = {"arch": "mlp", "input_shape": [1, 8, 8], "num_classes": 10, "data": "digits",
            "kwargs": {"hidden": hidden, "depth": 1}}
    return save_classifier(model.eval(), path, meta)


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> dict[str, str]:
    torch.set_num_threads(1)
    d = tmp_path_factory.mktemp("golden-models")
    return {"old": str(_train(d / "old", 1, 32, pgd_at_loss(0.15, 3), 5)),
            "new": str(_train(d / "new", 2, 64, standard_loss, 4)), "dir": str(d)}


def _weights_hash(models: dict[str, str]) -> str:
    h = hashlib.sha256()
    for k in ("old", "new"):
        h.update((Path(models[k]) / "model.safetensors").read_bytes())
    return h.hexdigest()[:16]


@pytest.fixture
def advlab(monkeypatch):
    from advlab.cli.main import run

    def call(*args: str) -> None:
        monkeypatch.setattr(sys, "argv", ["advlab", *map(str, args)])
        try:
            run()
        except SystemExit as exc:
            assert not exc.code, f"advlab {' '.join(args)} exited {exc.code}"

    return call


@pytest.mark.parametrize("name", list(COMMANDS))
def test_golden(name, models, advlab, tmp_path):
    out = tmp_path / name
    advlab(*COMMANDS[name](models, str(out)), "--device", "cpu")
    records = sorted(read_records(out / "results.jsonl"), key=lambda r: str(r["id"]))
    metrics = json.loads((out / "metrics.json").read_text())
    got = _clean({"weights": _weights_hash(models), "records": records, "metrics": metrics}, models["dir"])
    got = json.loads(json.dumps(got))  # the same types as read back from the file
    path = HERE / f"{name}.json"
    if RECORD:
        path.write_text(json.dumps(got, indent=1, sort_keys=True) + "\n", encoding="utf-8")
        return
    want = json.loads(path.read_text(encoding="utf-8"))
    assert got["weights"] == want["weights"], "the golden models changed (training code edited): re-record"
    _compare(got, want)
