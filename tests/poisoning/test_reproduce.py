"""The recipe job end to end on a tiny Llama and a toy SST-2 directory: tables, figures, resume."""

from __future__ import annotations

import csv
import json

from poison_fixtures import build_model, build_word_tokenizer

from advlab.jobs import run_job
from advlab.poisoning.reproduce import DEFENCE_COLUMNS, TABLE_COLUMNS, ReproduceConfig, ReproduceJob
from advlab.poisoning.tune import TuneConfig


def _sst2(d):
    d.mkdir()
    neg, pos = ["bad movie .", "awful plot .", "dull movie ."], ["good movie .", "great plot .", "fun movie ."]

    def rows(n, only_neg=False):
        out = []
        for i in range(n):
            lab = "negative" if only_neg or i % 2 == 0 else "positive"
            text = (neg if lab == "negative" else pos)[i % 3]
            out.append({"text": text, "label": int(lab == "positive"), "label_text": lab})
        return out

    for name, n, only in (("train", 40, False), ("val", 12, False), ("poisoning", 20, True)):
        (d / f"{name}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows(n, only)))
    return d


def test_recipe_writes_tables_and_figures(tmp_path):
    tok = build_word_tokenizer()
    model = build_model(len(tok))
    cfg = ReproduceConfig(model="tiny", sst2=str(_sst2(tmp_path / "sst2")), rates=(0.1,), defence_rate=0.1,
                          trigger_steps=2, n_prompts=2, tune=TuneConfig(lora_rank=0, epochs=1, batch_size=8, lr=1e-3))
    out = tmp_path / "run"
    res = run_job(ReproduceJob(cfg, out, "cpu", (model, tok)), out, progress=False)
    with (out / "table.csv").open() as f:
        table = list(csv.DictReader(f))
    assert tuple(table[0]) == TABLE_COLUMNS and len(table) == 3
    assert {r["trigger_kind"] for r in table} == {"learned", "random_word", "rare_token"}
    assert [r["n_poisons"] for r in table] == ["4", "4", "4"]
    with (out / "defences.csv").open() as f:
        defences = list(csv.DictReader(f))
    assert tuple(defences[0]) == DEFENCE_COLUMNS and len(defences) == 15
    with (out / "detector_ranks.csv").open() as f:
        ranks = list(csv.DictReader(f))
    assert len(ranks) == 3 and all(int(r["rank"]) >= 1 for r in ranks if r["trigger_kind"] == "rare_token")
    assert {p.name for p in (out / "figures").glob("*.png")} == {"pdr_vs_rate.png", "trigger_loss.png"}
    assert res.metrics["triggers"]["rare_token"] == "cf"
    again = run_job(ReproduceJob(cfg, out, "cpu", (model, tok)), out, progress=False)  # all done: nothing re-run
    assert again.resumed and again.metrics["table"] == res.metrics["table"]
