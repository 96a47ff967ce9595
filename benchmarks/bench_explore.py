"""Exploration throughput, parallel speed-up, time-to-bug per strategy, DPOR reduction.

1. schedules/s of one worker on a three-script scenario (the udev reload window:
   kdump registration, DLPAR hot-add, crash), random and exhaustive (target >= 200/s);
   and the cost split: bare `sim.run` vs. exploration bookkeeping;
2. speed-up with 2 worker processes (same schedules, same results);
3. schedules needed to find the udev-window failure (dump-armed) with random, pct and
   exhaustive, on the scenario as the issue states it (crash right after registration)
   and with a crash script that first runs two `cat` commands;
4. reduction of exhaustive search: DPOR classes vs. all interleavings (brute force) on
   tiny scenarios (where brute force finishes, DPOR's classes are checked to be exactly
   the distinct classes of all interleavings; "N+" = brute force stopped at N);
5. with --profile: cProfile of the random exploration, top functions by own time.

Run: python benchmarks/bench_explore.py [--quick] [--profile] [--speedup]
(--speedup: only part 2, 1,000 schedules, as benchmarks/run_all.py measures it)
"""
from __future__ import annotations

import cProfile
import os
import pstats
import statistics
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from fadumpsim import sim  # noqa: E402
from fadumpsim.scenario import Scenario  # noqa: E402
from fadumpsim.replay import dpor  # noqa: E402
from tests.explore_scenarios import CAT, udev  # noqa: E402
from fadumpsim.api import explore  # noqa: E402
from fadumpsim.replay.strategies import RandomStrategy  # noqa: E402

#: brute force stops here (3 scripts x 2 commands has far more interleavings)
BRUTE_LIMIT = 20_000


def tiny(n: int, cmds: int) -> Scenario:
    return Scenario.build(f"{n}x{cmds}", script=[
        {"name": f"s{k}", "actor": "kernel", "run": [CAT] * cmds} for k in range(n)])


def reg_crash() -> Scenario:
    return Scenario.build("reg||crash+save", script=[
        {"name": "kdump", "actor": "kernel", "run": ["echo 1 > /sys/kernel/fadump_registered"]},
        {"name": "crash", "actor": "kernel", "run": ["echo c > /proc/sysrq-trigger"]},
        {"name": "save", "actor": "capture",
         "run": ["makedumpfile -d 31 /proc/vmcore /var/crash/vmcore"]}])


def row(*cols: object, widths: tuple[int, ...] = (44, 14, 14, 14)) -> str:
    return "".join(str(c).ljust(w) for c, w in zip(cols, widths))


def first_hit(sc: Scenario, strategy: str, seeds: range, limit: int) -> list[int | None]:
    """Per seed, the schedule number of the first dump-armed failure (None: not found)."""
    out = []

    def stop_at_first(done: int, total: int, failures: int) -> None:
        if failures:
            raise KeyboardInterrupt  # explore() returns its partial result

    for s in seeds:
        r = explore(sc, strategy, schedules=limit, seed=s, progress=stop_at_first)
        hits = [f.first_schedule for f in r.failures if f.invariant == "dump-armed"]
        if r.failures and not hits:
            r = explore(sc, strategy, schedules=limit, seed=s)
            hits = [f.first_schedule for f in r.failures if f.invariant == "dump-armed"]
        out.append(min(hits) if hits else None)
    return out


def fmt_hits(h: list[int | None], limit: int) -> str:
    found = [x for x in h if x is not None]
    if not found:
        return f"none in {limit}"
    med = statistics.median(found)
    return f"median {med:g} ({len(found)}/{len(h)} seeds)"


def workers_speedup(schedules: int = 1000, rounds: int = 2) -> dict:
    """`explore --workers 2` vs 1 on the same random schedules (udev(2)), alternating
    1, 2, 1, 2 ... and keeping each side's fastest round (the machine is shared).

    Reports the wall ratio measured here with the load average around it, and, so that
    a loaded machine can still be read, CPU seconds of this process and of its (joined)
    helper: serial CPU / half the 2-worker total bounds the speed-up on 2 idle cores.
    The helper's time not running = 2-worker wall - helper CPU (idle waiting for work,
    starting up, or runnable but denied a core by other load); `waited_s` is how long
    this process sat waiting for the helper's last chunks.
    """
    import resource

    def cpu() -> tuple[float, float]:
        a, b = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
        return a.ru_utime + a.ru_stime, b.ru_utime + b.ru_stime

    sc = udev(2)
    explore(sc, "random", schedules=50, seed=0)  # warm
    load_before = os.getloadavg()
    best: dict[int, dict] = {}
    for _ in range(rounds):
        for w in (1, 2):
            a, t = cpu(), time.perf_counter()
            r = explore(sc, "random", schedules=schedules, seed=0, workers=w)
            wall, b = time.perf_counter() - t, cpu()
            m = {"wall": wall, "cpu_self": b[0] - a[0], "cpu_helpers": b[1] - a[1],
                 "backend": r.backend, "failures": [(f.invariant, f.count) for f in r.failures]}
            if r.parallel is not None and r.backend == "processes":
                p = r.parallel
                m.update(start_method=p.start_method, start_s=p.start_s,
                         first_result_s=p.first_result_s, waited_s=p.waited_s,
                         chunks=len(p.sizes), chunks_helper=p.chunks_helpers)
            if w not in best or wall < best[w]["wall"]:
                best[w] = m
    one, two = best[1], best[2]
    total2 = two["cpu_self"] + two["cpu_helpers"]
    return {"schedules": schedules, 1: one, 2: two,
            "same_failures": one["failures"] == two["failures"],
            "speedup": one["wall"] / two["wall"],
            # on 2 idle cores the 2-worker run cannot beat half its total CPU time
            "idle_bound": one["cpu_self"] / (total2 / 2),
            "cpu_overhead": total2 / one["cpu_self"] - 1,
            "helper_not_running_s": max(0.0, two["wall"] - two["cpu_helpers"]),
            "one_worker_per_s": schedules / one["wall"],
            "load_before": load_before, "load_after": os.getloadavg()}


def print_speedup(sp: dict) -> None:
    one, two = sp[1], sp[2]
    print(row("  random, 1 worker", f"{one['wall']:.2f} s", f"{sp['one_worker_per_s']:.0f}/s"))
    print(row("  random, 2 workers", f"{two['wall']:.2f} s", f"x{sp['speedup']:.2f} wall",
              f"same={sp['same_failures']}"))
    print(f"    load average {sp['load_before'][0]:.1f} before, {sp['load_after'][0]:.1f} after "
          f"(1 min; the wall ratio needs 2 idle cores)")
    print(f"    CPU: serial {one['cpu_self']:.2f} s; 2 workers {two['cpu_self']:.2f} s here + "
          f"{two['cpu_helpers']:.2f} s helper (+{sp['cpu_overhead'] * 100:.0f}%): "
          f"bound on 2 idle cores x{sp['idle_bound']:.2f}")
    if "start_method" in two:
        print(f"    helper ({two['start_method']}): started in {two['start_s'] * 1000:.0f} ms, "
              f"first chunk back after {two['first_result_s'] * 1000:.0f} ms, "
              f"{two['chunks_helper']}/{two['chunks']} chunks; not running "
              f"{sp['helper_not_running_s']:.2f} s of {two['wall']:.2f} s; this process "
              f"waited {two['waited_s'] * 1000:.0f} ms for its last chunks")


def main() -> None:
    quick = "--quick" in sys.argv
    if "--speedup" in sys.argv:
        print("2. speed-up with 2 worker processes (includes start-up; best of 2 rounds each)")
        print_speedup(workers_speedup(1000))
        return
    n = 600 if quick else 2000
    sc = udev(2)
    print("1. throughput, one worker (udev window, 3 scripts)")
    t = time.perf_counter()
    for i in range(n // 4):
        sim.run(sc, seed=i, strategy=RandomStrategy(i))
    bare = (n // 4) / (time.perf_counter() - t)
    r1 = explore(sc, "random", schedules=n, seed=0)
    e1 = explore(sc, "exhaustive", schedules=n)
    print(row("  bare sim.run (random strategy)", f"{bare:.0f}/s"))
    print(row("  explore random", f"{r1.rate:.0f}/s", f"{r1.max_events} ev max"))
    print(row("  explore exhaustive (DPOR)", f"{e1.rate:.0f}/s",
              f"{e1.schedules} classes", "complete" if e1.complete else "limit"))

    print("2. speed-up with 2 worker processes (includes start-up; best of 2 rounds each)")
    print_speedup(workers_speedup(1000 if quick else 2 * n))
    big = udev(2)
    ex1 = explore(big, "exhaustive", schedules=2 * n)
    ex2 = explore(big, "exhaustive", schedules=2 * n, workers=2)
    same = (ex1.schedules, [(f.invariant, f.count) for f in ex1.failures]) == \
           (ex2.schedules, [(f.invariant, f.count) for f in ex2.failures])
    print(row("  exhaustive, 1 worker", f"{ex1.rate:.0f}/s"))
    print(row("  exhaustive, 2 workers", f"{ex2.rate:.0f}/s", f"x{ex2.rate / ex1.rate:.2f}",
              f"same={same}"))

    print("3. schedules to the first dump-armed failure (udev window)")
    seeds = range(3 if quick else 5)
    for cats in (0, 2):
        s = udev(cats)
        lim = 1000 if quick else 3000
        print(row(f"  crash after {cats} cat(s): random", fmt_hits(first_hit(s, "random", seeds,
                                                                              lim), lim)))
        print(row(f"  crash after {cats} cat(s): pct d=3", fmt_hits(first_hit(s, "pct", seeds,
                                                                             lim), lim)))
        ex = explore(s, "exhaustive", schedules=lim)
        hits = [f.first_schedule for f in ex.failures if f.invariant == "dump-armed"]
        print(row(f"  crash after {cats} cat(s): exhaustive", hits[0] if hits else f"none in {lim}",
                  f"{ex.schedules} classes", "complete" if ex.complete else "limit"))

    print("4. DPOR reduction vs. all interleavings (brute force)")
    print(row("  scenario", "interleavings", "DPOR classes", "reduction"))
    for s in (tiny(2, 1), tiny(2, 2), tiny(3, 1), tiny(3, 2), reg_crash()):
        count, classes, fin = dpor.enumerate_all(sim.system(s), limit=BRUTE_LIMIT)
        r = explore(s, "exhaustive", schedules=100_000)
        assert r.complete and (not fin or r.schedules == len(classes)), (s.name, r.schedules)
        print(row(f"  {s.name}", f"{count}{'' if fin else '+'}", r.schedules,
                  f"x{count / r.schedules:.0f}"))

    if "--profile" in sys.argv:
        print("5. profile: explore random, 1 worker")
        prof = cProfile.Profile()
        prof.enable()
        explore(sc, "random", schedules=n // 2, seed=1)
        prof.disable()
        pstats.Stats(prof).sort_stats("tottime").print_stats(18)


if __name__ == "__main__":
    main()
