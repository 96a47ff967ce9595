"""Bug-finding power of the swarm: seeds to the first find of each known bug, per profile
and knob setting, and seeds/s (docs/swarm.md and docs/explore.md quote the output).

Each seed is generated and run exactly as `fadumpsim swarm` runs it (`swarm.run_seed`'s
steps, without saving or minimizing). A failing seed is attributed to a known bug by
evidence in that run, independently of the swarm's grouping:

* udev-window:       dump-armed, dump 'none', a udev rule that unregisters (try-restart, or
                     a reload on a kernel without one-write re-registration), no script
                     `echo 0`/`echo 1` in flight at the crash
* dlpar-race:        reserved-area-intact for an LMB of the fadump reserved area, patch 4 in
                     (or of the boot memory area, any profile), not an LMB unassigned at boot
* hole-registration: the kdump service's `echo 1` failed and the kernel printed "Can't have
                     holes in reserved memory area" / "... boot memory area" (PowerVM), or
                     firmware holds a registration over an LMB unassigned at boot (QEMU
                     checks no address at REGISTER)
* stale-elfcorehdr:  user pages lost with fadump=nonmovable (or classic) after a hot-add
* patch4-reverted:   reserved-area-intact in the reserved area with hotplug-protect
                     reverted and hotplug_lock on (so the race cannot explain it)
* rereg-window:      (not one of the issue's five) dump-armed, dump 'none', the crash inside
                     mainline's one-write re-registration (unregister, then register): a
                     script's `echo 1` in flight, or a reload rule's on upstream

Usage: python benchmarks/bench_swarm.py [--seeds 300] [--blocks 3] [--json]
"""
from __future__ import annotations

import argparse
import json
import time
from typing import Any

from fadumpsim import sim
from fadumpsim.replay.explore import failure_of
from fadumpsim.scenario import Scenario
from fadumpsim.strategies import Knobs, scenario_for_seed
from fadumpsim.swarm import _make_strategy, refine, schedule_for, explained_by_fault

CONFIGS = [
    ("rfc-v6", []),
    ("rfc-v6", ["udev_reload=false"]),
    ("rfc-v6", ["hotplug_lock=true", "udev_reload=false"]),
    ("rfc-v6", ["hotplug_lock=true", "udev_reload=false", "flavour=powervm"]),
    ("rfc-v6", ["revert=hotplug-protect", "hotplug_lock=true"]),
    ("classic", []),
    ("upstream", []),
    ("upstream", ["udev_reload=true", "udev_rule=try-restart-2018"]),
]
BUGS = ("udev-window", "dlpar-race", "hole-registration", "stale-elfcorehdr", "patch4-reverted",
        "rereg-window")


def classify(data: dict[str, Any], res: Any) -> set[str]:
    f = failure_of(res)
    if f is None or explained_by_fault(data, res):
        return set()
    sig = refine(res, f[1], data)
    bugs = set()
    invs = {v["invariant"] for v in res.unexpected_violations}
    log = "\n".join(res.kernel_log)
    revert = data["kernel"].get("revert", [])
    rule = data.get("hotplug", {}).get("udev_rule")
    one_write = data["profile"] == "upstream" and "reregister" not in revert
    if "dump-armed" in invs and res.dump["status"] == "none":
        if rule and "-in-flight" not in sig:
            # the rule's echo 0 ... echo 1, or (mainline) its one-write re-registration
            bugs.add("udev-window" if rule == "try-restart-2018" or not one_write
                     else "rereg-window")
        elif "reregister-in-flight" in sig and one_write:
            bugs.add("rereg-window")
    if "reserved-area-intact" in invs and "|hole" in sig:
        bugs.add("hole-registration")
    elif "reserved-area-intact" in invs and "|reserved-area" in sig:
        if "hotplug-protect" in revert and data["kernel"].get("hotplug_lock"):
            bugs.add("patch4-reverted")
        elif "hotplug-protect" not in revert and data["profile"] == "rfc-v6":
            bugs.add("dlpar-race")
    elif ("reserved-area-intact" in invs and "|boot-area" in sig
          and not data["kernel"].get("hotplug_lock")):
        bugs.add("dlpar-race")
    failed = {e["key"] for e in res.expectations if not e["ok"]}
    if "exit_codes.kdump-start" in failed and "Can't have holes in" in log:
        bugs.add("hole-registration")
    if "user_pages_lost" in failed and "was hot-added" in log:
        bugs.add("stale-elfcorehdr")
    return bugs


def measure(profile: str, settings: list[str], seeds: int, start: int) -> dict[str, Any]:
    kn = Knobs.parse(profile, settings)
    first: dict[str, int] = {}
    groups: dict[str, int] = {}   # every failure, by key and refined signature
    failing = 0
    t0 = time.perf_counter()
    for seed in range(start, start + seeds):
        data = scenario_for_seed(seed, kn)
        spec = schedule_for(seed)
        res = sim.run(Scenario(data), seed=spec["seed"], strategy=_make_strategy(spec))
        found = classify(data, res)
        f = failure_of(res)
        failing += f is not None
        if f is not None and not explained_by_fault(data, res):
            sig = f"{f[0]} {refine(res, f[1], data)}"
            groups[sig] = groups.get(sig, 0) + 1
        for b in found:
            first.setdefault(b, seed - start + 1)
    dt = time.perf_counter() - t0
    return {"profile": profile, "set": settings, "start": start, "seeds": seeds,
            "failing": failing, "elapsed": round(dt, 2), "seeds_per_s": round(seeds / dt, 1),
            "first_find": {b: first.get(b) for b in BUGS},
            "groups": dict(sorted(groups.items(), key=lambda kv: -kv[1]))}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, default=300)
    ap.add_argument("--blocks", type=int, default=3, help="seed blocks 0, 10000, 20000, ...")
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    rows = []
    for p, s in CONFIGS:
        for b in range(a.blocks):
            rows.append(measure(p, s, a.seeds, 10000 * b))
            if a.json:
                print(json.dumps(rows[-1]), flush=True)
    if a.json:
        return
    print(f"{'profile + --set':72} {'start':>6} {'seeds/s':>7}  " + "  ".join(f"{b:>17}" for b in BUGS))
    for r in rows:
        label = r["profile"] + (" " + " ".join(r["set"]) if r["set"] else "")
        cells = "  ".join(f"{(r['first_find'][b] or '-')!s:>17}" for b in BUGS)
        print(f"{label:72} {r['start']:>6} {r['seeds_per_s']:>7}  {cells}")


if __name__ == "__main__":
    main()
