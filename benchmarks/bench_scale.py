"""Wall time and peak memory of whole runs, from an 8 GB partition to a 64 TB one.

Two tables, one fresh subprocess per (size, run) so peak memory is not shared:

* boot + register: power on, boot, `echo 1 > /sys/kernel/fadump_registered`;
* crash and dump: the same, then `echo c > /proc/sysrq-trigger`, firmware-assisted
  reboot into the capture kernel and `makedumpfile -d 31 /proc/vmcore ...`.

Sizes: the default 8 GB machine (max_memory 16 GB, 256 MB LMBs), 1 TB and 64 TB
(memory = max_memory, lmb_size 256M: 4,096 and 262,144 LMBs).

Time is Scenario.build(...) + fadumpsim.sim.run(...), imports not included: "cold"
is the first run in the process (what one CLI invocation pays: the page-content
caches of fadumpsim/dumpfile/pages.py start empty), "warm" the best of --reps
further runs in the same process. The targets are judged on the cold time.
"peak RSS" is the child's ru_maxrss after all its runs (interpreter and imports
included); "peak traced" is tracemalloc's peak during one cold run in another
fresh process (the Python allocations the run itself makes).

Targets: boot+register 64 TB < 2 s and < 1 GB; crash-and-dump 64 TB < 10 s and
< 2 GB; default 8 GB crash-and-dump < 0.5 s.

Scripts (`--scripts`): run time against the number of `[[script]]` tables, each
`cat /sys/kernel/fadump_registered` on the kernel, all started at once (one arming
script first). CPU seconds of `sim.run` for 100 / 1,000 / 10,000 scripts minus a run
with no extra script, per script; the baseline, measured in the same process, is the
pre-index scheduler (`FullScanScheduler`: every channel scanned at every delivery).
Target: the per-script cost at 10,000 within 2x of the cost at 100.

Run: python benchmarks/bench_scale.py [--reps N] [--profile SIZE] [--scripts]
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
sys.path.insert(0, ROOT)

SIZES = ("8G", "1T", "64T")
MODES = ("register", "dump")
TARGETS = {("64T", "register"): (2.0, 1 << 30), ("64T", "dump"): (10.0, 2 << 30),
           ("8G", "dump"): (0.5, None)}


def scenario(size: str, mode: str):  # noqa: ANN201 - imported lazily in the child
    from fadumpsim.scenario import Scenario
    machine = {} if size == "8G" else {"memory": size, "max_memory": size, "lmb_size": "256M"}
    run = ["echo 1 > /sys/kernel/fadump_registered"]
    scripts = [{"name": "arm", "actor": "kernel", "run": run}]
    if mode == "dump":
        run.append("echo c > /proc/sysrq-trigger")
        scripts.append({"name": "save", "actor": "capture",
                        "run": ["makedumpfile -d 31 /proc/vmcore /var/crash/vmcore"]})
    return Scenario.build(f"scale-{size}-{mode}", machine=machine, script=scripts)


def child(size: str, mode: str, reps: int, traced: bool) -> dict:
    """One size and run in a fresh process: the cold run, then `reps` warm ones."""
    import resource
    import tracemalloc

    from fadumpsim import sim

    def once():  # noqa: ANN202
        sc = scenario(size, mode)
        return sc, sim.run(sc)

    if traced:  # a separate process: tracemalloc slows the run it watches
        tracemalloc.start()
        sc, res = once()
        _cur, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        return {"traced": peak}
    t0 = time.perf_counter()
    sc, res = once()
    cold = time.perf_counter() - t0
    warm = float("inf")
    for _ in range(reps):
        t0 = time.perf_counter()
        once()
        warm = min(warm, time.perf_counter() - t0)
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    return {"size": size, "mode": mode, "lmbs": sc.machine.n_lmbs, "cold": cold, "warm": warm,
            "rss": rss, "events": res.events, "ok": res.ok, "dump": res.dump["status"],
            "registered": res.registered, "failure": res.failure}


def profile(size: str, mode: str) -> None:
    import cProfile
    import pstats

    from fadumpsim import sim
    sc = scenario(size, mode)
    pr = cProfile.Profile()
    pr.enable()
    sim.run(sc)
    pr.disable()
    pstats.Stats(pr).sort_stats("cumulative").print_stats(30)
    pstats.Stats(pr).sort_stats("tottime").print_stats(15)


# --- many scripts ------------------------------------------------------------------------------

SCRIPT_COUNTS = (100, 1_000, 10_000)
BASELINE_COUNTS = (100, 1_000, 2_000)   # the full scan is quadratic: 10,000 would take minutes


def many_scripts(n: int):  # noqa: ANN201 - imported lazily
    """One arming script and n concurrent readers: generated, never committed."""
    from fadumpsim.scenario import Scenario
    scripts = [{"name": "arm", "actor": "kernel", "run": ["echo 1 > /sys/kernel/fadump_registered"]}]
    scripts += [{"name": f"s{i}", "actor": "kernel", "run": ["cat /sys/kernel/fadump_registered"]}
                for i in range(n)]
    return Scenario.build(f"scripts-{n}", script=scripts)


def full_scan_scheduler() -> type:
    """The scheduler as it was before the channel index (the baseline): every channel,
    empty or not, scanned at every delivery, FifoStrategy scanning every head."""
    from fadumpsim.replay.runtime import Scheduler

    class FullScanScheduler(Scheduler):
        def __init__(self, *a: object, **kw: object) -> None:
            super().__init__(*a, **kw)  # type: ignore[arg-type]
            self._fifo = None           # the generic path: enabled() + strategy.choose

        def enabled(self) -> list:
            busy = self.busy
            return [k for k, q in self.channels.items() if q and k[1] not in busy]
    return FullScanScheduler


def run_scripts(n: int, sched_cls: type | None = None, strategy: str = "fifo") -> tuple[float, int]:
    """(CPU s, events) of sim.run on the n-script scenario, optionally on another scheduler."""
    from fadumpsim import sim
    sc = many_scripts(n)
    orig = sim.Scheduler
    if sched_cls is not None:
        sim.Scheduler = sched_cls
    try:
        c0 = time.process_time()
        r = sim.run(sc, strategy=strategy, seed=1)
        cpu = time.process_time() - c0
    finally:
        sim.Scheduler = orig
    assert r.ok, r.failure
    return cpu, r.events


def scripts(counts: tuple[int, ...] = SCRIPT_COUNTS,
            baseline: tuple[int, ...] = BASELINE_COUNTS) -> dict:
    """Per-script CPU cost (run(n) - run(0)) / n, indexed scheduler vs the full scan."""
    run_scripts(0)  # imports and caches warm
    out: dict = {"new": {}, "baseline": {}}
    for label, cls, ns in (("new", None, counts), ("baseline", full_scan_scheduler(), baseline)):
        zero = min(run_scripts(0, cls)[0] for _ in range(3))
        for n in ns:
            cpu, ev = min(run_scripts(n, cls) for _ in range(3 if n <= 1_000 else 1))
            out[label][n] = {"cpu": cpu, "events": ev, "per_script_ms": (cpu - zero) / n * 1000}
    first, last = out["new"][counts[0]], out["new"][counts[-1]]
    out["ratio"] = last["per_script_ms"] / first["per_script_ms"]
    return out


def print_scripts(r: dict) -> None:
    print("scripts | events | CPU s (indexed) | ms/script | CPU s (full scan) | ms/script")
    for n in sorted(set(r["new"]) | set(r["baseline"])):
        a, b = r["new"].get(n), r["baseline"].get(n)
        print(f"{n:>7,} | {(a or b)['events']:>6,} | "
              + (f"{a['cpu']:>15.2f} | {a['per_script_ms']:>9.3f}" if a else f"{'-':>15} | {'-':>9}")
              + " | " + (f"{b['cpu']:>17.2f} | {b['per_script_ms']:>9.3f}" if b else f"{'-':>17} | -"))
    print(f"per-script cost, {max(r['new']):,} vs {min(r['new']):,} scripts: {r['ratio']:.2f}x "
          f"(target <= 2x)")


def fmt_bytes(n: int) -> str:
    return f"{n / (1 << 20):,.1f} MB"


def _child(size: str, mode: str, reps: int, traced: bool) -> dict:
    out = subprocess.run([sys.executable, os.path.abspath(__file__), "--child", size, mode,
                          str(reps), "traced" if traced else "timed"],
                         capture_output=True, text=True, cwd=ROOT, check=False)
    if out.returncode != 0:
        print(out.stderr, file=sys.stderr)
        raise SystemExit(f"child {size} {mode} failed")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(reps: int = 3) -> list[dict]:
    rows = []
    for mode in MODES:
        for size in SIZES:
            r = _child(size, mode, reps, False)
            r.update(_child(size, mode, reps, True))
            rows.append(r)
    print(f"machine: {os.cpu_count()} cores, Python {sys.version.split()[0]}; "
          f"warm = best of {reps}")
    for mode, title in (("register", "boot + register"),
                        ("dump", "crash and dump (makedumpfile -d 31)")):
        print(f"\n{title}\n")
        print("| size | LMBs | events | cold | warm | peak RSS | peak traced | result | target |")
        print("|---|---:|---:|---:|---:|---:|---:|---|---|")
        for r in rows:
            if r["mode"] != mode:
                continue
            t = TARGETS.get((r["size"], mode))
            target = "-"
            if t:
                ok = r["cold"] < t[0] and (t[1] is None or r["rss"] < t[1])
                target = f"< {t[0]:g} s" + (f", < {t[1] >> 30} GB" if t[1] else "") + \
                    (": met" if ok else ": MISSED")
            result = ("registered" if r["registered"] else "not registered") \
                if mode == "register" else f"dump {r['dump']}"
            if not r["ok"]:
                result += f" (FAIL {r['failure'] or ''})"
            print(f"| {r['size']} | {r['lmbs']:,} | {r['events']} | {_ms(r['cold'])} | "
                  f"{_ms(r['warm'])} | {fmt_bytes(r['rss'])} | {fmt_bytes(r['traced'])} | "
                  f"{result} | {target} |")
    return rows


def _ms(s: float) -> str:
    return f"{s * 1000:,.1f} ms"


if __name__ == "__main__":
    a = sys.argv[1:]
    if a and a[0] == "--child":
        print(json.dumps(child(a[1], a[2], int(a[3]), a[4] == "traced")))
    elif a and a[0] == "--scripts":
        print_scripts(scripts())
    elif a and a[0] == "--profile":
        profile(a[1] if len(a) > 1 else "64T", a[2] if len(a) > 2 else "dump")
    else:
        main(int(a[a.index("--reps") + 1]) if "--reps" in a else 3)
