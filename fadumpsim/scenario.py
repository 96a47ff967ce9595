"""Scenarios: load and validate TOML files (or build them in Python).

A scenario is kept as the plain dict the TOML file gives (it is recorded verbatim in
the log header, so replay needs nothing else); `Scenario` wraps it with validated,
typed views. Every mistake is a `ScenarioError` naming the file, the key or script,
and what was expected: the CLI prints it on one line and exits 2.
"""
from __future__ import annotations

import copy
import difflib
import os
import re
import stat
import tomllib
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from fadumpsim.actors.commands import ACTORS, CommandError, parse_command
from fadumpsim.actors.flavours import DEFAULT_FLAVOUR, FLAVOURS
from fadumpsim.actors.machine import PROFILES, REVERTABLE, KernelConfig, Machine
from fadumpsim.actors.sizes import SizeError, parse_size
from fadumpsim.actors.udev import UdevConfig, resolve as resolve_udev_rule

TOP_KEYS = ("name", "description", "profile", "machine", "firmware", "kernel", "workload",
            "hotplug", "script", "expect", "schedule")
FIRMWARE_KEYS = ("flavour",)
MACHINE_KEYS = ("memory", "max_memory", "lmb_size", "page_size", "rma_size", "cpus", "nodes",
                "unassigned")
KERNEL_KEYS = ("cmdline", "revert", "hotplug_lock")
WORKLOAD_KEYS = ("kernel", "user", "cache")
HOTPLUG_KEYS = ("udev_reload", "udev_rule", "initrd_stale", "kdumpctl_start_ms")
SCRIPT_KEYS = ("name", "actor", "after", "run")
EXPECT_KEYS = ("dump", "registered", "kernel_pages_lost", "user_pages_lost", "log_contains",
               "log_lacks", "exit_codes", "memtotal_mb", "violations")
SCHEDULE_KEYS = ("constraint",)
CONSTRAINT_KEYS = ("before", "after", "text")
ENDPOINT_KEYS = ("src", "dst", "type", "nth")
DUMP_STATES = ("saved", "available", "none", "invalid", "incomplete", "no-crash")
COMPARISON = re.compile(r"^\s*(==|!=|>=|<=|>|<)?\s*(\d+)\s*$")
RESERVED_NAMES = set(ACTORS) | {"sim", "clock"}


class ScenarioError(ValueError):
    """One line: 'FILE: where: what'."""


@dataclass(frozen=True)
class ScriptSpec:
    name: str
    actor: str
    after: tuple[str, ...]
    run: tuple[str, ...]


@dataclass
class Scenario:
    data: dict[str, Any]
    source: str = "<scenario>"
    machine: Machine = field(init=False)
    flavour: str = field(init=False)
    kernel: KernelConfig = field(init=False)
    udev: UdevConfig = field(init=False)
    scripts: list[ScriptSpec] = field(init=False)

    def __post_init__(self) -> None:
        validate(self)

    @property
    def name(self) -> str:
        return self.data["name"]

    @property
    def expect(self) -> dict[str, Any]:
        return self.data.get("expect", {})

    @property
    def schedule(self) -> list[Any]:
        """The [schedule] constraints (replay.constraints.Constraint), in file order."""
        from fadumpsim.replay.constraints import Constraint
        return [Constraint.from_data(c)
                for c in self.data.get("schedule", {}).get("constraint", [])]

    @classmethod
    def build(cls, name: str, **sections: Any) -> "Scenario":
        """Python API: Scenario.build("x", machine={...}, script=[{...}], expect={...})."""
        data = {"name": name, **sections}
        return cls(data, source=f"<scenario {name}>")


def _err(src: str, where: str, what: str) -> ScenarioError:
    return ScenarioError(f"{src}: {where}: {what}")


def _check_keys(src: str, table: Any, allowed: tuple[str, ...], where: str) -> dict[str, Any]:
    if not isinstance(table, dict):
        raise _err(src, where, "must be a table")
    for k in table:
        if k not in allowed:
            raise _err(src, where, f"unknown key {k!r} (allowed: {', '.join(allowed)})")
    return table


def _size(src: str, where: str, v: Any) -> int:
    try:
        if isinstance(v, bool) or not isinstance(v, (str, int)):
            raise SizeError(f"not a size: {v!r}")
        return parse_size(v)
    except SizeError as e:
        raise _err(src, where, str(e)) from None


def validate(sc: Scenario) -> None:
    src, d = sc.source, sc.data
    _check_keys(src, d, TOP_KEYS, "top level")
    if not isinstance(d.get("name"), str) or not d["name"].strip():
        raise _err(src, "name", "required: a non-empty string")
    if "description" in d and not isinstance(d["description"], str):
        raise _err(src, "description", "must be a string")
    profile = d.get("profile", "rfc-v6")
    if profile not in PROFILES:
        raise _err(src, "profile", f"unknown profile {profile!r} (expected {', '.join(PROFILES)})")

    mt = _check_keys(src, d.get("machine", {}), MACHINE_KEYS, "[machine]")
    for k in ("memory", "max_memory", "lmb_size", "page_size", "rma_size"):
        if k in mt:
            _size(src, f"[machine] {k}", mt[k])
    for k in ("cpus", "nodes"):
        if k in mt and (isinstance(mt[k], bool) or not isinstance(mt[k], int)):
            raise _err(src, f"[machine] {k}", f"must be an integer, got {mt[k]!r}")
    if "unassigned" in mt:
        if not isinstance(mt["unassigned"], list) or not all(
                isinstance(x, int) and not isinstance(x, bool) for x in mt["unassigned"]):
            raise _err(src, "[machine] unassigned", "must be a list of LMB numbers")
    machine = Machine.from_dict(mt)
    for key, problem in machine.validate():
        raise _err(src, f"[machine] {key}", problem)

    ft = _check_keys(src, d.get("firmware", {}), FIRMWARE_KEYS, "[firmware]")
    flavour = ft.get("flavour", DEFAULT_FLAVOUR)
    if flavour not in FLAVOURS:
        raise _err(src, "[firmware] flavour",
                   f"unknown flavour {flavour!r} (expected {' or '.join(FLAVOURS)})")

    kt = _check_keys(src, d.get("kernel", {}), KERNEL_KEYS, "[kernel]")
    cmdline = kt.get("cmdline", "fadump=on")
    if not isinstance(cmdline, str):
        raise _err(src, "[kernel] cmdline", "must be a string")
    # the command line is the kernel's to judge: an unknown parameter goes to init, a
    # malformed crashkernel= is a kernel warning and no crashkernel (actors/kernel/sizing.py)
    revert = kt.get("revert", [])
    if revert and profile == "classic":
        raise _err(src, "[kernel] revert", "the classic profile has no RFC patches to revert")
    allowed = REVERTABLE[profile]
    if not isinstance(revert, list) or any(r not in allowed for r in revert):
        raise _err(src, "[kernel] revert", f"profile {profile} can revert {', '.join(allowed)}; "
                   f"got {revert!r}")
    hl = kt.get("hotplug_lock", False)
    if not isinstance(hl, bool):
        raise _err(src, "[kernel] hotplug_lock", "must be true or false")

    wt = _check_keys(src, d.get("workload", {}), WORKLOAD_KEYS, "[workload]")
    workload = {k: _size(src, f"[workload] {k}", v) for k, v in wt.items()}
    ht = _check_keys(src, d.get("hotplug", {}), HOTPLUG_KEYS, "[hotplug]")
    sc.udev = _udev(src, ht, profile)

    sc.machine = machine
    sc.flavour = flavour
    sc.kernel = KernelConfig(profile=profile, cmdline=cmdline, revert=tuple(revert),
                             hotplug_lock=hl, udev_reload=sc.udev.rule != "none",
                             workload=workload)
    sc.scripts = _scripts(src, d.get("script", []))
    _expect(src, d.get("expect", {}), {s.name for s in sc.scripts})
    _schedule(src, d.get("schedule", {}), {s.name for s in sc.scripts})


def _schedule(src: str, t: Any, scripts: set[str]) -> None:
    """[schedule]: [[schedule.constraint]] tables of before/after deliveries, each named
    {src, dst, type, nth}: "the nth `type` message src sent to dst"."""
    from fadumpsim.events import types
    _check_keys(src, t, SCHEDULE_KEYS, "[schedule]")
    cs = t.get("constraint", [])
    if not isinstance(cs, list):
        raise _err(src, "[schedule] constraint", "must be an array of tables "
                   "([[schedule.constraint]])")
    names = scripts | set(ACTORS) | {"sim"}
    for i, c in enumerate(cs):
        where = f"[[schedule.constraint]] #{i + 1}"
        _check_keys(src, c, CONSTRAINT_KEYS, where)
        if "text" in c and not isinstance(c["text"], str):
            raise _err(src, f"{where} text", "must be a string")
        for side in ("before", "after"):
            if side not in c:
                raise _err(src, where, f"required: {side} = {{ src, dst, type, nth }}")
            e = _check_keys(src, c[side], ENDPOINT_KEYS, f"{where} {side}")
            for k in ("src", "dst", "type"):
                if not isinstance(e.get(k), str):
                    raise _err(src, f"{where} {side}", f"required: {k} (a string)")
            for k in ("src", "dst"):
                if e[k] not in names:
                    raise _err(src, f"{where} {side} {k}", f"no actor or script named {e[k]!r}")
            if not types.known(e["type"]):
                raise _err(src, f"{where} {side} type", f"unknown event type {e['type']!r}")
            nth = e.get("nth", 1)
            if isinstance(nth, bool) or not isinstance(nth, int) or nth < 1:
                raise _err(src, f"{where} {side} nth", f"must be an integer >= 1, got {nth!r}")
        key = [tuple(c[s].get(k, 1) for k in ENDPOINT_KEYS) for s in ("before", "after")]
        if key[0] == key[1]:
            raise _err(src, where, "before and after name the same delivery")


def _udev(src: str, ht: dict[str, Any], profile: str) -> UdevConfig:
    """[hotplug]: which udev rule runs (actors/udev.py) and kdumpctl start's knobs."""
    for k in ("udev_reload", "initrd_stale"):
        if k in ht and not isinstance(ht[k], bool):
            raise _err(src, f"[hotplug] {k}", "must be true or false")
    rule = ht.get("udev_rule")
    if rule is not None and not isinstance(rule, str):
        raise _err(src, "[hotplug] udev_rule", "must be a string")
    try:
        name = resolve_udev_rule(profile, ht.get("udev_reload"), rule)
    except ValueError as e:
        raise _err(src, "[hotplug] udev_rule", str(e)) from None
    ms = ht.get("kdumpctl_start_ms")
    if ms is not None and (isinstance(ms, bool) or not isinstance(ms, int) or ms < 0):
        raise _err(src, "[hotplug] kdumpctl_start_ms", f"must be a non-negative integer, got {ms!r}")
    return UdevConfig(rule=name, initrd_stale=ht.get("initrd_stale", False), start_ms=ms)


def _scripts(src: str, raw: Any) -> list[ScriptSpec]:
    if not isinstance(raw, list):
        raise _err(src, "[[script]]", "must be an array of tables ([[script]])")
    out: list[ScriptSpec] = []
    names: set[str] = set()
    for i, t in enumerate(raw):
        where = f"[[script]] #{i + 1}"
        _check_keys(src, t, SCRIPT_KEYS, where)
        name = t.get("name")
        if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z0-9_.-]+", name or ""):
            raise _err(src, f"{where} name", "required: letters, digits, '-', '_' or '.'")
        where = f"script {name!r}"
        if name in names:
            raise _err(src, where, "duplicate script name")
        if name in RESERVED_NAMES:
            raise _err(src, where, f"{name!r} is reserved for an actor")
        names.add(name)
        actor = t.get("actor")
        if actor not in ACTORS:
            raise _err(src, f"{where} actor", f"unknown actor {actor!r} (expected one of {', '.join(ACTORS)})")
        after = t.get("after", [])
        if not isinstance(after, list) or not all(isinstance(a, str) for a in after):
            raise _err(src, f"{where} after", "must be a list of script names")
        run = t.get("run")
        if not isinstance(run, list) or not run or not all(isinstance(c, str) for c in run):
            raise _err(src, f"{where} run", "required: a non-empty list of command strings")
        for c in run:
            try:
                parse_command(actor, c)
            except CommandError as e:
                raise _err(src, f"{where} run", str(e)) from None
        out.append(ScriptSpec(name, actor, tuple(after), tuple(run)))
    byname = {s.name: s for s in out}
    for s in out:
        for a in s.after:
            if a not in byname:
                raise _err(src, f"script {s.name!r} after", f"no script named {a!r}")
            if a == s.name:
                raise _err(src, f"script {s.name!r} after", "a script cannot wait for itself")
    # cycles
    state: dict[str, int] = {}

    def visit(n: str, path: list[str]) -> None:
        if state.get(n) == 1:
            cyc = path[path.index(n):] + [n]
            raise _err(src, f"script {n!r} after", f"cycle: {' -> '.join(cyc)}")
        if state.get(n) == 2:
            return
        state[n] = 1
        for a in byname[n].after:
            visit(a, path + [n])
        state[n] = 2
    for s in out:
        visit(s.name, [])
    return out


def _expect(src: str, e: Any, scripts: set[str]) -> None:
    _check_keys(src, e, EXPECT_KEYS, "[expect]")
    if "dump" in e and e["dump"] not in DUMP_STATES:
        raise _err(src, "[expect] dump", f"must be one of {', '.join(DUMP_STATES)}; got {e['dump']!r}")
    if "registered" in e and not isinstance(e["registered"], bool):
        raise _err(src, "[expect] registered", "must be true or false")
    for k in ("kernel_pages_lost", "user_pages_lost", "memtotal_mb"):
        if k in e:
            v = e[k]
            ok = (isinstance(v, int) and not isinstance(v, bool) and v >= 0) or \
                (isinstance(v, str) and COMPARISON.match(v) and k != "memtotal_mb")
            if k == "memtotal_mb" and isinstance(v, str) and COMPARISON.match(v):
                ok = True
            if not ok:
                raise _err(src, f"[expect] {k}", f"must be an integer or a comparison like '>0', got {v!r}")
    for k in ("log_contains", "log_lacks"):
        if k in e and (not isinstance(e[k], list) or not all(isinstance(x, str) for x in e[k])):
            raise _err(src, f"[expect] {k}", "must be a list of strings")
    if "violations" in e:
        from fadumpsim.invariants import INVARIANTS
        v = e["violations"]
        if not isinstance(v, list) or any(x not in INVARIANTS for x in v):
            raise _err(src, "[expect] violations", f"must be a list of {', '.join(INVARIANTS)}; got {v!r}")
    if "exit_codes" in e:
        ec = e["exit_codes"]
        if not isinstance(ec, dict):
            raise _err(src, "[expect] exit_codes", "must be a table of script = [codes]")
        for name, codes in ec.items():
            if name not in scripts:
                raise _err(src, "[expect] exit_codes", f"no script named {name!r}")
            if not isinstance(codes, list) or not all(isinstance(c, int) and not isinstance(c, bool)
                                                      for c in codes):
                raise _err(src, f"[expect] exit_codes {name}", "must be a list of integers")


def compare(spec: Any, actual: int) -> bool:
    """An expectation value: an integer (equality) or a comparison string ('>0')."""
    if isinstance(spec, int):
        return actual == spec
    m = COMPARISON.match(spec)
    op, n = (m.group(1) or "=="), int(m.group(2))
    return {"==": actual == n, "!=": actual != n, ">": actual > n, "<": actual < n,
            ">=": actual >= n, "<=": actual <= n}[op]


def flavours() -> tuple[str, ...]:
    """The firmware flavours a scenario may name (for `compare` and generators)."""
    return FLAVOURS


def with_flavour(data: dict[str, Any], flavour: str) -> dict[str, Any]:
    """A copy of scenario data that runs on `flavour` (the scenario's own choice replaced)."""
    if flavour not in FLAVOURS:
        raise ScenarioError(f"unknown firmware flavour {flavour!r} (expected {' or '.join(FLAVOURS)})")
    out = copy.deepcopy(data)
    fw = out.get("firmware")
    out["firmware"] = {**(fw if isinstance(fw, dict) else {}), "flavour": flavour}
    return out


# -- loading ---------------------------------------------------------------------------------
DEFAULT_SCENARIO = "rfc-v6-story"


def builtin_names() -> list[str]:
    return sorted(p.name[:-5] for p in resources.files("fadumpsim.scenarios").iterdir()
                  if p.name.endswith(".toml"))


#: the largest scenario file read (the biggest built-in is ~3 KB)
MAX_SCENARIO_BYTES = 1 << 20
#: the first bytes of an event log (events/logfile.py MAGIC)
LOG_MAGIC = b"FADUMPSIMLOG"


def load(spec: str | None) -> Scenario:
    """A path to a .toml file, or the name of a built-in scenario (default when None)."""
    if spec is None:
        spec = DEFAULT_SCENARIO
    p = Path(spec)
    if p.suffix in (".toml", ".fadlog") or p.exists() or "/" in spec:
        return loads(_read_scenario_file(p, spec), str(spec))
    res = resources.files("fadumpsim.scenarios") / f"{spec}.toml"
    if not res.is_file():
        names = builtin_names()
        close = difflib.get_close_matches(spec, names, n=1)
        hint = f"did you mean {close[0]!r}?" if close else f"built-in: {', '.join(names)}"
        raise ScenarioError(f"{spec}: no such scenario file or built-in scenario ({hint})")
    return loads(res.read_text(encoding="utf-8"), f"scenarios/{spec}.toml")


def _read_scenario_file(p: Path, spec: str) -> str:
    """A regular file of at most MAX_SCENARIO_BYTES (never a FIFO or /dev/zero), not a log."""
    try:
        fd = os.open(p, os.O_RDONLY | os.O_NONBLOCK)
    except FileNotFoundError:
        raise ScenarioError(f"{spec}: no such scenario file") from None
    except OSError as e:
        raise ScenarioError(f"{spec}: cannot read: {e.strerror}") from None
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise ScenarioError(f"{spec}: not a regular file")
    with os.fdopen(fd, "rb") as f:
        try:
            raw = f.read(MAX_SCENARIO_BYTES + 1)
        except OSError as e:
            raise ScenarioError(f"{spec}: cannot read: {e.strerror}") from None
    if raw.startswith(LOG_MAGIC):
        raise ScenarioError(f"{spec}: this is an event log, not a scenario; "
                            f"use `fadumpsim replay {spec}` (or show/state)")
    if len(raw) > MAX_SCENARIO_BYTES:
        raise ScenarioError(f"{spec}: larger than the {MAX_SCENARIO_BYTES >> 20} MB limit "
                            "for a scenario file")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise ScenarioError(f"{spec}: not UTF-8 text ({e.reason} at byte {e.start})") from None


def loads(text: str, source: str = "<string>") -> Scenario:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise ScenarioError(f"{source}: invalid TOML: {e}") from None
    except RecursionError:
        raise ScenarioError(f"{source}: invalid TOML: nested too deeply") from None
    except ValueError as e:  # e.g. an integer of more than 4,300 digits
        raise ScenarioError(f"{source}: invalid TOML: {str(e).split(';')[0]}") from None
    return Scenario(data, source=source)
