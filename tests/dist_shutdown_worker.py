"""Run under torchrun (2 CPU processes): rank 0 is busy for a while, then both call ``shutdown``.

Writes ``rank<r>.json`` into ``argv[1]`` with wall times before and after ``shutdown``, and whether the
process group is still initialised afterwards.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from advlab import distributed

info = distributed.init_from_env("cpu")
if info.rank == 0:
    time.sleep(1.0)  # rank 0 still writes its report while rank 1 has nothing left to do
before = time.time()
distributed.shutdown()
after = time.time()
out = Path(sys.argv[1]) / f"rank{info.rank}.json"
out.write_text(json.dumps({"before": before, "after": after, "initialized": distributed.is_initialized()}))
