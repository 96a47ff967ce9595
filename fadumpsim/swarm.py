"""The fault swarm: a generated world per seed, run once, failures grouped and minimized.

Seed s gives a scenario (`strategies.scenario_for_seed(s, knobs)`: machine, command
line, workload, hotplug storm, kdump service, firmware faults, crash, capture) and a
schedule (`schedule_for(s)`: seeded random or PCT). The run is judged like any run
(every invariant, plus the generator's oracles in `[expect]`). Failures are grouped
by (failure key, signature); the first seed of each group is saved as a scenario
file, recorded as a log, and minimized (`api.minimize`) to a log that replays to
the same failure.

Seeds run in fixed batches, on processes or Dask (the executors of
`replay/explore.py`), and are merged in seed order by the parent, which alone saves
and minimizes: the result is the same for any number of workers. `swarm.json` in
`out` is rewritten after every new group, so Ctrl-C keeps what was found.
See docs/swarm.md.
"""
from __future__ import annotations

import json
import os
import random
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

from fadumpsim.strategies import Knobs, scenario_for_seed

#: seeds per task (fixed, so the split does not depend on the worker count)
BATCH = 4
#: PCT step bound: generated runs take ~40-300 deliveries
PCT_STEPS = 200
#: candidate runs a minimization may spend on one group
MINIMIZE_RUNS = 400

Progress = Callable[[int, int | None, int], None]


def schedule_for(seed: int) -> dict[str, Any]:
    """The schedule of seed `seed`: `fadumpsim run --strategy S --seed N [--depth --steps]`."""
    rng = random.Random(f"fadumpsim-swarm-schedule:{seed}")
    s = rng.randrange(1 << 31)
    if rng.random() < 0.5:
        return {"strategy": "random", "seed": s}
    return {"strategy": "pct", "seed": s, "depth": rng.randint(1, 3), "steps": PCT_STEPS}


def _make_strategy(spec: dict[str, Any]) -> Any:
    from fadumpsim.replay.strategies import make_strategy
    return make_strategy(spec["strategy"], spec["seed"],
                         **{k: spec[k] for k in ("depth", "steps") if k in spec})


def run_command(scenario_path: str, spec: dict[str, Any]) -> str:
    """The shell command that re-runs a saved finding's scenario the same way."""
    cmd = f"fadumpsim run {scenario_path} --strategy {spec['strategy']} --seed {spec['seed']}"
    if spec["strategy"] == "pct":
        cmd += f" --depth {spec['depth']} --steps {spec['steps']}"
    return cmd


def refine(res: Any, signature: str, data: dict[str, Any] | None = None) -> str:
    """The explore signature plus what tells different stories apart.

    `reserved-area-intact`: which area the LMB left, the boot memory area (firmware's
    copy source, at 0) or the fadump reserved area (its destination; the
    registration/DLPAR race, or patch 4 reverted), and `hole` when that LMB was not in
    the partition when firmware accepted the registration (unassigned at boot or removed
    before: a hole before registration, which QEMU accepts). `dump-armed`:
    `reregister-in-flight` when a
    script's own `echo 1` was still in flight at the crash (the 2019 one-write
    re-registration unregisters first: a narrow window, not the udev rule's), and
    `unregister-in-flight` for an `echo 0` (no longer a violation; kept for old logs).
    """
    extra = []
    holes = set((data or {}).get("machine", {}).get("unassigned", []))
    for v in res.unexpected_violations:
        if v["invariant"] == "reserved-area-intact":
            extra.append("boot-area" if "covering [0x0-" in v["message"] else "reserved-area")
            m = re.match(r"LMB (\d+) ", v["message"])
            if (m and int(m.group(1)) in holes) or "was not in the partition" in v["message"]:
                extra.append("hole")
        if v["invariant"] == "dump-armed":
            for value, tag in (("0", "unregister-in-flight"), ("1", "reregister-in-flight")):
                if any(t["exit"] is None and t["command"].startswith(
                        f"echo {value} > /sys/kernel/fadump") for t in res.transcript):
                    extra.append(tag)
    return "|".join([signature, *extra])


def explained_by_fault(data: dict[str, Any], res: Any) -> bool:
    """The run fails only because the search injected a copy error: the dump is what a
    failed copy gives (`invalid`, or `incomplete` -- QEMU reports a hardware error only
    through bytes_dumped 0 -- or `none` when a hardware error on QEMU's CPU state powered
    the guest off) and `dump-armed` is the only thing broken. Counted apart
    (`explained`), not reported as a finding."""
    injected = [c.split() for s in data.get("script", []) if s.get("actor") == "firmware"
                for c in s["run"] if c.startswith("inject copy-error")]
    if not injected:
        return False
    status = res.dump.get("status")
    qemu = data.get("firmware", {}).get("flavour") == "qemu"
    poweroff = qemu and any(w[2] == "hardware" and (len(w) == 3 or w[3] in ("cpu", "at"))
                            for w in injected)
    return (not res.failure and (status in ("invalid", "incomplete")
                                 or (status == "none" and poweroff))
            and all(e["ok"] for e in res.expectations)
            and [v["invariant"] for v in res.unexpected_violations] == ["dump-armed"])


@dataclass(frozen=True)
class SeedOutcome:
    seed: int
    events: int
    failure: tuple | None       # replay.explore.failure_of, signature refined
    schedule: dict[str, Any]
    explained: str | None = None  # failure key of a run explained by an injected fault


def run_seed(seed: int, knobs: Knobs) -> SeedOutcome:
    """Generate, run and judge one seed (top-level: it runs in workers)."""
    from fadumpsim import sim
    from fadumpsim.replay.explore import failure_of
    from fadumpsim.scenario import Scenario
    data = scenario_for_seed(seed, knobs)
    sc = Scenario(data, source=f"<swarm seed {seed}>")
    spec = schedule_for(seed)
    res = sim.run(sc, seed=spec["seed"], strategy=_make_strategy(spec))
    f = failure_of(res)
    if f is not None and explained_by_fault(data, res):
        return SeedOutcome(seed, res.events, None, spec, explained=f[0])
    if f is not None:
        f = (f[0], refine(res, f[1], data), *f[2:])
    return SeedOutcome(seed, res.events, f, spec)


def seed_task(knobs: Knobs, seeds: Sequence[int]) -> list[SeedOutcome]:
    return [run_seed(s, knobs) for s in seeds]


@dataclass
class Finding:
    invariant: str
    signature: str
    count: int
    first_seed: int
    message: str
    schedule: dict[str, Any]
    scenario: str | None = None
    original_log: str | None = None
    log: str | None = None
    reproduced: bool | None = None
    minimized: dict[str, Any] | None = None
    pinned: str | None = None       # the scenario plus [schedule]: fails in FIFO order
    seeds: list[int] = field(default_factory=list)   # the first few seeds that hit it

    def to_json(self) -> dict[str, Any]:
        return {"invariant": self.invariant, "count": self.count, "scenario": self.scenario,
                "log": self.log, "signature": self.signature, "first_seed": self.first_seed,
                "seeds": self.seeds, "message": self.message, "schedule": self.schedule,
                "run": run_command(self.scenario, self.schedule) if self.scenario else None,
                "original_log": self.original_log, "reproduced": self.reproduced,
                "minimized": self.minimized, "pinned": self.pinned}


@dataclass
class SwarmResult:
    profile: str
    knobs: Knobs
    seed_start: int
    workers: int
    out: str | None
    seeds: int = 0
    failing_seeds: int = 0
    events: int = 0
    failures: list[Finding] = field(default_factory=list)
    explained: dict[str, int] = field(default_factory=dict)
    elapsed: float = 0.0
    interrupted: bool = False
    backend: str = "serial"

    @property
    def rate(self) -> float:
        return self.seeds / self.elapsed if self.elapsed > 0 else 0.0

    def to_json(self) -> dict[str, Any]:
        return {"profile": self.profile, "knobs": self.knobs.to_json(),
                "seed_start": self.seed_start, "seeds": self.seeds,
                "failing_seeds": self.failing_seeds, "events": self.events,
                "distinct": len(self.failures),
                "failures": [f.to_json() for f in self.failures],
                "explained_by_faults": dict(sorted(self.explained.items())),
                "interrupted": self.interrupted, "out": self.out,
                "workers": self.workers, "backend": self.backend,
                "elapsed": round(self.elapsed, 3), "rate": round(self.rate, 2)}

    def summary_lines(self) -> list[str]:
        lines = [f"swarm {self.profile}: {self.seeds} seed(s) from {self.seed_start} in "
                 f"{self.elapsed:.1f}s ({self.rate:.1f} seeds/s, {self.workers} worker(s), "
                 f"{self.backend}); {self.failing_seeds} failing seed(s), "
                 f"{len(self.failures)} distinct failure(s)"]
        if self.explained:
            lines.append("  explained by injected copy errors (not reported): " + ", ".join(
                f"{k} {v}x" for k, v in sorted(self.explained.items())))
        if self.interrupted:
            lines.append("  interrupted: partial result, every finding so far is saved")
        for f in self.failures:
            lines.append(f"  {f.invariant}: {f.count}x, first at seed {f.first_seed} "
                         f"[{f.signature}]: {f.message}")
            if f.scenario:
                lines.append(f"      scenario: {f.scenario}   log: {f.log}"
                             + ("" if f.reproduced in (None, True) else
                                "  (WARNING: the log did not reproduce the failure)"))
                if f.pinned:
                    lines.append(f"      pinned (fails in FIFO order): {f.pinned}")
                if f.minimized:
                    for s in f.minimized.get("story", [])[:3]:
                        lines.append(f"      {s}")
        return lines


#: partitions up to this many LMBs get the full minimization budget
FULL_BUDGET_LMBS = 16384


def minimize_budget(runs: int, n_lmbs: int) -> int:
    """Candidate runs for minimizing a finding: a run costs about its LMB count (a
    262,144-LMB world ~1 s), so large partitions get proportionally fewer (at least 10).
    Deterministic, unlike a time budget: the saved finding must not depend on speed."""
    if runs <= 0 or n_lmbs <= FULL_BUDGET_LMBS:
        return runs
    return max(min(runs, 10), runs * FULL_BUDGET_LMBS // n_lmbs)


def _slug(key: str) -> str:
    s = "".join(c if c.isalnum() or c in "-_." else "-" for c in key.replace("expect:", "expect-"))
    return s.strip("-.") or "failure"


def _write_json(path: Path, obj: dict[str, Any]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(obj, indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, path)


class _Saver:
    """Saves a group's first seed: scenario file, recorded log, minimized log."""

    def __init__(self, out: str, knobs: Knobs, minimize_runs: int) -> None:
        self.out = Path(out)
        self.knobs = knobs
        self.minimize_runs = minimize_runs
        self.out.mkdir(parents=True, exist_ok=True)

    def save(self, f: Finding) -> None:
        import tomli_w
        from fadumpsim import api, sim
        from fadumpsim.pin import write_pinned
        from fadumpsim.replay.explore import failure_of, free_path
        from fadumpsim.replay.minimize import constraint_signature
        from fadumpsim.scenario import Scenario
        data = scenario_for_seed(f.first_seed, self.knobs)
        data["description"] = (f"Found by `fadumpsim swarm` (profile {self.knobs.profile}, seed "
                               f"{f.first_seed}): {f.invariant}. Re-run: "
                               f"{run_command('THIS.toml', f.schedule)}")
        stem = f"{_slug(f.invariant)}-seed{f.first_seed}"
        toml_path = free_path(self.out, stem, ".toml")
        Path(toml_path).write_text(tomli_w.dumps(data), encoding="utf-8")
        f.scenario = toml_path
        sc = Scenario(data, source=toml_path)
        log = free_path(self.out, stem, ".fadlog")
        res = api.record(sc, log, seed=f.schedule["seed"], strategy=_make_strategy(f.schedule))
        got = failure_of(res)
        f.original_log = log
        f.reproduced = got is not None and got[0] == f.invariant
        f.log = log
        if not f.reproduced or self.minimize_runs <= 0:
            return
        m = api.minimize(log, free_path(self.out, stem, ".min.fadlog"),
                         max_runs=minimize_budget(self.minimize_runs, sc.machine.n_lmbs))
        if not (m.failed and m.out and m.reproduced):
            return
        f.log = m.out
        f.minimized = {"events": m.events, "deviations": len(m.deviations),
                       "original_events": m.original_events,
                       "original_deviations": m.original_deviations,
                       "runs": m.runs, "story": m.story,
                       "constraints": [c.text for c in m.constraints],
                       "constraint_signature": constraint_signature(m.constraints)}
        if m.constraints:
            # the regression scenario: FIFO under the found constraints fails the same way
            pinned = free_path(self.out, stem, ".pinned.toml")
            pdata = write_pinned(pinned, data, m, m.out)
            again = failure_of(sim.run(Scenario(pdata, source=pinned)))
            if again is not None and again[0] == f.invariant:
                f.pinned = pinned


def swarm(profile: str = "rfc-v6", seeds: int | None = 100, *, seed_start: int = 0,
          time_limit: float | None = None, knobs: Knobs | None = None, workers: int = 1,
          scheduler_address: str | None = None, out: str | None = "swarm-out",
          progress: Progress | None = None, minimize_runs: int = MINIMIZE_RUNS,
          keep_seeds: int = 5) -> SwarmResult:
    """Run seeds `seed_start ..` (`seeds` of them, or until `time_limit` seconds)."""
    from fadumpsim.replay.explore import Interruptible, make_executor
    if seeds is None and time_limit is None:
        raise ValueError("give a number of seeds or a time limit")
    if seeds is not None and seeds < 1:
        raise ValueError("seeds must be at least 1")
    if workers < 1:
        raise ValueError("workers must be at least 1")
    kn = knobs if knobs is not None else Knobs(profile=profile)
    if kn.profile != profile:
        raise ValueError(f"knobs are for profile {kn.profile!r}, not {profile!r}")
    result = SwarmResult(profile, kn, seed_start, workers, out)
    saver = _Saver(out, kn, minimize_runs) if out is not None else None
    state_path = Path(out) / "swarm.json" if out is not None else None
    groups: dict[tuple[str, str], Finding] = {}
    t0 = time.perf_counter()

    def windows() -> Iterator[list[tuple[Knobs, list[int]]]]:
        """Batches in windows of a few per worker: the time limit is checked between
        windows (a process pool would otherwise queue an endless generator at once)."""
        a = seed_start
        while True:
            if time_limit is not None and time.perf_counter() - t0 >= time_limit:
                return
            win = []
            for _ in range(2 * workers):
                end = a + BATCH if seeds is None else min(a + BATCH, seed_start + seeds)
                if end <= a:
                    break
                win.append((kn, list(range(a, end))))
                a = end
            if not win:
                return
            yield win

    try:
        ex = make_executor(workers, scheduler_address)
        early = False
    except KeyboardInterrupt:  # Ctrl-C while workers start (they are stopped): no seed run
        ex, early = make_executor(1), True
    result.backend = ex.name
    with Interruptible(ex) as run:
        if early:
            raise KeyboardInterrupt
        for outcomes in (o for win in windows() for o in ex.imap(seed_task, win)):
            changed = False
            for o in outcomes:
                result.seeds += 1
                result.events += o.events
                if o.explained is not None:
                    result.explained[o.explained] = result.explained.get(o.explained, 0) + 1
                if o.failure is None:
                    continue
                result.failing_seeds += 1
                key, sig, *_rest, msg = o.failure
                g = groups.get((key, sig))
                if g is None:
                    g = Finding(key, sig, 0, o.seed, msg, o.schedule)
                    groups[(key, sig)] = g
                    result.failures.append(g)
                    if saver is not None:
                        saver.save(g)
                    changed = True
                g.count += 1
                if len(g.seeds) < keep_seeds:
                    g.seeds.append(o.seed)
            if changed and state_path is not None:
                result.elapsed = time.perf_counter() - t0
                _write_json(state_path, result.to_json())
            if progress is not None:
                progress(result.seeds, seeds, len(result.failures))
    result.elapsed = time.perf_counter() - t0
    result.interrupted = run.interrupted
    if state_path is not None:
        _write_json(state_path, result.to_json())
    return result
