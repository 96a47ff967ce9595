"""Who owns each LMB -- firmware, a live kernel, a DLPAR operation -- judged per class.

The `accounting` invariant compares three actors' views of an LMB: firmware's
assignment, the kernel's `drmem` (the production kernel, or the capture kernel once it
has booted) and the hotplug manager's in-transit list. These live in different actors,
so "the global state after event N" depends on how independent deliveries were
interleaved: one Mazurkiewicz class can contain runs that pass through a disagreeing
state and runs that do not. Exhaustive search runs one linearization per class, so a
check of "the state after each event" would be a property of the linearization.

This module judges instead whether *some* run of the class passes through a
disagreeing state (a consistent cut, in the vector-clock sense). Per LMB it keeps, for
each of the three actors, the intervals of the actor's local history during which the
LMB had a given value, each stamped with the vector clock of the delivery that opened
it. Two local states can be in one consistent cut iff neither ends causally before the
other begins; for a conjunction of local predicates, pairwise is enough (Garg and
Waldecker). The verdict is therefore a function of the class (the vector clocks and
each actor's local history are), and it is reached after the event that completes a
violating combination.

Cost: only LMBs an event changes are looked at (`visits` counts them), plus, once per
kernel boot, the LMBs whose boot-time presence differs from firmware's initial table
(found with big-integer operations, not a Python loop). A 64TB partition costs what a
1TB one does per event.
"""
from __future__ import annotations

from typing import Any

DRC_BASE = 0x80000000
KERNELS = ("kernel", "capture")
#: the actors whose local histories are judged: the only vector-clock components read
TRACKED = ("firmware", "hotplug", *KERNELS)

# an interval: [value, start_local, start_vc, end_local or None]
Interval = list


class Clocks:
    """Vector clocks of deliveries: send -> deliver and per-actor order.

    Only the components of `names` are kept; every actor still orders its own
    deliveries (`last`). A component is computed on its own (the max over the same two
    predecessors, +1 at that actor's deliveries), so leaving out the components of
    actors never judged (scripts: a scenario may have thousands) changes no other
    component, and a delivery costs O(len(names)), not O(actors).
    """

    def __init__(self, names: list[str]) -> None:
        self.index = {n: i for i, n in enumerate(names)}
        self.zero = (0,) * len(names)
        self.vcs: list[tuple[int, ...]] = [self.zero]   # by seq; [0]: before the run
        self.last: dict[str, int] = {}

    def deliver(self, seq: int, dst: str, cause: int) -> tuple[int, ...]:
        vcs = self.vcs
        while len(vcs) < seq:                 # seqs are consecutive; be safe anyway
            vcs.append(self.zero)
        a = vcs[cause] if 0 < cause < len(vcs) else self.zero
        p = self.last.get(dst)
        b = vcs[p] if p else self.zero
        vc = [x if x >= y else y for x, y in zip(a, b)]
        d = self.index.get(dst)
        if d is not None:
            vc[d] = b[d] + 1
        t = tuple(vc)
        vcs.append(t)
        self.last[dst] = seq
        return t


def _coexist(xi: int, x: Interval, x_end: int | None, yi: int, y: Interval,
             y_end: int | None) -> bool:
    """Can local state x (of actor xi) and y (of actor yi) be in one consistent cut?"""
    if x_end is not None and y[2][xi] >= x_end:
        return False
    if y_end is not None and x[2][yi] >= y_end:
        return False
    return True


class _KernelView:
    def __init__(self) -> None:
        self.alive = False
        self.started = False
        self.a0 = 0
        self.a0vc: tuple[int, ...] = ()
        self.end: int | None = None       # local index of the crash delivery
        self.base = b""
        self.hist: dict[int, list[Interval]] = {}
        self.present = 0                  # LMBs present (drmem) while alive

    def intervals(self, i: int) -> list[Interval]:
        h = self.hist.get(i)
        if h is not None:
            return h
        return [[self.base[i], self.a0, self.a0vc, None]]

    def eff_end(self, iv: Interval) -> int | None:
        e, c = iv[3], self.end
        if e is None:
            return c
        return e if c is None or e < c else c


class Ownership:
    """Observer part of the Checker: returns a violation message or None per event."""

    def __init__(self) -> None:
        self.clocks: Clocks | None = None
        self.f_init = b""
        self.f_hist: dict[int, list[Interval]] = {}
        self.h_hist: dict[int, list[Interval]] = {}
        self.h_now: set[int] = set()
        self.k: dict[str, _KernelView] = {n: _KernelView() for n in KERNELS}
        self.visits = 0                   # LMBs looked at in Python (tests pin this)

    # -- bookkeeping ----------------------------------------------------------------------
    def _start(self, actors: dict[str, Any]) -> None:
        self.clocks = Clocks(sorted(n for n in actors if n in TRACKED))
        self.f_init = bytes(actors["firmware"].assigned)

    def _fi(self) -> int:
        return self.clocks.index["firmware"]  # type: ignore[union-attr]

    def _f_intervals(self, i: int) -> list[Interval]:
        h = self.f_hist.get(i)
        return h if h is not None else [[self.f_init[i], 0, self.clocks.zero, None]]

    def _h_intervals(self, i: int) -> list[Interval]:
        h = self.h_hist.get(i)
        return h if h is not None else [[0, 0, self.clocks.zero, None]]

    @staticmethod
    def _change(hist: dict[int, list[Interval]], i: int, current: list[Interval], value: int,
                local: int, vc: tuple[int, ...]) -> None:
        if i not in hist:
            hist[i] = [list(iv) for iv in current]
        h = hist[i]
        h[-1][3] = local
        h.append([value, local, vc, None])

    # -- the check --------------------------------------------------------------------------
    def _judge(self, name: str, i: int) -> str | None:
        """Does some consistent cut violate ownership of LMB i for kernel `name`?"""
        kv = self.k[name]
        if not kv.started:
            return None
        self.visits += 1
        idx = self.clocks.index
        ki, fi, hi = idx[name], idx["firmware"], idx["hotplug"]
        ks = kv.intervals(i)
        fs = self._f_intervals(i)
        for k in ks:
            ke = kv.eff_end(k)
            if ke is not None and ke <= k[1]:
                continue                      # empty: the kernel died first
            for f in fs:
                if not _coexist(ki, k, ke, fi, f, f[3]):
                    continue
                if k[0] and not f[0]:
                    return (f"{name} uses LMB {i}, which firmware does not assign to the "
                            "partition")
                if f[0] and not k[0]:
                    for h in self._h_intervals(i):
                        if not h[0] and _coexist(ki, k, ke, hi, h, h[3]) \
                                and _coexist(fi, f, f[3], hi, h, h[3]):
                            return (f"LMB {i} is assigned by firmware but neither present in "
                                    f"{name} nor in a DLPAR operation")
        return None

    def _judge_all(self, i: int) -> str | None:
        for name in KERNELS:
            msg = self._judge(name, i)
            if msg:
                return msg
        return None

    def observe(self, actors: dict[str, Any], ev: Any) -> str | None:
        if self.clocks is None:
            self._start(actors)
        vc = self.clocks.deliver(ev.seq, ev.dst, ev.cause)
        dst = ev.dst
        d = self.clocks.index.get(dst)
        local = vc[d] if d is not None else 0   # read only for the TRACKED actors
        if dst == "firmware":
            idx = ev.payload.get("drc_index")
            if isinstance(idx, int) and 0 <= idx - DRC_BASE < len(self.f_init):
                i = idx - DRC_BASE
                now = actors["firmware"].assigned[i]
                cur = self._f_intervals(i)
                if cur[-1][0] != now:
                    self._change(self.f_hist, i, cur, now, local, vc)
                    return self._judge_all(i)
        elif dst == "hotplug":
            tr = set(actors["hotplug"].in_transit)
            if tr != self.h_now:
                msg = None
                for i in sorted(tr ^ self.h_now):
                    self._change(self.h_hist, i, self._h_intervals(i), int(i in tr), local, vc)
                    msg = msg or self._judge_all(i)
                self.h_now = tr
                return msg
        elif dst in self.k:
            return self._kernel(actors[dst], self.k[dst], ev, local, vc)
        return None

    def _kernel(self, k: Any, kv: _KernelView, ev: Any, local: int,
                vc: tuple[int, ...]) -> str | None:
        alive = k.booted and not k.crashed
        if alive and not kv.started:
            kv.started = kv.alive = True
            kv.a0, kv.a0vc, kv.base = local, vc, bytes(k.drmem)
            kv.present = kv.base.count(1)
            return self._boot_check(k.name)
        if not alive:
            if kv.alive:
                kv.alive, kv.end = False, local
            return None
        i = ev.payload.get("lmb")
        if not isinstance(i, int) or not 0 <= i < len(kv.base):
            return None
        now = k.drmem[i]
        cur = kv.intervals(i)
        if cur[-1][0] == now:
            return None
        kv.present += 1 if now else -1
        self._change(kv.hist, i, cur, now, local, vc)
        return self._judge(k.name, i)

    def _boot_check(self, name: str) -> str | None:
        """A kernel came up: LMBs where its table and firmware's may disagree."""
        kv = self.k[name]
        n = len(kv.base)
        diff = int.from_bytes(kv.base, "big") ^ int.from_bytes(self.f_init, "big")
        cand = set(self.f_hist) | set(self.h_hist)
        if diff:
            raw = diff.to_bytes(n, "big")
            j = raw.find(1)
            while j >= 0:
                cand.add(j)
                j = raw.find(1, j + 1)
        for i in sorted(cand):
            msg = self._judge(name, i)
            if msg:
                return msg
        return None

    def present_bytes(self, name: str, lmb_size: int) -> int:
        return self.k[name].present * lmb_size
