"""The contract's four invariants, checked by an observer after every delivery.

The checker reads actor state and the delivered event; it never sends events and
never changes state (design note 4), so it cannot perturb the run or the log.
Each invariant reports its first violation with the seq of the event that broke it.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from fadumpsim.actors.commands import parse_command
from fadumpsim.events.envelope import Event

INVARIANTS = ("dump-armed", "kernel-data-captured", "reserved-area-intact", "accounting")


def differences(a: bytes | bytearray, b: bytes | bytearray, chunk: int = 64) -> list[int]:
    """Indices where two equally long LMB tables differ, ascending.

    Halves are compared with memcmp (memoryview equality), so a 262,144-LMB table
    with a handful of LMBs in transit costs microseconds, not a Python loop per LMB
    per event (the swarm's 64TB partitions found that).
    """
    out: list[int] = []
    ma, mb = memoryview(a), memoryview(b)
    stack = [(0, min(len(a), len(b)))]
    while stack:
        lo, hi = stack.pop()
        if ma[lo:hi] == mb[lo:hi]:
            continue
        if hi - lo <= chunk:
            out.extend(i for i in range(lo, hi) if a[i] != b[i])
            continue
        mid = (lo + hi) // 2
        stack.append((mid, hi))
        stack.append((lo, mid))
    return out


@dataclass
class Violation:
    invariant: str
    message: str
    seq: int

    def to_dict(self) -> dict[str, Any]:
        return {"invariant": self.invariant, "message": self.message, "seq": self.seq}


@dataclass
class Checker:
    """Observer: call it with (scheduler, event) after each delivery."""
    violations: list[Violation] = field(default_factory=list)
    #: successful script writes to fadump_registered: (seq of the kernel delivery that
    #: completed the write, value). Judged in kernel order, not by when the script heard
    #: back, so the verdict does not depend on orderings that commute (design note 5).
    writes: list[tuple[int, str]] = field(default_factory=list)
    crash_seq: int = 0          # the kernel delivery that crashed it (sysrq)
    _seen: set[str] = field(default_factory=set)

    def report(self, inv: str, msg: str, seq: int) -> None:
        if inv not in self._seen:
            self._seen.add(inv)
            self.violations.append(Violation(inv, msg, seq))

    def __call__(self, sched: Any, ev: Event) -> None:
        actors = sched.actors
        t = ev.type
        if t == "cmd.result":
            self._script_write(actors.get(ev.dst), ev)
        elif t == "rtas.os_term" and ev.src == "kernel" and not self.crash_seq:
            self.crash_seq = ev.cause
        self._reserved_area(actors, ev)
        self._accounting(actors, ev)

    # -- dump-armed bookkeeping (judged at the end, see finish) -----------------------------------
    def _script_write(self, script: Any, ev: Event) -> None:
        if script is None or not hasattr(script, "results"):
            return
        r = script.results[ev.payload["index"]]
        if ev.payload["exit"] != 0 or script.actor != "kernel":
            return
        cmd = parse_command(script.actor, r["command"])
        if cmd["prog"] == "write" and cmd["file"] == "registered" and cmd["value"] in ("0", "1"):
            self.writes.append((ev.cause, cmd["value"]))

    def armed_at_crash(self) -> int:
        """Seq of the script write that armed fadump before the crash, 0 if not armed."""
        before = sorted(w for w in self.writes if w[0] < self.crash_seq)
        return before[-1][0] if before and before[-1][1] == "1" else 0

    def _reserved_area(self, actors: dict[str, Any], ev: Event) -> None:
        fwa = actors["firmware"]
        if fwa.registered is None:
            return
        k = actors["capture"] if actors["capture"].booted else actors["kernel"]
        fw = k.fw
        lmb = fwa.machine.lmb_size
        areas = [(0, fw.boot_memory_size), fw.reserved_area()]
        for s, e in areas:
            if e <= s:
                continue
            n = fwa.assigned.find(0, s // lmb, (e - 1) // lmb + 1)  # C speed, any size
            if n >= 0:
                self.report("reserved-area-intact",
                            f"LMB {n} (drc index {0x80000000 + n:#x}) left the partition "
                            f"while firmware holds a registration covering "
                            f"[{s:#x}-{e - 1:#x}]", ev.seq)
                return

    def _accounting(self, actors: dict[str, Any], ev: Event) -> None:
        fwa = actors["firmware"]
        hp = actors["hotplug"]
        lmb = fwa.machine.lmb_size
        for name in ("kernel", "capture"):
            k = actors[name]
            if not k.booted or k.crashed:
                continue
            if name == "kernel" and actors["capture"].booted:
                continue
            present = k.drmem.count(1) * lmb
            counted = sum(k.mm.by_class().values())
            if counted != present:
                self.report("accounting", f"{name}: pages account for {counted} bytes but "
                            f"{present} bytes of LMBs are present", ev.seq)
                return
            if fwa.assigned == k.drmem:
                continue
            transit = set(hp.in_transit)
            for i in differences(fwa.assigned, k.drmem):
                fa, ka = fwa.assigned[i], k.drmem[i]
                if ka and not fa:
                    self.report("accounting", f"{name} uses LMB {i}, which firmware does not "
                                "assign to the partition", ev.seq)
                    return
                if fa and not ka and i not in transit:
                    self.report("accounting", f"LMB {i} is assigned by firmware but neither "
                                f"present in {name} nor in a DLPAR operation", ev.seq)
                    return

    # -- end of run --------------------------------------------------------------------------------
    def finish(self, verdict: dict[str, Any], dump_seq: int) -> None:
        """Judge what can only be judged at the end; `dump_seq` is the delivery that saved
        the dump (0 when it was only available)."""
        armed = self.armed_at_crash() if self.crash_seq else 0
        if armed and verdict["status"] not in ("saved", "available"):
            self.report("dump-armed", f"a script registered fadump (event #{armed}) and "
                        f"never unregistered it, but the crash at event #{self.crash_seq} gave "
                        f"dump status {verdict['status']!r}", self.crash_seq)
        if verdict["status"] in ("saved", "available") and verdict["kernel_pages_lost"]:
            self.report("kernel-data-captured", f"the {verdict['status']} dump lost "
                        f"{verdict['kernel_pages_lost']} kernel pages", dump_seq or self.crash_seq)
