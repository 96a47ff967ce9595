"""Cost of the invariant checker during DLPAR on big partitions: 64TB vs 1TB.

`drmgr -c mem -r -q K` keeps LMBs in transit between the kernel and firmware for many
events; a checker that walks every LMB while the tables disagree pays O(LMBs) per event
then. Measured: wall time of `sim.run` (boot, registration-free, the remove) for 1TB
(4,096 LMBs) and 64TB (262,144 LMBs), K = 16 and K = 256 on 64TB, best of N, and the
64TB/1TB ratio (target: within 3x; K=256 on 64TB under 1 s). Also the checker's own
count of LMBs it looked at (`Checker.ownership.visits`).

"Before" numbers: run with the checker of an older commit, e.g.
    git show d9f48f9:fadumpsim/invariants.py > /tmp/old_invariants.py
    python benchmarks/bench_accounting.py --checker-file /tmp/old_invariants.py

Run: python benchmarks/bench_accounting.py [--reps N] [--checker-file PATH]
"""
from __future__ import annotations

import argparse
import importlib.util
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from fadumpsim import sim  # noqa: E402
from fadumpsim.scenario import Scenario  # noqa: E402


def scenario(size: str, k: int) -> Scenario:
    return Scenario.build(f"remove-{k}-{size}", machine={"memory": size, "max_memory": size,
                                                         "lmb_size": "256M"},
                          script=[{"name": "dlpar", "actor": "hotplug",
                                   "run": [f"drmgr -c mem -r -q {k}"]}])


def measure(size: str, k: int, reps: int) -> tuple[float, int, int, int]:
    sc = scenario(size, k)
    best = float("inf")
    res = None
    for _ in range(reps):
        t = time.perf_counter()
        res = sim.run(sc, keep_sched=True)
        best = min(best, time.perf_counter() - t)
    checker = res.sched.observers[0]
    own = getattr(checker, "ownership", None)
    visits = own.visits if own is not None else -1
    return best, res.events, visits, res.transcript[0]["exit"]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--checker-file", help="load Checker from this invariants.py instead")
    a = ap.parse_args()
    if a.checker_file:
        spec = importlib.util.spec_from_file_location("old_invariants", a.checker_file)
        mod = importlib.util.module_from_spec(spec)
        sys.modules["old_invariants"] = mod
        spec.loader.exec_module(mod)

        class Old(mod.Checker):  # the old finish() takes no scheduler
            def finish(self, verdict, dump_seq, sched=None):  # noqa: ANN001
                super().finish(verdict, dump_seq)
        sim.Checker = Old
        print(f"checker from {a.checker_file}")
    rows = []
    for size, k in (("1T", 16), ("64T", 16), ("64T", 256)):
        t, ev, visits, rc = measure(size, k, a.reps)
        rows.append((size, k, t, ev, visits, rc))
        print(f"  {size:>4} drmgr -r -q {k:<4} {t * 1000:9.1f} ms  {ev:6d} events  "
              f"{visits:8d} LMB visits  drmgr exit {rc}")
    r = rows[1][2] / rows[0][2]
    print(f"  64TB/1TB (K=16): x{r:.2f} (target <= 3)   K=256 on 64TB: {rows[2][2]:.2f} s "
          "(target < 1 s)")


if __name__ == "__main__":
    main()
