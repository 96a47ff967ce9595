"""The contract's invariants, checked by an observer after every delivery.

The checker reads actor state and the delivered event; it never sends events and
never changes state (design note 4), so it cannot perturb the run or the log (the one
exception is the busy-loop detector of `liveness`, which may end a run early, as the
event cap does; see fadumpsim/liveness.py).

Every verdict is a function of the run's Mazurkiewicz class (deliveries to different
actors commute), so exhaustive search, which runs one linearization per class, sees
every reachable violation:

* `dump-armed` is judged in kernel order (docs/explore.md);
* `kernel-data-captured` and `liveness` on the end state, which the class fixes;
* `reserved-area-intact` reads firmware's state at firmware's own deliveries, against
  the area of the kernel that registered (fixed while the registration stands);
* `accounting`: the page count of a kernel at that kernel's deliveries; LMB ownership
  across firmware, kernel and hotplug manager as "some run of this class passes
  through a disagreeing state" (fadumpsim/ownership.py), incrementally per event.

Each invariant reports its first violation with the seq of the event that broke it.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from fadumpsim.actors.commands import CommandError, parse_command
from fadumpsim.events.envelope import Event
from fadumpsim.liveness import BUSY_CAP, Liveness
from fadumpsim.ownership import DRC_BASE, Ownership

INVARIANTS = ("dump-armed", "kernel-data-captured", "reserved-area-intact", "accounting",
              "liveness")
REGISTER = 1


@dataclass
class Violation:
    invariant: str
    message: str
    seq: int

    def to_dict(self) -> dict[str, Any]:
        return {"invariant": self.invariant, "message": self.message, "seq": self.seq}


def _is_unregister(command: str) -> bool:
    """`echo 0 > .../fadump_registered` (either path), as the kernel parses it."""
    try:
        cmd = parse_command("kernel", command)
    except CommandError:  # not a kernel command: not ours to judge
        return False
    return cmd["prog"] == "write" and cmd["file"] == "registered" and cmd["value"] == "0"


@dataclass
class Checker:
    """Observer: call it with (scheduler, event) after each delivery."""
    violations: list[Violation] = field(default_factory=list)
    #: successful script writes to fadump_registered: (seq of the kernel delivery that
    #: completed the write, value). Judged in kernel order, not by when the script heard
    #: back, so the verdict does not depend on orderings that commute (design note 5).
    writes: list[tuple[int, str]] = field(default_factory=list)
    crash_seq: int = 0          # the kernel delivery that crashed it (sysrq)
    #: script `echo 0` writes the kernel has begun and not answered: (script, index) ->
    #: seq of the kernel delivery that began it. A crash inside one is not a broken
    #: promise: the script was unregistering (its write may already have reached firmware)
    zero_in_flight: dict[tuple[str, int], int] = field(default_factory=dict)
    busy_cap: int = BUSY_CAP
    _seen: set[str] = field(default_factory=set)
    #: the registered areas firmware must keep assigned, from the registering kernel
    _areas: list[tuple[int, int]] | None = None

    def __post_init__(self) -> None:
        self.ownership = Ownership()
        self.liveness = Liveness(self.busy_cap)

    def report(self, inv: str, msg: str, seq: int) -> None:
        if inv not in self._seen:
            self._seen.add(inv)
            self.violations.append(Violation(inv, msg, seq))

    def __call__(self, sched: Any, ev: Event) -> None:
        actors = sched.actors
        t = ev.type
        if t == "cmd.result":
            self._script_write(actors.get(ev.dst), ev)
        elif t == "cmd.run" and ev.dst == "kernel" and _is_unregister(ev.payload["command"]):
            self.zero_in_flight[(ev.src, ev.payload["index"])] = ev.seq
        elif t == "rtas.os_term" and ev.src == "kernel" and not self.crash_seq:
            self.crash_seq = ev.cause
        msg = self.ownership.observe(actors, ev)
        if msg:
            self.report("accounting", msg, ev.seq)
        if ev.dst == "firmware":
            self._reserved_area(actors, ev)
        elif ev.dst in ("kernel", "capture"):
            self._pages(actors[ev.dst], ev)
        msg = self.liveness.observe(sched, ev)
        if msg:
            self.report("liveness", msg, ev.seq)

    # -- dump-armed bookkeeping (judged at the end, see finish) -----------------------------------
    def _script_write(self, script: Any, ev: Event) -> None:
        if script is None or not hasattr(script, "results"):
            return
        r = script.results[ev.payload["index"]]
        self.zero_in_flight.pop((ev.dst, ev.payload["index"]), None)
        if ev.payload["exit"] != 0 or script.actor != "kernel":
            return
        cmd = parse_command(script.actor, r["command"])
        if cmd["prog"] == "write" and cmd["file"] == "registered" and cmd["value"] in ("0", "1"):
            self.writes.append((ev.cause, cmd["value"]))

    def armed_at_crash(self) -> int:
        """Seq of the script write that armed fadump before the crash, 0 if not armed."""
        writes = self.writes + [(seq, "0") for seq in self.zero_in_flight.values()]
        before = sorted(w for w in writes if w[0] < self.crash_seq)
        return before[-1][0] if before and before[-1][1] == "1" else 0

    def _reserved_area(self, actors: dict[str, Any], ev: Event) -> None:
        """At firmware's deliveries: a registration stands and an LMB of its area is gone."""
        fwa = actors["firmware"]
        if fwa.registered is None:
            self._areas = None
            return
        lmb = fwa.machine.lmb_size
        at_registration = self._areas is None
        if at_registration:
            # the registration just succeeded: the registering kernel's areas, whole
            k = actors.get(ev.src)
            fw = getattr(k, "fw", None)
            if fw is None:  # pragma: no cover - only kernels register
                return
            self._areas = [(0, fw.boot_memory_size), fw.reserved_area()]
            lo_hi = [(s // lmb, (e - 1) // lmb + 1) for s, e in self._areas if e > s]
        else:
            idx = ev.payload.get("drc_index")
            if not isinstance(idx, int):
                return
            n = idx - DRC_BASE
            lo_hi = [(n, n + 1)]
        for lo, hi in lo_hi:
            for s, e in self._areas:
                if e <= s or hi <= s // lmb or lo >= (e - 1) // lmb + 1:
                    continue
                a, b = max(lo, s // lmb), min(hi, (e - 1) // lmb + 1)
                n = fwa.assigned.find(0, a, b)  # C speed, any size
                if n >= 0:
                    # at registration: the LMB was already gone and firmware accepted the
                    # area with a hole (QEMU checks no address at REGISTER)
                    what = ("was not in the partition when firmware accepted a registration"
                            if at_registration else "left the partition while firmware holds "
                            "a registration")
                    self.report("reserved-area-intact",
                                f"LMB {n} (drc index {0x80000000 + n:#x}) {what} covering "
                                f"[{s:#x}-{e - 1:#x}]", ev.seq)
                    return

    def _pages(self, k: Any, ev: Event) -> None:
        """At a live kernel's deliveries: its pages add up to its present LMBs."""
        if not k.booted or k.crashed:
            return
        present = self.ownership.present_bytes(k.name, k.machine.lmb_size)
        counted = sum(k.mm.by_class().values())
        if counted != present:
            self.report("accounting", f"{k.name}: pages account for {counted} bytes but "
                        f"{present} bytes of LMBs are present", ev.seq)

    # -- end of run --------------------------------------------------------------------------------
    def finish(self, verdict: dict[str, Any], dump_seq: int, sched: Any = None) -> None:
        """Judge what can only be judged at the end; `dump_seq` is the delivery that saved
        the dump (0 when it was only available); `sched` the ended run (for liveness)."""
        if sched is not None:
            capped = sched.seq >= sched.max_events and bool(sched.enabled())
            msg = self.liveness.stuck(sched, capped and not sched.halted)
            if msg:
                self.report("liveness", msg, sched.seq)
        armed = self.armed_at_crash() if self.crash_seq else 0
        if armed and verdict["status"] not in ("saved", "available"):
            self.report("dump-armed", f"a script registered fadump (event #{armed}) and "
                        f"never unregistered it, but the crash at event #{self.crash_seq} gave "
                        f"dump status {verdict['status']!r}", self.crash_seq)
        if verdict["status"] in ("saved", "available") and verdict["kernel_pages_lost"]:
            self.report("kernel-data-captured", f"the {verdict['status']} dump lost "
                        f"{verdict['kernel_pages_lost']} kernel pages", dump_seq or self.crash_seq)
