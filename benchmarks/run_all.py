"""Every speed and size target of the README, measured in one run.

Run: python benchmarks/run_all.py [--markdown] [--json FILE] [--full]

Prints one table. With --markdown it also rewrites the README's speed table and the
"Latest run" section of docs/benchmarks.md (between their `run_all` markers) from
the numbers just measured, so no figure there is typed by hand. Comparisons
(pykka `ask` vs the runtime, bare msgpack vs the log decoder, unlogged run vs
replay, fsync vs none, 1 vs 2 workers, 1TB vs 64TB) are measured in the same run,
as ratios of CPU seconds where the machine is shared (the load average is printed).
--full adds the expensive cases (`drmgr -r -q 256` on 64TB).
"""
from __future__ import annotations

import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Any, Callable

ROOT = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

MB = 1 << 20
GB = 1 << 30
TB = 1 << 40


def cpu_wall(fn: Callable[[], Any]) -> tuple[float, float, Any]:
    """(CPU s of this process, wall s, result) of fn()."""
    c0, t0 = time.process_time(), time.perf_counter()
    r = fn()
    return time.process_time() - c0, time.perf_counter() - t0, r


def best_of(n: int, fn: Callable[[], Any]) -> tuple[float, float, Any]:
    """The run with the least CPU time of n."""
    return min((cpu_wall(fn) for _ in range(n)), key=lambda x: x[0])


# --- runtime: scheduled + logged vs a bare pykka ask loop -----------------------------------

def runtime(events: int) -> dict[str, float]:
    import bench_runtime as br
    n_ask = max(2000, events // 10)
    ask_cpu, ask_wall, _ = best_of(2, lambda: br.bench_ask(n_ask))
    with tempfile.TemporaryDirectory() as d:
        runs = [br.run_scheduled(os.path.join(d, "r.fadlog"), br.rounds_for(events)) for _ in range(2)]
        ev, wall, cpu = min(runs, key=lambda r: r[2])
    return {"ask_per_cpu_s": n_ask / ask_cpu, "ask_per_s": n_ask / ask_wall,
            "sched_per_cpu_s": ev / cpu, "sched_per_s": ev / wall,
            "ratio_cpu": (ev / cpu) / (n_ask / ask_cpu)}


# --- logs --------------------------------------------------------------------------------------

def logs(events: int) -> dict[str, Any]:
    """Library logs' size; append and decode rates of a library-mix and a toy log, each
    next to the floor of any msgpack log: `msgpack.unpackb` of the same records packed
    plainly (format 1's body, no framing, no checks), in the same run. Decode is
    measured with the reader's default backend (`decode_backend`: the C fast path when
    it is built) and with the pure-Python path (`pure_decode_per_cpu_s`)."""
    import msgpack

    import bench_logfile as bl
    from fadumpsim.events import logfile
    from fadumpsim.events.logfile import LogReader, LogWriter
    backend = "C (events/_cdecode.c)" if logfile.USE_C else "pure Python"
    out: dict[str, Any] = {"events": events, "decode_backend": backend}
    with tempfile.TemporaryDirectory() as d:
        lib = bl.library_logs(d)
        per = [b / e for _, e, b, _ in lib]
        out.update(library_logs=len(lib), median_bytes_per_event=statistics.median(per),
                   max_bytes_per_event=max(per))
        for label, recs in (("mixed", bl.tiled([r for *_, rs in lib for r in rs], events)),
                            ("toy", bl.toy(events))):
            path = os.path.join(d, label + ".fadlog")
            w_cpu, _, _ = best_of(2, lambda: _write(LogWriter, path, recs))
            r_cpu, _, got = best_of(2, lambda: LogReader(path).records())
            assert got == recs
            use_c = logfile.USE_C
            logfile.USE_C = False  # the pure-Python path, same run, same log
            try:
                p_cpu, _, got = best_of(2, lambda: LogReader(path).records())
            finally:
                logfile.USE_C = use_c
            assert got == recs
            plain = [msgpack.packb(r) for r in recs]

            def bare() -> None:
                unpackb = msgpack.unpackb
                for b in plain:
                    unpackb(b)
            b_cpu, _, _ = best_of(2, bare)
            out[label] = {"bytes_per_event": os.path.getsize(path) / events,
                          "append_per_cpu_s": events / w_cpu, "decode_per_cpu_s": events / r_cpu,
                          "pure_decode_per_cpu_s": events / p_cpu,
                          "bare_unpack_per_cpu_s": events / b_cpu}
    return out


def _decode_status(lg: dict[str, Any], yes: Any) -> str:
    """The decode target is judged on small records; when the library mix is under it,
    say so next to the floor it is up against (bare `unpackb` of the same records)."""
    toy, mix = lg["toy"], lg["mixed"]
    status = yes(toy["decode_per_cpu_s"] >= 400_000)
    if mix["decode_per_cpu_s"] >= 400_000:
        return status
    return (f"{status} (small records); library mix under: "
            f"{mix['decode_per_cpu_s'] / mix['bare_unpack_per_cpu_s']:.2f}× a bare `unpackb`, "
            f"itself {mix['bare_unpack_per_cpu_s']:,.0f}/s here")


def _write(writer: Any, path: str, recs: list) -> None:
    w = writer(path, {"scenario": {"name": "bench"}}, durable=False)
    for r in recs:
        w.append(r)
    w.close({"events": len(recs)})


# --- replay vs an unlogged run; durable vs internal recordings -----------------------------

def scripts() -> dict[str, Any]:
    """Per-script CPU cost for 100 / 1,000 / 10,000 concurrent scripts; the full-scan
    scheduler (the one before the channel index) as the baseline, same run."""
    import bench_scale as bs
    return bs.scripts()


def replay_and_fsync(reps: int) -> dict[str, float]:
    from fadumpsim import api, scenario, sim
    names = sorted(os.path.basename(p)[:-5] for p in
                   __import__("glob").glob(os.path.join(ROOT, "scenarios", "*.toml")))
    scs = [scenario.load(n) for n in names]
    with tempfile.TemporaryDirectory() as d:
        paths = []
        for sc in scs:
            p = os.path.join(d, sc.name + ".fadlog")
            api.record(sc, p, durable=False)
            paths.append(p)
        sim.run(scs[0])  # imports and caches warm for both sides
        api.replay(paths[0])
        run_cpu, _, _ = best_of(reps, lambda: [sim.run(sc) for sc in scs])
        rep_cpu, _, _ = best_of(reps, lambda: [api.replay(p) for p in paths])
        short = scenario.load("double-registration")
        walls = {}
        for durable in (True, False):
            ts = []
            for i in range(5 * reps):
                p = os.path.join(d, f"f-{durable}-{i}.fadlog")
                ts.append(cpu_wall(lambda: api.record(short, p, durable=durable))[1])
            walls[durable] = statistics.median(ts)
    return {"replay_vs_run_cpu": run_cpu / rep_cpu, "library_scenarios": len(scs),
            "record_ms_durable": walls[True] * 1000, "record_ms_internal": walls[False] * 1000}


# --- whole runs at scale, each in a fresh process ------------------------------------------------

def _child(code: str) -> dict[str, Any]:
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd=ROOT, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def scale() -> dict[str, Any]:
    import bench_scale as bs
    rows = {}
    for size in ("8G", "1T", "64T"):
        r = bs._child(size, "dump", 2, False)
        rows[size] = {"cold_ms": r["cold"] * 1000, "warm_ms": r["warm"] * 1000,
                      "rss_mb": r["rss"] / MB, "dump": r["dump"]}
    return rows


_DRMGR = """
import json, time, sys
sys.path.insert(0, '.')
from fadumpsim import sim
from fadumpsim.scenario import Scenario
size, k = {size!r}, {k}
m = {{"memory": size, "max_memory": size, "lmb_size": "256M"}}
sc = Scenario.build("drmgr", machine=m, script=[{{"name": "a", "actor": "kernel",
    "run": ["echo 1 > /sys/kernel/fadump_registered"]}},
    {{"name": "d", "actor": "hotplug", "after": ["a"], "run": [f"drmgr -c mem -r -q {{k}}"]}}])
base = Scenario.build("drmgr0", machine=m, script=[{{"name": "a", "actor": "kernel",
    "run": ["echo 1 > /sys/kernel/fadump_registered"]}}])
sim.run(base)
c0 = time.process_time(); r0 = sim.run(base); c1 = time.process_time()
r = sim.run(sc); c2 = time.process_time()
print(json.dumps({{"cpu": (c2 - c1) - (c1 - c0), "events": r.events - r0.events,
                  "exit": r.transcript[-1]["exit"]}}))
"""


def drmgr(full: bool) -> dict[str, Any]:
    """CPU s of `drmgr -c mem -r -q K` after registration (the registration-only run
    subtracted), 1TB vs 64TB."""
    out = {}
    cases = [("1T", 16), ("64T", 16)] + ([("64T", 256)] if full else [])
    for size, k in cases:
        out[f"{size}_q{k}"] = _child(_DRMGR.format(size=size, k=k))
    out["ratio_64T_1T_q16"] = out["64T_q16"]["cpu"] / max(out["1T_q16"]["cpu"], 1e-9)
    return out


# --- dump files ---------------------------------------------------------------------------------

def dumpfiles() -> dict[str, Any]:
    from fadumpsim.dumpfile import (ContentExtent, CpuState, LoadRange, VmcoreImage,
                                    inspect_dump, write_kdump_compressed)
    ps = 65536
    res = {}
    with tempfile.TemporaryDirectory() as d:
        for label, size in (("4TB", 4 * TB), ("64TB", 64 * TB)):
            # the RFC story's kernel (600 MB) and 2 GB of user pages; never-used memory is free
            exts = (ContentExtent(0, 600 * MB, "kernel", "kernel:workload", 0),
                    ContentExtent(600 * MB, 2648 * MB, "user", "user:workload", 0),
                    ContentExtent(2648 * MB, size, "free", "", 0))
            img = VmcoreImage("4.18.0-fadumpsim", ps, 1, {"swapper_pg_dir": 0xC000000001A10000},
                              (CpuState(0, tuple(range(48))),), 0, (LoadRange(0, size, exts),))
            p = os.path.join(d, label + ".kdump")
            cpu, wall, st = cpu_wall(lambda: write_kdump_compressed(img, p, dump_level=31,
                                                                   compression="zlib"))
            floor = 2 * -(-(size // ps) // (8 * ps)) * ps
            icpu, iwall, rep = cpu_wall(lambda: inspect_dump(p))
            res[label] = {"bytes": os.path.getsize(p), "floor": floor,
                          "kept_pages": st.pages_written, "write_s": wall, "write_cpu_s": cpu,
                          "inspect_s": iwall}
            os.unlink(p)
        # end to end: the simulator's own capture kernel classifies the pages
        from fadumpsim import sim
        from fadumpsim.scenario import Scenario
        m = {"memory": "4T", "max_memory": "4T", "lmb_size": "256M"}
        sc = Scenario.build("e2e-4T", machine=m, script=[
            {"name": "a", "actor": "kernel",
             "run": ["echo 1 > /sys/kernel/fadump_registered", "echo c > /proc/sysrq-trigger"]},
            {"name": "s", "actor": "capture",
             "run": ["makedumpfile -c -d 31 /proc/vmcore /var/crash/vmcore"]}])
        cpu, wall, r = cpu_wall(lambda: sim.run(sc, dump_dir=d))
        p = os.path.join(d, "var", "crash", "vmcore")
        res["e2e_4TB"] = {"status": r.dump.get("status"), "bytes": os.path.getsize(p),
                          "run_s": wall, "run_cpu_s": cpu}
    return res


# --- explore, import -----------------------------------------------------------------------------

def explore_workers(schedules: int) -> dict[str, Any]:
    """1 vs 2 workers on the same random schedules (bench_explore.workers_speedup): wall,
    and CPU seconds of this process and of its (joined) helper, so a loaded machine can
    still be read."""
    from bench_explore import workers_speedup
    return workers_speedup(schedules)


def startup() -> dict[str, float]:
    import bench_import as bi
    res = {label: bi.timed(argv, 5) for label, argv in bi.commands()}
    base = res["python -c pass"]
    return {k: (v - base) * 1000 for k, v in res.items() if k != "python -c pass"}


# --- report ----------------------------------------------------------------------------------------

def machine() -> str:
    load = os.getloadavg()
    return (f"{os.cpu_count()} cores, load average {load[0]:.1f} / {load[1]:.1f} (1 / 5 min) "
            f"while measuring, Python {sys.version.split()[0]}")


def table(r: dict[str, Any]) -> str:
    rt, lg, rf, sc, dm, dr, ex, st = (r[k] for k in ("runtime", "logs", "replay", "scale",
                                                         "dumps", "drmgr", "explore", "startup"))
    sp = r["scripts"]
    sn, sb = sp["new"], sp["baseline"]
    big, small, bbig = max(sn, key=int), min(sn, key=int), max(sb, key=int)
    yes = lambda ok: "met" if ok else "**missed**"  # noqa: E731
    rows = [
        ("scheduled runtime, every delivery logged (per CPU-second)",
         f"{rt['sched_per_cpu_s']:,.0f} events/s", "≥ 50k/s", yes(rt["sched_per_cpu_s"] >= 50_000)),
        (f"…versus a bare pykka `ask` loop in the same run ({rt['ask_per_cpu_s']:,.0f}/CPU-s)",
         f"{rt['ratio_cpu']:.1f}×", "≥ 1.5×", yes(rt["ratio_cpu"] >= 1.5)),
        (f"run time per script, {int(big):,} vs {int(small):,} concurrent scripts (CPU; the "
         f"full-scan scheduler it replaced, same run: ×{sb[bbig]['per_script_ms'] / sb[small]['per_script_ms']:.0f} "
         f"from {int(small):,} to {int(bbig):,})",
         f"{sp['ratio']:.2f}× ({sn[big]['cpu']:.1f} s for {int(big):,}; full scan "
         f"{sb[bbig]['cpu']:.1f} s for {int(bbig):,})", "≤ 2×", yes(sp["ratio"] <= 2)),
        (f"log size, median of the {lg['library_logs']} library scenarios' FIFO logs",
         f"{lg['median_bytes_per_event']:.0f} bytes/event (max {lg['max_bytes_per_event']:.0f})",
         "≤ 64", yes(lg["median_bytes_per_event"] <= 64)),
        (f"log decode per CPU-second: small records (runtime toy) / library event mix "
         f"({lg['decode_backend']})",
         f"{lg['toy']['decode_per_cpu_s']:,.0f} / {lg['mixed']['decode_per_cpu_s']:,.0f} events/s",
         "≥ 400k/s", _decode_status(lg, yes)),
        ("…the pure-Python path (`FADUMPSIM_PURE_DECODE=1`), same run",
         f"{lg['toy']['pure_decode_per_cpu_s']:,.0f} / "
         f"{lg['mixed']['pure_decode_per_cpu_s']:,.0f} events/s", "", ""),
        ("…versus a bare `msgpack.unpackb` of the same records packed plainly (no framing, "
         "CRC or checks), same run: default / pure-Python path",
         f"{lg['toy']['decode_per_cpu_s'] / lg['toy']['bare_unpack_per_cpu_s']:.2f}× / "
         f"{lg['mixed']['decode_per_cpu_s'] / lg['mixed']['bare_unpack_per_cpu_s']:.2f}×; "
         f"{lg['toy']['pure_decode_per_cpu_s'] / lg['toy']['bare_unpack_per_cpu_s']:.2f}× / "
         f"{lg['mixed']['pure_decode_per_cpu_s'] / lg['mixed']['bare_unpack_per_cpu_s']:.2f}×",
         "", ""),
        ("log append per CPU-second: toy / library mix",
         f"{lg['toy']['append_per_cpu_s']:,.0f} / {lg['mixed']['append_per_cpu_s']:,.0f} events/s",
         "", ""),
        ("replay with verification, versus the unlogged run (library, CPU)",
         f"{rf['replay_vs_run_cpu']:.2f}×", "≥ 0.5×", yes(rf["replay_vs_run_cpu"] >= 0.5)),
        ("short recorded run: user's log (fsync at close) / internal re-recording",
         f"{rf['record_ms_durable']:.0f} ms / {rf['record_ms_internal']:.0f} ms", "", ""),
        ("crash + capture + `makedumpfile -d 31`, cold (first run in a process), 8GB / 1TB / 64TB",
         " / ".join(f"{sc[s]['cold_ms']:.0f}" for s in ("8G", "1T", "64T")) + " ms",
         "8GB < 0.5 s; 64TB < 10 s", yes(sc["8G"]["cold_ms"] < 500 and sc["64T"]["cold_ms"] < 10_000)),
        ("`drmgr -c mem -r -q 16` after registration, 64TB / 1TB (CPU)",
         f"{dr['ratio_64T_1T_q16']:.1f}× ({dr['64T_q16']['cpu']:.2f} s / {dr['1T_q16']['cpu']:.2f} s)",
         "≤ 3×", yes(dr["ratio_64T_1T_q16"] <= 3)),
    ]
    if "64T_q256" in dr:
        rows.append(("`drmgr -c mem -r -q 256` on 64TB (CPU)", f"{dr['64T_q256']['cpu']:.2f} s",
                     "< 1 s", yes(dr["64T_q256"]["cpu"] < 1)))
    d4, d64 = dm["4TB"], dm["64TB"]
    rows += [
        (f"`makedumpfile -c -d 31` file, 4TB partition ({d4['kept_pages']:,} kept pages)",
         f"{d4['bytes'] / MB:.1f} MB in {d4['write_s']:.1f} s", "≤ 64 MB", yes(d4["bytes"] <= 64 * MB)),
        ("`run --dump-dir` of a 4TB partition: crash, capture, `makedumpfile -c -d 31` "
         "(the simulator's page classes), file size and whole-run CPU",
         f"{dm['e2e_4TB']['bytes'] / MB:.1f} MB, {dm['e2e_4TB']['run_cpu_s']:.1f} s "
         f"(dump {dm['e2e_4TB']['status']})", "≤ 64 MB",
         yes(dm["e2e_4TB"]["bytes"] <= 64 * MB and dm["e2e_4TB"]["status"] == "saved")),
        ("same kept pages on 64TB: file / the format's floor (2 bitmaps, 1 bit per page)",
         f"{d64['bytes'] / MB:.0f} MB / {d64['floor'] / MB:.0f} MB in {d64['write_s']:.1f} s",
         "floor + kept pages, < 30 s",
         yes(d64["bytes"] - d64["floor"] == d4["bytes"] - d4["floor"] and d64["write_s"] < 30)),
        (f"`explore --workers 2` vs 1, {ex['schedules']:,} random schedules: wall here "
         "(load average before/after); bound on 2 idle cores from CPU seconds (serial / "
         "half the 2-worker total)",
         f"{ex['speedup']:.2f}× (load {ex['load_before'][0]:.1f}/{ex['load_after'][0]:.1f}); "
         f"≤ {ex['idle_bound']:.2f}× ({ex['cpu_overhead'] * 100:+.0f}% CPU)",
         "≥ 1.6× on an idle machine", "not measurable here"
         if max(ex["load_before"][0], ex["load_after"][0]) > 1.5 else yes(ex["speedup"] >= 1.6)),
        ("`fadumpsim --help` / `import fadumpsim.cli` beyond Python start-up",
         f"{st.get('fadumpsim --help', float('nan')):.0f} ms / {st.get('import fadumpsim.cli', float('nan')):.0f} ms",
         "< 300 ms", yes(max(st.get("fadumpsim --help", 1e9), st.get("import fadumpsim.cli", 1e9)) < 300)),
    ]
    out = ["| what | measured | target | |", "|---|---:|---|---|"]
    out += [f"| {a} | {b} | {c} | {d} |" for a, b, c, d in rows]
    return "\n".join(out)


def replace_between(path: str, text: str) -> None:
    """Replace what lies between `<!-- run_all:begin -->` and `<!-- run_all:end -->`."""
    with open(path, encoding="utf-8") as f:
        old = f.read()
    pat = re.compile(r"(<!-- run_all:begin -->\n).*?(<!-- run_all:end -->)", re.S)
    if not pat.search(old):
        raise SystemExit(f"{path}: no run_all markers")
    new = pat.sub(lambda m: m.group(1) + text + "\n" + m.group(2), old)
    with open(path, "w", encoding="utf-8") as f:
        f.write(new)


def main(argv: list[str]) -> dict[str, Any]:
    full = "--full" in argv
    steps: list[tuple[str, Callable[[], Any]]] = [
        ("runtime", lambda: runtime(60_000)),
        ("scripts", scripts),
        ("logs", lambda: logs(100_000)),
        ("replay", lambda: replay_and_fsync(2)),
        ("scale", scale),
        ("drmgr", lambda: drmgr(full)),
        ("dumps", dumpfiles),
        ("explore", lambda: explore_workers(1000)),
        ("startup", startup),
    ]
    res: dict[str, Any] = {"machine_before": machine()}
    for name, fn in steps:
        t0 = time.perf_counter()
        res[name] = fn()
        print(f"[{name}: {time.perf_counter() - t0:.0f} s]", file=sys.stderr)
    res["machine"] = machine()
    tab = table(res)
    print(res["machine"])
    print(tab)
    if "--json" in argv:
        with open(argv[argv.index("--json") + 1], "w") as f:
            json.dump(res, f, indent=1)
    if "--markdown" in argv:
        head = (f"Measured by `python benchmarks/run_all.py --markdown` on "
                f"{time.strftime('%Y-%m-%d')}: {res['machine']}.")
        replace_between(os.path.join(ROOT, "README.md"), head + "\n\n" + tab)
        detail = head + "\n\n" + tab + "\n\n```json\n" + json.dumps(
            {k: v for k, v in res.items() if k not in ("machine",)}, indent=1, default=str) + "\n```"
        replace_between(os.path.join(ROOT, "docs", "benchmarks.md"), detail)
    return res


if __name__ == "__main__":
    main(sys.argv[1:])
