"""The `liveness` invariant: what is stuck when a run ends, and what it waits for.

A run ends quiescent (nothing deliverable), at the event cap, or halted by the busy
detector (below). If then a script command was never answered, a kernel or hotplug
operation never finished, or a lock is still held, the run is stuck: a violation that
names the stuck thing and follows what it waits for (firmware, a lock and its owner,
the kernel) to the root: firmware busy forever, a lock held by a dead operation, a
deadlock.

A crash explains what it kills: the crashed kernel's operations and locks, the commands
its scripts sent (the shell died with it) and anything whose wait chain ends at the
dead kernel (a DLPAR step waiting for it) are not violations. Scripts that never
started because they wait for such a command are not "commands never answered".

Busy loops: the 2018 kernel retries `ibm,configure-kernel-dump` for as long as firmware
answers busy (-2, 9900-9905). When one RTAS call of one operation has been answered
busy BUSY_CAP times in a row the checker reports liveness and halts the run (the
scheduler stops as at the event cap), instead of spinning to the 200,000-event cap.
The cap is a judgement, not a proof: firmware busy for 1,000 consecutive answers of one
call (10 s of retries at 9901, 27 h at 9905) is treated as busy forever.
"""
from __future__ import annotations

from typing import Any

BUSY_CODES = frozenset((-2,) + tuple(range(9900, 9906)))
BUSY_CAP = 1000
OP_ACTORS = ("kernel", "capture", "hotplug")


def _dead(actors: dict[str, Any], name: str) -> bool:
    """A crashed kernel, or the hotplug manager (drmgr, udev) that died with it."""
    a = actors.get(name)
    return bool(getattr(a, "crashed", False) or getattr(a, "dead", False))


def _answerer(actor: str, waiting: str) -> str | None:
    """Which actor an operation of `actor` waiting for event `waiting` waits on."""
    if waiting.startswith(("rtas.", "dlpar.")):
        return "firmware"
    if actor == "hotplug" and waiting.startswith("hp."):
        return "kernel"
    return None


def _script_of(actors: dict[str, Any], op: Any) -> tuple[str, str] | None:
    """(script, command) whose command started `op`, if a script did."""
    by = op.info.get("by")
    s = actors.get(by) if isinstance(by, str) else None
    if s is not None and getattr(s, "results", None):
        r = s.results[-1]
        if r["exit"] is None:
            return by, r["command"]
    cmd = op.info.get("command")
    if isinstance(cmd, str):
        for name, a in actors.items():
            res = getattr(a, "results", None)
            if res and res[-1]["exit"] is None and res[-1]["command"] == cmd \
                    and getattr(a, "actor", None) == "hotplug":
                return name, cmd
    return None


class Liveness:
    """Observer part: counts busy answers; `stuck()` judges the end of a run."""

    def __init__(self, busy_cap: int = BUSY_CAP) -> None:
        self.busy_cap = busy_cap
        self.busy: dict[tuple[str, str], list[int]] = {}   # (kernel, op) -> [count, last rc]
        self.halted: str | None = None

    def observe(self, sched: Any, ev: Any) -> str | None:
        if ev.type != "rtas.return" or ev.dst not in ("kernel", "capture"):
            return None
        key = (ev.dst, ev.payload.get("op", ""))
        rc = ev.payload.get("status")
        if rc not in BUSY_CODES:
            self.busy.pop(key, None)
            return None
        b = self.busy.setdefault(key, [0, rc])
        b[0] += 1
        b[1] = rc
        if b[0] < self.busy_cap:
            return None
        k = sched.actors[ev.dst]
        op = k.ops.get(key[1])
        what = self._describe(sched.actors, ev.dst, op) if op is not None else key[1]
        msg = (f"{what} never returned: firmware answered busy {b[0]} times in a row "
               f"(RTAS status {rc}) and the kernel retries for as long as it is busy")
        self.halted = msg
        sched.halted = msg
        return msg

    @staticmethod
    def _describe(actors: dict[str, Any], actor: str, op: Any) -> str:
        sc = _script_of(actors, op)
        if sc is not None:
            return f"`{sc[1]}` (script {sc[0]})"
        return f"{actor} operation {op.kind} ({op.id})"

    def stuck(self, sched: Any, capped: bool) -> str | None:
        """Why the run is stuck, or None; `capped`: it ended at the event cap."""
        if self.halted:
            return None  # already reported, with its cause
        actors = sched.actors
        problems: list[str] = []
        explained: set[str] = set()
        for name in OP_ACTORS:
            a = actors.get(name)
            if a is None or _dead(actors, name):
                continue
            for op in list(getattr(a, "ops", {}).values()):
                why = self._why(actors, name, op, set())
                if why is not None:
                    problems.append(f"{self._describe(actors, name, op)} waits for {why}")
                elif (sc := _script_of(actors, op)) is not None:
                    explained.add(sc[0])  # its command waits on what the crash killed
            for lk in getattr(a, "locks", {}).values():
                if lk.owner is not None and lk.owner not in a.ops:
                    problems.append(f"{name} lock {lk.name} is held by operation {lk.owner}, "
                                    "which has finished")
        for name, a in actors.items():
            res = getattr(a, "results", None)
            if not res or res[-1]["exit"] is not None:
                continue
            target = a.actor
            if _dead(actors, target) or name in explained:
                continue  # its shell died with the kernel
            cmd = res[-1]["command"]
            if not any(f"`{cmd}` (script {name})" in p for p in problems):
                problems.append(f"`{cmd}` (script {name}) was never answered by {target}")
        if capped:
            head = f"the run did not come to rest within {sched.seq} events"
            return head + (": " + "; ".join(problems) if problems else "")
        return "; ".join(problems) if problems else None

    def _why(self, actors: dict[str, Any], actor: str, op: Any, seen: set) -> str | None:
        """What `op` waits for, or None when a crash explains it."""
        a = actors[actor]
        w = op.waiting
        if (actor, op.id) in seen:
            return "itself: a deadlock"
        seen = seen | {(actor, op.id)}
        if w.startswith("lock:"):
            lk = a.locks.get(w[5:])
            owner = a.ops.get(lk.owner) if lk is not None and lk.owner else None
            if owner is None:
                return f"{actor} lock {w[5:]}, held by no live operation"
            inner = self._why(actors, actor, owner, seen)
            if inner is None:
                return None
            if inner.startswith("itself"):
                return f"{actor} lock {w[5:]}: a deadlock with {owner.kind} ({owner.id})"
            return f"{actor} lock {w[5:]}, held by {owner.kind} ({owner.id}), which waits for {inner}"
        if w == "hp.unlock":  # the kernel side of the device-hotplug lock, held for drmgr
            hp = actors.get("hotplug")
            hp_op = next((k for k, v in getattr(a, "hp_lock_ops", {}).items() if v == op.id), None)
            if hp is not None and hp_op in hp.ops:
                inner = self._why(actors, "hotplug", hp.ops[hp_op], seen)
                return None if inner is None else (
                    f"drmgr ({hp_op}) to unlock the device-hotplug lock; drmgr waits for {inner}")
            return "an unlock from an operation that no longer exists"
        if actor == "hotplug" and w == "hp.locked" and not _dead(actors, "kernel"):
            k = actors["kernel"]
            kop = k.ops.get(getattr(k, "hp_lock_ops", {}).get(op.id, ""))
            if kop is not None:
                inner = self._why(actors, "kernel", kop, seen)
                return None if inner is None else f"the kernel's device-hotplug lock: {inner}"
        dst = _answerer(actor, w)
        if dst is not None and _dead(actors, dst):
            return None  # waits on the crashed kernel: the crash explains it
        if dst is not None:
            return f"{dst} to answer {w} (it never will)"
        return f"{w or 'nothing'} (nothing left to deliver)"
