"""Run under torchrun (2 CPU processes): rank 0 is busy for a while, then both call ``shutdown``.

Writes ``rank<r>.json`` into ``argv[1]``: wall times before and after ``shutdown``, whether the process
group is still initialised afterwards, and which gloo threads are still alive (Linux; ``None`` elsewhere).
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import torch

from advlab import distributed


def gloo_threads() -> list[str] | None:
    tasks = Path("/proc/self/task")
    if not tasks.is_dir():
        return None
    names = [(t / "comm").read_text().strip() for t in tasks.iterdir() if (t / "comm").exists()]
    return sorted(n for n in names if "gloo" in n)


info = distributed.init_from_env("cpu")
torch.optim.SGD(torch.nn.Linear(2, 2).parameters(), lr=0.1)  # imports torch._dynamo, as every training does
distributed.broadcast_object({"rank 0's": "metrics"})
if info.rank == 0:
    time.sleep(1.0)  # rank 0 still writes its report while rank 1 has nothing left to do
threads_before = gloo_threads()
before = time.time()
distributed.shutdown()
after = time.time()
out = Path(sys.argv[1]) / f"rank{info.rank}.json"
record = {"before": before, "after": after, "initialized": distributed.is_initialized(),
          "threads_before": threads_before, "threads_after": gloo_threads()}
out.write_text(json.dumps(record))
