"""Model updates: per-sample flags, flip metrics, pair validation, fine-tuning and selection, the commands'
pipelines (check-update, update classifier, reproduce rcat)."""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn

from advlab import metrics as M
from advlab.analysis.update_check import CheckConfig, Flags, check_pair_meta, check_update, flip_metrics
from advlab.attacks.classifier.robust import robust_flags as model_flags
from advlab.errors import ConfigError, ModelError
from advlab.models.classifiers import build_classifier, load_classifier, save_classifier
from advlab.pipelines.check_update import run_check_update
from advlab.pipelines.reproduce_rcat import rcat_recipe
from advlab.pipelines.update_classifier import run_update
from advlab.training.classifier.epoch import train_epoch
from advlab.training.classifier.rcat_recipe import ModelSpec, RecipeConfig
from advlab.training.classifier.standard import standard_loss
from advlab.training.classifier.update import Splits, update_classifier
from advlab.training.classifier.update_config import UpdateConfig


@pytest.fixture(autouse=True)
def _one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


class Fixed(nn.Module):
    """Predicts class 1 when the mean pixel is above 0.5, else class 0 (2 classes)."""

    def __init__(self, flip: bool = False):
        super().__init__()
        self.w = nn.Parameter(torch.tensor(10.0))
        self.flip = flip

    def forward(self, x):
        s = self.w * (x.flatten(1).mean(1) - 0.5)
        s = -s if self.flip else s
        return torch.stack([-s, s], dim=1)


def test_model_flags_robust_means_correct_clean_and_under_its_own_attack():
    x = torch.tensor([0.9, 0.8, 0.2, 0.6]).view(4, 1, 1, 1)
    y = torch.tensor([1, 0, 0, 1])
    to_half = lambda m, xb, yb: torch.full_like(xb, 0.45)  # noqa: E731 - every input becomes class 0
    f = model_flags(Fixed(), x, y, to_half, batch_size=3)
    assert f.correct.tolist() == [True, False, True, True]
    assert f.robust.tolist() == [False, False, True, False]  # sample 1: wrong clean
    assert f.accuracy == pytest.approx(0.75) and f.robust_accuracy == pytest.approx(0.25)


def test_check_update_attacks_each_model_on_its_own_and_metrics_match_the_flags():
    x = torch.rand(40, 1, 2, 2)
    y = (x.flatten(1).mean(1) > 0.5).long()
    old, new = Fixed(), Fixed(flip=True)
    new.w.data.fill_(1.0)
    attacked = []

    def attack(m, xb, yb):
        attacked.append(m)
        with torch.no_grad():  # a model-dependent attack: push toward the model's own other class
            pred = m(xb).argmax(1).float().view(-1, 1, 1, 1)
        return (xb + 0.1 * (1 - 2 * pred)).clamp(0, 1)

    res = check_update(old, new, x, y, attack, batch_size=16)
    assert set(map(id, attacked)) == {id(old), id(new)}
    assert sum(a is old for a in attacked) == 3 and sum(a is new for a in attacked) == 3
    m = res.metrics()
    oc, nc, orb, nrb = res.old_correct, res.new_correct, res.old_robust, res.new_robust
    assert m["nfr"] == pytest.approx(sum(bool(a and not b) for a, b in zip(oc, nc)) / 40)
    assert m["rnfr"] == pytest.approx(sum(bool(a and not b) for a, b in zip(orb, nrb)) / 40)
    assert m["s_nfr"] == pytest.approx(m["nfr"] + m["rnfr"] - m["b_nfr"])
    assert m["old_accuracy"] == pytest.approx(1.0)  # the old model is the labelling rule
    assert bool((orb <= oc).all()) and bool((nrb <= nc).all())
    recs = res.records(y=y)
    assert len(recs) == 40 and {"old_correct", "new_correct", "old_robust", "new_robust"} <= set(recs[0])


def test_flip_metrics_by_hand():
    old = Flags(torch.tensor([True, True, False, True]), torch.tensor([True, False, False, True]))
    new = Flags(torch.tensor([True, False, True, True]), torch.tensor([False, False, True, True]))
    m = flip_metrics(old, new)
    assert m["nfr"] == pytest.approx(0.25) and m["pfr"] == pytest.approx(0.25)
    assert m["rnfr"] == pytest.approx(0.25) and m["b_nfr"] == 0.0 and m["s_nfr"] == pytest.approx(0.5)
    assert m["new_robust_accuracy"] == pytest.approx(0.5)


def _meta(**kw):
    return {"arch": "linear", "input_shape": [1, 8, 8], "num_classes": 10, **kw}


def test_pair_validation_names_the_problem():
    x, y = torch.zeros(5, 1, 8, 8), torch.arange(5)
    check_pair_meta(_meta(), _meta(data="digits"), x, y, "digits")
    with pytest.raises(ModelError, match="classes"):
        check_pair_meta(_meta(), _meta(num_classes=5), x, y, "digits")
    with pytest.raises(ModelError, match="shape"):
        check_pair_meta(_meta(), _meta(input_shape=[1, 28, 28]), x, y, "digits")
    with pytest.raises(ModelError, match="not a classifier of --data digits"):
        check_pair_meta(_meta(input_shape=[3, 8, 8]), _meta(input_shape=[3, 8, 8]), x, y, "digits")
    with pytest.raises(ModelError, match="trained on 'mnist'"):
        check_pair_meta(_meta(data="mnist"), _meta(), x, y, "digits")


def test_update_config_validation():
    assert UpdateConfig(method="rcat").candidates() == [(0.75, 0.2), (0.7, 0.2), (0.5, 0.4), (0.3, 0.6)]
    assert UpdateConfig(method="pct").candidates()[-1] == (1.0, 10.0)
    assert UpdateConfig(method="rcat", beta=0.3).candidates() == [(0.5, 0.3)]
    with pytest.raises(ConfigError, match="alpha \\+ beta"):
        UpdateConfig(method="rcat", alpha=0.8, beta=0.4)
    with pytest.raises(ConfigError, match="alpha \\+ beta"):
        UpdateConfig(method="rcat", sweep=[[0.5, 0.4], [0.9, 0.9]])
    with pytest.raises(ConfigError):
        UpdateConfig(method="at", alpha=0.5)
    with pytest.raises(ConfigError):
        UpdateConfig(method="nope")
    with pytest.raises(ConfigError):
        CheckConfig(attack="cw")
    with pytest.raises(ConfigError):
        UpdateConfig(epochs=0)


def _train(arch, epochs, seed, **kw):
    s = Splits.load("digits")
    torch.manual_seed(seed)
    m = build_classifier(arch, (1, 8, 8), 10, **kw)
    opt = torch.optim.Adam(m.parameters(), lr=3e-3)
    for _ in range(epochs):
        train_epoch(m, s.x_train, s.y_train, standard_loss, opt, batch_size=64)
    return m.eval()


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    """A weak old model and a stronger new one, saved as advlab classifiers."""
    d = tmp_path_factory.mktemp("pair")
    old, new = _train("linear", 2, 0), _train("mlp", 4, 1, hidden=32, depth=1)
    meta = {"input_shape": [1, 8, 8], "num_classes": 10, "data": "digits"}
    save_classifier(old, d / "old", {"arch": "linear", **meta})
    save_classifier(new, d / "new", {"arch": "mlp", **meta, "kwargs": {"hidden": 32, "depth": 1}})
    return d / "old", d / "new"


def _small_cfg(method="rcat", **kw):
    check = CheckConfig(eps=0.05, steps=5, limit=120)
    return UpdateConfig(method=method, epochs=1, lr=0.01, train_eps=0.05, check=check, val_limit=120, **kw)


def test_update_classifier_selects_the_lowest_validation_s_nfr_and_is_repeatable(pair):
    old, new = load_classifier(pair[0]), load_classifier(pair[1])
    splits = Splits.load("digits", 120, 120)
    cfg = _small_cfg(sweep=[[0.5, 0.4], [0.0, 0.0], [0.2, 0.2]])
    res = update_classifier(old, new, splits, cfg)
    vals = [r["val_s_nfr"] for r in res.candidates]
    assert len(res.candidates) == 3 and [r["model"] for r in res.table[:2]] == ["old", "new"]
    chosen = [r for r in res.candidates if r["selected"]]
    assert len(chosen) == 1 and chosen[0]["val_s_nfr"] == min(vals)
    assert (res.alpha, res.beta) == (chosen[0]["alpha"], chosen[0]["beta"])
    m = res.metrics()
    assert m["s_nfr"] == pytest.approx(chosen[0]["s_nfr"])
    assert m["new_robust_accuracy"] == pytest.approx(chosen[0]["robust_accuracy"])
    # the test flags are the selected model's own flags (re-measured independently)
    again = model_flags(res.model, splits.x_test, splits.y_test, cfg.check.make_attack())
    assert torch.equal(again.correct, res.test_flags.correct)
    assert torch.equal(again.robust, res.test_flags.robust)
    # same seed, same model; and fine-tuning changed the model
    res2 = update_classifier(old, new, splits, _small_cfg(alpha=chosen[0]["alpha"], beta=chosen[0]["beta"]))
    for (k, a), b in zip(res.model.state_dict().items(), res2.model.state_dict().values()):
        assert torch.equal(a, b), k
    assert not torch.equal(res.model.state_dict()["fc.weight"], new.state_dict()["fc.weight"])


def test_run_check_update_writes_the_contract(pair, tmp_path):
    out = tmp_path / "chk"
    m = run_check_update(pair[0], pair[1], out, CheckConfig(eps=0.05, steps=5, limit=50))
    recs = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    assert len(recs) == 50 and {"old_correct", "new_correct", "old_robust", "new_robust"} <= set(recs[0])
    disk = json.loads((out / "metrics.json").read_text())
    for k in ("nfr", "pfr", "rnfr", "b_nfr", "s_nfr", "old_accuracy", "new_accuracy",
              "old_robust_accuracy", "new_robust_accuracy"):  # fmt: skip
        assert k in disk
    oc, nc = [r["old_correct"] for r in recs], [r["new_correct"] for r in recs]
    assert disk["nfr"] == pytest.approx(M.nfr(oc, nc)) == pytest.approx(m["nfr"])
    assert (out / "figures" / "flip_matrix.png").exists() and (out / "report.html").exists()
    run_check_update(pair[0], pair[1], out, CheckConfig(eps=0.05, steps=5, limit=50))  # resume: no duplicates
    assert len((out / "results.jsonl").read_text().splitlines()) == 50


def test_run_update_writes_a_loadable_model_and_resumes(pair, tmp_path):
    out = tmp_path / "upd"
    cfg = _small_cfg("pct-at", sweep=[[1.0, 1.0], [1.0, 2.0]])
    m = run_update(pair[0], pair[1], out, cfg, progress=False)
    model = load_classifier(out)
    assert model.meta["trained"]["method"] == "update-pct-at"
    s = Splits.load("digits", 120, 120)
    flags = model_flags(model, s.x_test, s.y_test, cfg.check.make_attack())
    assert m["new_accuracy"] == pytest.approx(flags.accuracy)
    assert m["new_robust_accuracy"] == pytest.approx(flags.robust_accuracy)
    assert m["old_accuracy"] == pytest.approx(m["before_update"]["old_accuracy"])
    lines = (out / "results.jsonl").read_text().splitlines()
    assert len(lines) == 2 + 120  # two candidates, one record per test sample
    assert (out / "figures" / "flip_rates.png").exists()
    m2 = run_update(pair[0], pair[1], out, cfg, progress=False)  # resume: candidates loaded, not re-trained
    assert len((out / "results.jsonl").read_text().splitlines()) == len(lines)
    assert m2["s_nfr"] == pytest.approx(m["s_nfr"])


def test_recipe_runs_every_method_on_every_pair_over_seeds(tmp_path):
    models = [ModelSpec("a", "linear", "standard", 1),
              ModelSpec("b", "mlp", "standard", 2, kwargs={"hidden": 9})]
    cfg = RecipeConfig(models, [("a", "b")], update={"epochs": 1, "lr": 0.01, "val_limit": 60},
                       check={"eps": 0.1, "steps": 3, "limit": 60}, sweep=False, seeds=[0, 1])  # fmt: skip
    m = rcat_recipe(tmp_path / "rec", cfg=cfg, progress=False)
    methods = {r["method"] for r in m["table"]}
    assert methods == {"old", "new", "at", "rcat", "pct", "pct-at"} and {r["seed"] for r in m["table"]} == {0, 1}
    s = m["summary"]["pairs"][0]
    assert s["seeds"] == [0, 1] and "new_better_than_old" in s and m["summary"]["n_pairs"] == 1
    # mean ± std and the paired comparison, recomputed from the selected rows
    sel = {(r["seed"], r["method"]): r for r in m["table"] if r.get("selected")}
    rcat, at = [sel[(k, "rcat")]["rnfr"] for k in (0, 1)], [sel[(k, "at")]["rnfr"] for k in (0, 1)]
    assert s["methods"]["rcat"]["rnfr"]["mean"] == pytest.approx(sum(rcat) / 2)
    assert s["methods"]["rcat"]["rnfr"]["std"] == pytest.approx(abs(rcat[0] - rcat[1]) / 2**0.5)
    d = [a - b for a, b in zip(rcat, at)]
    assert s["vs_at"]["rcat"]["rnfr"]["mean_diff"] == pytest.approx(sum(d) / 2)
    assert s["vs_at"]["rcat"]["rnfr"]["lower"] == sum(x < 0 for x in d)
    assert s["lower_rnfr"] == (s["rcat_rnfr"] < s["at_rnfr"])
    assert (tmp_path / "rec" / "figures" / "pair1_flip_rates.png").exists()
    assert len(list((tmp_path / "rec" / "models").iterdir())) == 2  # one model sequence per seed
