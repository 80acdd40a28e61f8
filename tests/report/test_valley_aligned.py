"""``valley_aligned.png`` on a tiny run: one example, so no step offset has two examples to average.

Independent reference: with one flipped example the flip-aligned mean is that example's own curve, read off
its records (step s at offset s − flip step).
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from advlab.analysis.valley import ValleyConfig, flip_steps
from advlab.pipelines.analyze_valley import run_valley_job
from advlab.report import valley as report_valley
from advlab.runs import read_records


@pytest.fixture(scope="module")
def linear_digits(tmp_path_factory):
    from advlab.data.images import load_digits_split
    from advlab.models.classifiers import build_classifier, save_classifier

    torch.manual_seed(0)
    x, y = load_digits_split("train")
    model = build_classifier("linear", (1, 8, 8), 10)
    opt = torch.optim.Adam(model.parameters(), lr=0.1)
    for _ in range(40):
        opt.zero_grad()
        F.cross_entropy(model(x), y).backward()
        opt.step()
    out = tmp_path_factory.mktemp("models") / "linear"
    save_classifier(model, out, {"arch": "linear", "input_shape": [1, 8, 8], "num_classes": 10})
    return out


def test_a_one_example_run_draws_the_aligned_curves(linear_digits, tmp_path, monkeypatch):
    drawn: dict[str, dict[str, list[float]]] = {}
    save = report_valley._save

    def keep_lines(fig, path):
        if path.name == "valley_aligned.png":
            for ax in fig.axes:
                if ax.lines[:-1]:  # the mean line (the last line is the flip marker)
                    line = ax.lines[0]
                    drawn[ax.get_ylabel()] = {"x": list(line.get_xdata()), "y": list(line.get_ydata())}
        return save(fig, path)

    monkeypatch.setattr(report_valley, "_save", keep_lines)
    out = tmp_path / "valley"
    cfg = ValleyConfig(steps=6, eps=0.3, step_size=0.05, n_examples=1)
    run_valley_job(linear_digits, out, cfg, progress=False)
    records = read_records(out / "results.jsonl")
    (flip,) = flip_steps(records).values()
    assert flip is not None and flip >= 1  # else nothing aligns and the figure is rightly not drawn
    assert (out / "figures" / "valley_aligned.png").stat().st_size > 0
    ours = sorted(records, key=lambda r: r["step"])
    for key, label in report_valley.PANELS:
        want = [(r["step"] - flip, r[key]) for r in ours if r.get(key) is not None]
        got = drawn[label]
        assert got["x"] == [o for o, _ in want]
        assert got["y"] == pytest.approx([v for _, v in want])
