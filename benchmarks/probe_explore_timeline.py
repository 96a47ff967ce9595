"""Who ran which chunk of `explore --workers 2`, and when: the diagnosis behind the
self-scheduling helpers (docs/benchmarks.md, "explore").

Wraps `replay.explore.sample_task` so that every chunk (this process's and the forked
helper's) appends its pid, first schedule, size and start/end times, taken from one
monotonic clock, to a file; then prints the timeline of a 2-worker run next to a serial
run of the same schedules. Gaps in the helper's lines are time it had no work.

Run: python benchmarks/probe_explore_timeline.py [SCHEDULES]   (default 1,000; idle machine)
"""
from __future__ import annotations

import multiprocessing
import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import fadumpsim.replay.explore as ex  # noqa: E402
from fadumpsim.api import explore  # noqa: E402
from tests.explore_scenarios import udev  # noqa: E402

LOG = os.path.join(tempfile.mkdtemp(prefix="timeline-"), "chunks.txt")
_real = ex.sample_task


def _timed_task(*a):  # type: ignore[no-untyped-def]
    t0 = time.perf_counter()
    r = _real(*a)
    t1 = time.perf_counter()
    with open(LOG, "a") as f:
        f.write(f"{os.getpid()} {a[5][0]} {len(a[5])} {t0:.4f} {t1:.4f}\n")
    return r


def main(schedules: int) -> None:
    ex.sample_task = _timed_task  # forked helpers inherit it
    ex.helper_context = lambda: multiprocessing.get_context("fork")
    sc = udev(2)
    explore(sc, "random", schedules=50, seed=0)  # warm
    for w in (1, 2):
        if os.path.exists(LOG):
            os.remove(LOG)
        t = time.perf_counter()
        r = explore(sc, "random", schedules=schedules, seed=0, workers=w)
        print(f"workers={w}: {time.perf_counter() - t:.3f} s wall ({r.backend}), "
              f"load average {os.getloadavg()[0]:.1f}")
    me = os.getpid()
    busy: dict[str, float] = {}
    for line in open(LOG):
        pid, first, n, a, b = line.split()
        who = "parent" if int(pid) == me else "helper"
        busy[who] = busy.get(who, 0.0) + float(b) - float(a)
        print(f"  {who} schedules {first:>5}+{n:<4} {float(a) - t:7.3f} -> {float(b) - t:7.3f} s")
    print("  busy: " + ", ".join(f"{k} {v:.2f} s" for k, v in sorted(busy.items())))


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 1000)
