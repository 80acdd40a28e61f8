"""jobs.run_job's ``prepare`` hook (one shared computation before the pending items) and StepTicker."""

from __future__ import annotations

from advlab.jobs import StepTicker, run_job


class SharedJob:
    name = "test-shared"
    config = {"n": 3}
    seed = 0

    def __init__(self) -> None:
        self.prepared: list[list[str]] = []
        self.shared = None

    def items(self):
        return [{"id": str(i)} for i in range(3)]

    def prepare_steps(self, todo):
        return 5

    def prepare(self, todo, tick):
        self.prepared.append([it["id"] for it in todo])
        self.shared = 10
        tick(5)

    def run_item(self, item, tick):
        tick(1)
        return {"id": item["id"], "value": self.shared + int(item["id"])}

    def metrics(self, records):
        return {"total": sum(r["value"] for r in records)}


def test_prepare_runs_once_before_pending_items_only(tmp_path):
    job = SharedJob()
    res = run_job(job, tmp_path / "r", progress=False, report=False)
    assert job.prepared == [["0", "1", "2"]] and res.metrics == {"total": 10 + 11 + 12}
    again = SharedJob()
    res2 = run_job(again, tmp_path / "r", progress=False, report=False)
    assert again.prepared == [] and res2.metrics == res.metrics  # nothing pending: no shared computation


def test_step_ticker_ticks_each_step_once_and_fills_up_on_finish():
    ticks: list[int] = []
    t = StepTicker(ticks.append, 4)
    for step in (0, 1, 1, 2):  # step 0 (a clean evaluation) and a repeated step tick nothing
        t(step, 0.0)
    t.finish()  # an early stop after step 2: the item still advances by 4 in all
    assert ticks == [1, 1, 2] and sum(ticks) == 4
    t(9, 0.0)
    assert sum(ticks) == 4  # never more than ``steps``
