"""Exhaustive search against the real number of classes, per library scenario.

For every built-in scenario (and the registration/DLPAR race with and without the
device-hotplug lock): the classes that exist (tests/oracle_classes.py, every reachable
state entered once; "-" when it needs more than --oracle-runs re-executions), the
classes `explore --strategy exhaustive` ran, whether it said complete, its time and
schedules/s, and the violations it found reachable.

Run: python benchmarks/bench_exhaustive.py [--oracle-runs N] [--only NAME ...]
"""
from __future__ import annotations

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from fadumpsim.api import explore  # noqa: E402
from fadumpsim.scenario import Scenario, builtin_names, load  # noqa: E402
from tests.oracle_classes import enumerate_classes  # noqa: E402


def race(lock: bool) -> Scenario:
    """Registration || `drmgr -r` of LMB 3 (inside the fadump area), crash, capture."""
    return Scenario.build("reg||dlpar" + ("+lock" if lock else ""),
                          kernel={"hotplug_lock": lock}, script=[
        {"name": "kdump", "actor": "kernel", "run": ["echo 1 > /sys/kernel/fadump_registered"]},
        {"name": "remove", "actor": "hotplug", "run": ["drmgr -c mem -r -s 0x80000003"]},
        {"name": "crash", "actor": "kernel", "after": ["kdump", "remove"],
         "run": ["echo c > /proc/sysrq-trigger"]},
        {"name": "save", "actor": "capture",
         "run": ["makedumpfile -d 31 /proc/vmcore /var/crash/vmcore"]}])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--oracle-runs", type=int, default=6000)
    ap.add_argument("--schedules", type=int, default=100_000)
    ap.add_argument("--only", nargs="*")
    a = ap.parse_args()
    cases = [(n, load(n)) for n in builtin_names()] + [(s.name, s) for s in (race(False),
                                                                             race(True))]
    if a.only:
        cases = [c for c in cases if c[0] in a.only]
    print(f"{'scenario':30} {'real':>6} {'run':>6} {'complete':>8} {'time':>7} {'sched/s':>8}  "
          "reachable violations")
    for name, sc in cases:
        o = enumerate_classes(sc, max_runs=a.oracle_runs, observer=None)
        real = str(len(o.classes)) if o.finished else "-"
        t = time.perf_counter()
        r = explore(sc, "exhaustive", schedules=a.schedules)
        el = time.perf_counter() - t
        reach = getattr(r, "reachable", None)
        reach = ", ".join(f"{k} x{v}" for k, v in sorted(reach.items())) if reach else \
            ("-" if reach is not None else "(n/a)")
        print(f"{name:30} {real:>6} {r.schedules:>6} {str(r.complete):>8} {el:7.2f} "
              f"{r.rate:8.0f}  {reach}", flush=True)


if __name__ == "__main__":
    main()
