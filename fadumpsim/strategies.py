"""Scenario generators: hypothesis strategies, and the seeded generator the swarm uses.

One generator, two ways to drive it. Every part (`gen_machine`, `gen_kernel`,
`gen_workload`, `gen_scripts`, `gen_scenario`) is a plain function of a *draw*
interface (`Draw`: integer, choice, boolean). `RandomDraw(seed)` drives it from a
`random.Random`, so the swarm gets the same scenario for the same seed in any
process and any worker; `HypothesisDraw` drives it from hypothesis' `draw`, so the
public strategies (`machines()`, `cmdlines()`, `workloads()`, `scripts()`,
`scenarios()`) are the very same code, and hypothesis can shrink what they make.
(`strategy.example()` is not reproducible; this split is why the swarm never uses it.)

Generated scenarios are plain dicts in the scenario-file format and always pass
`fadumpsim.scenario` validation. `Knobs` fixes what a profile or a what-if decides
(`hotplug_lock`, `udev_reload`, `revert`, ...); a knob left `None` is drawn. A forced
knob still consumes its draw, so forcing one knob leaves the rest of a seed's
scenario unchanged (the swarm's "same seed, bug fixed" comparisons rely on it).

hypothesis is imported only by the strategy functions (it is not needed by the
swarm). See docs/swarm.md.
"""
from __future__ import annotations

import random
from dataclasses import dataclass, field, replace
from typing import Any, Callable, Protocol, Sequence, TypeVar

from fadumpsim.actors.commands import COPY_SECTIONS, COPY_SIDES
from fadumpsim.actors.flavours import DEFAULT_FLAVOUR, FLAVOURS
from fadumpsim.actors.kernel.sizing import PAGEBLOCK, align_up, calculate_reserve_size, parse_cmdline
from fadumpsim.actors.machine import PROFILES, REVERTABLE
from fadumpsim.actors.sizes import MB, parse_size
from fadumpsim.actors.udev import DEFAULT_RULE, RULES

T = TypeVar("T")
GB, TB = 1 << 30, 1 << 40

#: memory sizes, small ones weighted up (fast), large ones present (extents make them cheap)
MEMORY_SIZES = (2 * GB, 4 * GB, 8 * GB, 8 * GB, 16 * GB, 32 * GB, 64 * GB, 256 * GB, TB,
                8 * TB, 64 * TB)
LMB_SIZES = (64 * MB, 128 * MB, 256 * MB, 256 * MB, 512 * MB, 1 * GB)
#: a generated partition never has more LMBs than this (drmem tables stay small)
MAX_LMBS = 1 << 19
BUSY_CODES = (-2, 9900, 9901, 9902)
ERROR_CODES = (-1, -3, -9)
CRASHKERNEL = ("256M", "512M", "1G", "2G", "3G")
DUMP_TOOLS = ("makedumpfile -d 31", "makedumpfile -d 31 -c", "makedumpfile -d 1",
              "makedumpfile -d 0", "makedumpfile -d 17 -E", "cp")
CPUS = (1, 2, 8, 64, 256)
RMA_SIZES = (512 * MB, 768 * MB, 1 * GB)
#: the udev rules of each profile's era (kdump-utils of the same years), the profile's
#: default first; `--set udev_rule=any` draws from every registered rule (actors/udev.py)
ERA_RULES = {"rfc-v6": ("try-restart-2018", "reload-throttled-2018"),
             "classic": ("try-restart-2018", "reload-throttled-2018"),
             "upstream": ("hotplug-ready-2024", "reload-throttled-2018")}
#: `kdumpctl start` durations drawn (ms): instant, quick check_rebuild, an initrd rebuild
KDUMPCTL_START_MS = (0, 1000, 30000)


def era_rules(profile: str) -> tuple[str, ...]:
    """The rules a profile's worlds draw: the era's rules that are registered, the
    profile's default (`udev_reload = true`) first."""
    rules = [r for r in ERA_RULES.get(profile, ()) if r in RULES]
    default = DEFAULT_RULE.get(profile)
    if default in RULES and default not in rules:
        rules.insert(0, default)
    return tuple(rules) or tuple(r for r in RULES if r != "none")


def all_rules() -> tuple[str, ...]:
    """Every registered rule that reacts to memory events, in registration order."""
    return tuple(r for r in RULES if r != "none")


class Draw(Protocol):
    """What a generator may ask for: everything it makes is a function of these answers."""

    def integer(self, lo: int, hi: int) -> int: ...            # lo..hi inclusive
    def choice(self, options: Sequence[T]) -> T: ...
    def boolean(self, p: float = 0.5) -> bool: ...


class RandomDraw:
    """Draws from `random.Random(seed)`: the swarm's deterministic source."""

    def __init__(self, seed: int | random.Random) -> None:
        self.rng = seed if isinstance(seed, random.Random) else random.Random(seed)

    def integer(self, lo: int, hi: int) -> int:
        return self.rng.randint(lo, hi)

    def choice(self, options: Sequence[T]) -> T:
        return options[self.rng.randrange(len(options))]

    def boolean(self, p: float = 0.5) -> bool:
        return self.rng.random() < p


class HypothesisDraw:
    """Draws through hypothesis (inside `st.composite`), so examples shrink.

    Booleans are an integer in 0..99 compared so that 0 (hypothesis' shrink target)
    means "feature off": shrinking removes features.
    """

    def __init__(self, draw: Callable[[Any], Any]) -> None:
        from hypothesis import strategies as st
        self._draw, self._st = draw, st

    def integer(self, lo: int, hi: int) -> int:
        return self._draw(self._st.integers(lo, hi))

    def choice(self, options: Sequence[T]) -> T:
        return options[self._draw(self._st.integers(0, len(options) - 1))]

    def boolean(self, p: float = 0.5) -> bool:
        return self._draw(self._st.integers(0, 99)) >= 100 - round(p * 100)


@dataclass(frozen=True)
class Knobs:
    """What the generator may not choose freely. `None`: drawn per scenario."""

    profile: str = "rfc-v6"
    udev_reload: bool | None = None     # a udev rule reacts to memory events (false: none)
    udev_rule: str | None = None        # which: None = the era's rules, "any" = every rule
    hotplug_lock: bool | None = False   # what-if: registration takes the device-hotplug lock
    revert: tuple[str, ...] | None = ()  # RFC patches left out (rfc-v6 only)
    nonmovable: bool | None = None      # fadump=nonmovable instead of fadump=on
    faults: bool = True                 # firmware fault injection
    crash: bool | None = None           # None: most scenarios crash
    max_memory: int = 64 * TB           # largest partition drawn
    flavour: str | None = None          # firmware flavour; None: drawn (mostly powervm)

    @classmethod
    def parse(cls, profile: str, settings: Sequence[str]) -> "Knobs":
        """`KEY=VALUE` strings (the CLI's `--set`); ValueError naming the bad one."""
        if profile not in PROFILES:
            raise ValueError(f"unknown profile {profile!r} (expected {', '.join(PROFILES)})")
        kn = cls(profile=profile, revert=())
        bools = {"udev_reload", "hotplug_lock", "nonmovable", "faults", "crash"}
        for s in settings:
            key, sep, val = s.partition("=")
            key = key.strip().replace("-", "_")
            val = val.strip()
            if not sep:
                raise ValueError(f"--set {s!r}: expected KEY=VALUE")
            if key in bools:
                if val not in ("true", "false", "any"):
                    raise ValueError(f"--set {key}: expected true, false or any, got {val!r}")
                kn = replace(kn, **{key: None if val == "any" else val == "true"})
            elif key == "revert":
                if val == "any":
                    kn = replace(kn, revert=None)
                    continue
                names = tuple(v for v in (x.strip() for x in val.split(",")) if v)
                ok = REVERTABLE[profile]
                bad = [n for n in names if n not in ok]
                if bad and not ok:
                    raise ValueError(f"--set revert: the {profile} profile has nothing to revert")
                if bad:
                    raise ValueError(f"--set revert: unknown patch {bad[0]!r} "
                                     f"(expected {', '.join(ok)} or any)")
                kn = replace(kn, revert=names)
            elif key == "udev_rule":
                if val != "any" and val not in RULES:
                    raise ValueError(f"--set udev_rule: unknown rule {val!r} "
                                     f"(expected {', '.join(RULES)} or any)")
                kn = replace(kn, udev_rule=val)
            elif key == "flavour":
                if val != "any" and val not in FLAVOURS:
                    raise ValueError(f"--set flavour: expected {', '.join(FLAVOURS)} or any, "
                                     f"got {val!r}")
                kn = replace(kn, flavour=None if val == "any" else val)
            elif key == "max_memory":
                from fadumpsim.actors.sizes import SizeError, parse_size
                try:
                    kn = replace(kn, max_memory=parse_size(val))
                except SizeError as e:
                    raise ValueError(f"--set max_memory: {e}") from None
            else:
                raise ValueError(f"--set {key!r}: unknown knob (expected one of "
                                 f"{', '.join(sorted(bools | set(OTHER_KNOBS)))})")
        return kn

    def to_json(self) -> dict[str, Any]:
        return {"profile": self.profile, "udev_reload": self.udev_reload,
                "hotplug_lock": self.hotplug_lock,
                "revert": None if self.revert is None else list(self.revert),
                "nonmovable": self.nonmovable, "faults": self.faults, "crash": self.crash,
                "max_memory": self.max_memory, "udev_rule": self.udev_rule,
                "flavour": self.flavour}


OTHER_KNOBS = ("revert", "max_memory", "udev_rule", "flavour")


def _forced(drawn: T, forced: T | None) -> T:
    return drawn if forced is None else forced


def _size(n: int) -> str:
    """A size as the scenario format writes it (exact: M, G or T)."""
    for unit, s in ((TB, "T"), (GB, "G"), (MB, "M")):
        if n % unit == 0:
            return f"{n // unit}{s}"
    return str(n)


# -- the partition ---------------------------------------------------------------------------------
def gen_machine(d: Draw, knobs: Knobs = Knobs()) -> dict[str, Any]:
    """[machine]: memory 2GB..64TB, LMB size, RMA, NUMA nodes, holes (`unassigned`)."""
    sizes = [m for m in MEMORY_SIZES if m <= knobs.max_memory] or [MEMORY_SIZES[0]]
    memory = d.choice(sizes)
    grow = d.choice((1, 2, 2, 4))                       # DLPAR headroom: max_memory/memory
    # an LMB size that leaves the RMA room (a quarter of memory at most, below): with a
    # 1GB LMB on 2GB the RMA is half the partition, fadump cannot reserve its area and
    # registration fails with ENODEV -- right, but not a finding
    lmbs = [s for s in LMB_SIZES if memory % s == 0 and memory * grow // s <= MAX_LMBS
            and any(r % s == 0 and 4 * r <= memory for r in RMA_SIZES)]
    lmb = d.choice(lmbs) if lmbs else max(LMB_SIZES)
    if memory * grow // lmb > MAX_LMBS:
        grow = 1
    # the RMA takes at most a quarter of the partition: fadump's boot memory area and
    # its reserved area (each RMA-sized or more) must both fit
    rma = d.choice(tuple(r for r in RMA_SIZES
                         if r % lmb == 0 and 4 * r <= memory) or (max(lmb, 512 * MB),))
    boot_lmbs = memory // lmb
    # a node holds at least 1GB and four boot-memory areas (else the model cannot boot)
    bms = calculate_reserve_size(parse_cmdline("fadump=on", memory), memory, rma, [])
    nodes = d.choice(tuple(n for n in (1, 1, 2, 4) if boot_lmbs % n == 0
                           and memory // n >= max(GB, 4 * bms)) or (1,))
    m: dict[str, Any] = {"memory": _size(memory), "max_memory": _size(memory * grow),
                         "lmb_size": _size(lmb), "rma_size": _size(rma)}
    if d.boolean(0.2) and memory <= 64 * GB:
        m["page_size"] = "4K"
    cpus = d.choice(CPUS) if d.boolean(0.3) else 0
    if cpus:
        m["cpus"] = cpus
    if nodes > 1:
        m["nodes"] = nodes
    holes = d.integer(0, 2) if d.boolean(0.2) else 0
    cands = interesting_lmbs(memory, lmb, rma, "fadump=on")
    out: list[int] = []
    for _ in range(holes):
        n = d.choice(cands) if d.boolean(0.7) else d.integer(rma // lmb, boot_lmbs - 1)
        if rma // lmb <= n < boot_lmbs and n not in out:
            out.append(n)
    if out:
        m["unassigned"] = sorted(out)
    return m


def interesting_lmbs(memory: int, lmb: int, rma: int, cmdline: str) -> list[int]:
    """LMBs where fadump's boundaries lie: above the RMA, through the boot memory area
    and the fadump area right above it (sized as the 2018 kernel sizes it), and the
    last boot LMB. A DLPAR by index draws from these more often than from anywhere."""
    p = parse_cmdline(cmdline, memory)
    bms = align_up(calculate_reserve_size(p, memory, rma, []), PAGEBLOCK)
    hi = min(memory // lmb - 1, (2 * bms + 64 * MB) // lmb + 1)
    lo = rma // lmb
    return sorted(set(range(lo, hi + 1)) | {memory // lmb - 1}) if hi >= lo else [memory // lmb - 1]


# -- the kernel ----------------------------------------------------------------------------------------
def capture_fits(crashkernel: int, machine: dict[str, Any] | None) -> bool:
    """Whether a capture kernel booting in `crashkernel` bytes of boot memory can hold the
    memmap of every page the partition may have (64 bytes per page of max_memory) beside
    its image, RTAS and PACAs (768MB, generous). A smaller one is a misconfiguration the
    model does not simulate: the real kernel prints "sparse_init_nid: node[N] memory map
    backing failed. Some memory will not be available." and boots on; the model's
    capture kernel fails with OutOfMemory (an actor-failure). The generator leaves it out."""
    if machine is None:
        return True
    ps = parse_size(machine.get("page_size", "64K"))
    memmap = parse_size(machine["max_memory"]) // ps * 64
    return crashkernel >= memmap + 768 * MB


def gen_kernel(d: Draw, knobs: Knobs = Knobs(),
               machine: dict[str, Any] | None = None) -> dict[str, Any]:
    """[kernel]: fadump=on|nonmovable, crashkernel= (one the capture kernel fits in,
    `capture_fits`, when the partition is known), revert, hotplug_lock."""
    nonmovable = _forced(d.boolean(0.25), knobs.nonmovable)
    if knobs.profile != "rfc-v6":
        nonmovable = False                         # fadump=nonmovable is the RFC's alone
    words = ["fadump=nonmovable" if nonmovable else "fadump=on"]
    if d.boolean(0.3):
        ck = d.choice(CRASHKERNEL)
        if capture_fits(parse_size(ck), machine):
            words.append("crashkernel=" + ck)
    k: dict[str, Any] = {"cmdline": " ".join(words)}
    revertable = REVERTABLE.get(knobs.profile, ())
    drawn_revert = tuple(p for p in revertable if d.boolean(0.15))
    revert = _forced(drawn_revert, knobs.revert) if revertable else ()
    if revert:
        k["revert"] = list(revert)
    if _forced(d.boolean(0.5), knobs.hotplug_lock):
        k["hotplug_lock"] = True
    return k


def gen_workload(d: Draw, memory: int) -> dict[str, Any]:
    """[workload]: kernel, user and page-cache memory in use, at most 3/8 of the partition."""
    w: dict[str, Any] = {}
    for klass in ("kernel", "user", "cache"):
        frac = d.choice((0, 0, 64, 32, 16, 8))
        if frac:
            w[klass] = _size(max(MB, memory // frac // MB * MB))
    return w


# -- the scripts -----------------------------------------------------------------------------------------
@dataclass
class _Ctx:
    memory: int
    max_memory: int
    lmb: int
    rma: int
    cmdline: str
    udev: bool
    knobs: Knobs
    movable: bool = True     # the fadump area is ZONE_MOVABLE (user pages may live there)
    notes: list[str] = field(default_factory=list)


def _drmgr(d: Draw, c: _Ctx) -> str:
    kind = d.choice(("remove-index", "remove-index", "remove-count", "add-count"))
    if kind == "add-count":
        return f"drmgr -c mem -a -q {d.integer(1, 4)}"
    if kind == "remove-count":
        return f"drmgr -c mem -r -q {d.integer(1, 4)}"
    cands = interesting_lmbs(c.memory, c.lmb, c.rma, c.cmdline)
    if d.boolean(0.75):
        n = d.choice(cands)
    elif c.max_memory > c.memory and d.boolean(0.3):
        n = d.integer(c.memory // c.lmb, c.max_memory // c.lmb - 1)   # a hot-added LMB
    else:
        n = d.integer(0, c.memory // c.lmb - 1)
    return f"drmgr -c mem -r -s {0x80000000 + n:#x}"


def _copy_error(d: Draw) -> str:
    """`inject copy-error SIDE [SECTION] [at chunk N]` (docs/firmware.md): mostly the
    first chunk, sometimes a later one or one beyond the section (never fires)."""
    words = ["inject copy-error", d.choice(COPY_SIDES)]
    section = d.choice(("",) + COPY_SECTIONS)
    if section:
        words.append(section)
    chunk = d.choice((0, 0, 1, 3, 1 << 20))
    if chunk:
        words.append(f"at chunk {chunk}")
    return " ".join(words)


def _after(d: Draw, names: Sequence[str], p: float = 0.5) -> list[str]:
    return [n for n in names if d.boolean(p)]


def gen_scripts(d: Draw, c: _Ctx) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """The scripts and the swarm's oracles ([expect]) for one partition.

    kdump-start registers at once; optionally the service is stopped or restarted;
    a hotplug storm of 0..3 drmgr scripts; firmware faults (busy codes, errors, copy
    errors) placed after a random subset of scripts, so at any RTAS call; workload
    changes; a crash after a random subset of scripts behind 0..3 harmless commands;
    the capture kernel saving the dump at a random dump level.
    """
    reg = "echo 1 > /sys/kernel/fadump_registered"
    unreg = "echo 0 > /sys/kernel/fadump_registered"
    scripts: list[dict[str, Any]] = [{"name": "kdump-start", "actor": "kernel", "run": [reg]}]
    names = ["kdump-start"]
    if d.boolean(0.3):
        run = d.choice(([unreg], [unreg, reg], [reg]))
        scripts.append({"name": "kdump-restart", "actor": "kernel", "after": ["kdump-start"],
                        "run": run})
        names.append("kdump-restart")
    dlpar: list[str] = []
    for i in range(d.integer(0, 3)):
        after = ["kdump-start"] if d.boolean(0.5) else []
        run = [_drmgr(d, c) for _ in range(d.integer(1, 4))]
        scripts.append({"name": f"dlpar-{i + 1}", "actor": "hotplug", "after": after, "run": run})
        dlpar.append(f"dlpar-{i + 1}")
    names += dlpar
    rtas_error = False
    if c.knobs.faults and d.boolean(0.35):
        run = []
        for _ in range(d.integer(1, 2)):
            what = d.choice(("busy", "busy", "error", "copy"))
            if what == "busy":
                run.append(f"inject rtas {d.choice(BUSY_CODES)} {d.integer(1, 3)}")
            elif what == "error":
                run.append(f"inject rtas {d.choice(ERROR_CODES)} 1")
                rtas_error = True
            else:
                run.append(_copy_error(d))
        scripts.append({"name": "faults", "actor": "firmware", "after": _after(d, names, 0.4),
                        "run": run})
        names.append("faults")
    if d.boolean(0.5):
        run = []
        for _ in range(d.integer(1, 3)):
            verb = d.choice(("alloc", "alloc", "free"))
            klass = d.choice(("kernel", "user", "user", "cache"))
            run.append(f"sim {verb} {klass} {_size(d.choice((64, 256, 512, 1024)) * MB)}")
        scripts.append({"name": "app", "actor": "kernel", "after": _after(d, names, 0.4),
                        "run": run})
        names.append("app")
    crash = _forced(d.boolean(0.85), c.knobs.crash)
    crash_after: list[str] = []
    if crash:
        crash_after = _after(d, names, 0.5)
        # lsmem walks every LMB: only on partitions with few of them
        harmless = ("cat /sys/kernel/fadump_registered", "free -m",
                    "cat /sys/kernel/fadump_enabled",
                    "cat /sys/kernel/debug/powerpc/fadump_region", "dmesg") + \
            (("lsmem",) if c.max_memory // c.lmb <= 4096 else ())
        pad = [d.choice(harmless)
               for _ in range(d.integer(0, 3))]
        scripts.append({"name": "crash", "actor": "kernel", "after": crash_after,
                        "run": pad + ["echo c > /proc/sysrq-trigger"]})
        tool = d.choice(DUMP_TOOLS)
        save = [f"{tool} /proc/vmcore /var/crash/vmcore"]
        if d.boolean(0.3):
            save += ["echo 1 > /sys/kernel/fadump_release_mem", reg]
        scripts.append({"name": "save", "actor": "capture", "run": save})
    expect: dict[str, Any] = {}
    # Oracle 1: the kdump service's registration succeeds, unless the search injected
    # an RTAS error, the udev rule may register first (EEXIST), or a crash may come first.
    before_dlpar_ok = not c.udev or all(
        "kdump-start" in s.get("after", []) for s in scripts if s["name"] in dlpar)
    if not rtas_error and before_dlpar_ok and (not crash or "kdump-start" in crash_after):
        expect["exit_codes"] = {"kdump-start": [0]}
    # Oracle 2: when the fadump area is not movable no user page can live in the
    # destination area, so a dump loses no user page (ZONE_MOVABLE trades them away).
    if crash and not c.movable:
        expect["user_pages_lost"] = 0
    return scripts, expect


def gen_hotplug(d: Draw, knobs: Knobs = Knobs()) -> dict[str, Any]:
    """[hotplug] when a rule is on: the rule (the era's, the profile's default weighted
    up; `udev_rule` knob: "any" or a name) and, sometimes, kdumpctl start's timing and
    a stale initrd (a rebuild on the first start). Every draw is made whatever the knobs."""
    era = era_rules(knobs.profile)
    drawn = d.choice(era[:1] + era)
    anyrule = d.choice(all_rules())
    rule = anyrule if knobs.udev_rule == "any" else _forced(drawn, knobs.udev_rule)
    h: dict[str, Any] = {"udev_rule": rule}
    start_ms = d.choice(KDUMPCTL_START_MS) if d.boolean(0.3) else None
    if start_ms is not None:
        h["kdumpctl_start_ms"] = start_ms
    if d.boolean(0.15):
        h["initrd_stale"] = True
    return h


def gen_scenario(d: Draw, knobs: Knobs = Knobs(), name: str = "generated") -> dict[str, Any]:
    """A whole scenario (the dict a scenario file holds), valid by construction."""
    from fadumpsim.actors.sizes import parse_size
    machine = gen_machine(d, knobs)
    kernel = gen_kernel(d, knobs, machine)
    memory = parse_size(machine["memory"])
    workload = gen_workload(d, memory)
    udev = _forced(d.boolean(0.5), knobs.udev_reload)
    hotplug = gen_hotplug(d, knobs)
    if not udev or hotplug["udev_rule"] == "none":
        udev, hotplug = False, {}
    flavour = _forced(d.choice((DEFAULT_FLAVOUR,) * 3 + FLAVOURS), knobs.flavour)
    # upstream's CMA area holds user pages too: only classic and nonmovable areas do not
    movable = (knobs.profile != "classic" and "fadump=nonmovable" not in kernel["cmdline"]
               and "zone-movable" not in kernel.get("revert", ()))
    c = _Ctx(memory, parse_size(machine["max_memory"]), parse_size(machine["lmb_size"]),
             parse_size(machine["rma_size"]), kernel["cmdline"], udev, knobs, movable)
    scripts, expect = gen_scripts(d, c)
    data: dict[str, Any] = {"name": name, "profile": knobs.profile, "machine": machine,
                            "kernel": kernel}
    if workload:
        data["workload"] = workload
    if hotplug:
        data["hotplug"] = hotplug
    if flavour != DEFAULT_FLAVOUR:
        data["firmware"] = {"flavour": flavour}
    data["script"] = scripts
    if expect:
        data["expect"] = expect
    return data


def scenario_for_seed(seed: int, knobs: Knobs = Knobs()) -> dict[str, Any]:
    """The swarm's scenario for `seed`: the same dict in any process (random.Random)."""
    return gen_scenario(RandomDraw(random.Random(f"fadumpsim-swarm:{seed}")), knobs,
                        name=f"swarm-{knobs.profile}-{seed}")


# -- hypothesis strategies (public API; hypothesis imported lazily) -------------------------------------
def _composite(fn: Callable[..., T]) -> Any:
    from hypothesis import strategies as st
    return st.composite(fn)


def machines(knobs: Knobs = Knobs()) -> Any:
    """Strategy for a `[machine]` table."""
    return _composite(lambda draw: gen_machine(HypothesisDraw(draw), knobs))()


def cmdlines(profile: str = "rfc-v6") -> Any:
    """Strategy for `[kernel] cmdline` strings."""
    kn = Knobs(profile=profile)
    return _composite(lambda draw: gen_kernel(HypothesisDraw(draw), kn)["cmdline"])()


def kernels(knobs: Knobs = Knobs()) -> Any:
    """Strategy for a `[kernel]` table (cmdline, revert, hotplug_lock per the knobs)."""
    return _composite(lambda draw: gen_kernel(HypothesisDraw(draw), knobs))()


def workloads(memory: int | str = "8G") -> Any:
    """Strategy for a `[workload]` table on a partition of `memory`."""
    from fadumpsim.actors.sizes import parse_size
    mem = parse_size(memory) if isinstance(memory, str) else memory
    return _composite(lambda draw: gen_workload(HypothesisDraw(draw), mem))()


def scripts(memory: int | str = "8G", knobs: Knobs = Knobs(), udev_reload: bool = False) -> Any:
    """Strategy for `[[script]]` lists (with their oracles dropped) on an 8GB-like partition."""
    from fadumpsim.actors.sizes import parse_size
    mem = parse_size(memory) if isinstance(memory, str) else memory

    def make(draw: Callable[[Any], Any]) -> list[dict[str, Any]]:
        c = _Ctx(mem, 2 * mem, 256 * MB, 512 * MB, "fadump=on", udev_reload, knobs,
                 knobs.profile == "rfc-v6")
        return gen_scripts(HypothesisDraw(draw), c)[0]
    return _composite(make)()


def scenarios(profile: str = "rfc-v6", knobs: Knobs | None = None, **overrides: Any) -> Any:
    """Strategy for whole scenario dicts (what the swarm runs), e.g.

    ``@given(scenarios(profile="rfc-v6", hotplug_lock=True))``; keyword overrides are
    `Knobs` fields. Build a `fadumpsim.scenario.Scenario` with `Scenario(data)`.
    """
    kn = replace(knobs or Knobs(profile=profile), profile=profile, **overrides)
    return _composite(lambda draw: gen_scenario(HypothesisDraw(draw), kn))()
