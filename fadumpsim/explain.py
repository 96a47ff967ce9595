"""Why a run failed, in kernel terms: read post hoc from the run's records.

Nothing here changes a verdict. It reads the delivered events (the log records)
and names the deliveries behind each invariant violation -- who unregistered fadump
and when, which operation was in flight at the crash, which LMB left while which
registration covered it -- and writes minimization constraints as sentences.

Texts are built from event types and payload fields (command strings, RTAS
command numbers, LMB numbers from DRC indices), never from kernel message texts, so
they survive changes to the messages. Unknown invariants get the generic
explanation: the violating delivery and its cause chain.
"""
from __future__ import annotations

import re
from typing import Any, Sequence

from fadumpsim.eventtext import DRC_BASE, RTAS_CMDS, describe
from fadumpsim.replay.causal import HappensBefore

Rec = Sequence[Any]
REGISTERED = "/sys/kernel/fadump_registered"
#: what a hotplug->kernel request is, in pseries DLPAR terms
HP_CALLS = {"hp.is_removable": "lmb_is_removable", "hp.offline": "dlpar_offline_lmb",
            "hp.remove_memory": "remove_memory", "hp.add_memory": "add_memory",
            "hp.lock": "lock_device_hotplug()", "hp.unlock": "unlock_device_hotplug()",
            "hp.count_removable": "the removable-LMB count", "hp.lmbs": "the drmem LMB table"}


class Run:
    """The records of one run with the lookups explanations need."""

    def __init__(self, records: Sequence[Rec]) -> None:
        self.records = list(records)
        self.hb = HappensBefore(self.records)

    def rec(self, seq: int) -> Rec:
        return self.records[seq - 1]

    def origin(self, seq: int) -> Rec | None:
        """The nearest cmd.run or uevent in the cause chain of `seq` (itself included)."""
        r = self.rec(seq)
        if r[4] in ("cmd.run", "uevent"):
            return r
        for a in self.hb.ancestors(seq - 1):
            if self.records[a][4] in ("cmd.run", "uevent"):
                return self.records[a]
        return None

    def by_origin(self, seq: int) -> str:
        """"script kdump's `echo 1 > ...`" or "the udev rule (uevent memory32 online, #23)"."""
        o = self.origin(seq)
        if o is None:
            return ""
        if o[4] == "uevent":
            return f"the udev rule (uevent memory{o[7]['lmb']} {o[7]['action']}, #{o[0]})"
        return f"script {o[2]}'s `{o[7]['command']}` (#{o[0]})"

    def crash_seq(self) -> int:
        """The delivery that crashed the production kernel (it sent rtas.os_term)."""
        for r in self.records:
            if r[4] == "rtas.os_term" and r[2] == "kernel":
                return r[5]
        return 0

    def rtas_call(self, op: str, before: int) -> Rec | None:
        for r in reversed(self.records[:before - 1]):
            if r[4] == "rtas.configure_kernel_dump" and r[7].get("op") == op:
                return r
        return None

    def label(self, seq: int) -> str:
        """A delivery in kernel terms, its seq included."""
        r = self.rec(seq)
        t, p, src = r[4], r[7], r[2]
        if t == "cmd.run":
            cmd = p["command"]
            if seq == self.crash_seq():
                return f"the crash (`{cmd}`, #{seq}, script {src})"
            return f"script {src}'s `{cmd}` (#{seq})"
        if t == "hp.sysfs_write":
            w = f"`echo {p['value']} > {p['path']}`"
            o = self.origin(seq)
            if o is not None and o[4] == "uevent":
                return f"the udev rule's {w} (#{seq}, for memory{o[7]['lmb']} {o[7]['action']})"
            return f"the hotplug manager's {w} (#{seq})"
        if t in HP_CALLS:
            what = HP_CALLS[t]
            if "lmb" in p:
                what = f"{what}(LMB {p['lmb']})"
            o = self.origin(seq)
            via = f", for `{o[7]['command']}`" if o is not None and o[4] == "cmd.run" else ""
            return f"the hotplug manager's {what} (#{seq}{via})"
        if t == "rtas.return":
            call = self.rtas_call(p["op"], seq)
            name = RTAS_CMDS.get(call[7]["cmd"], call[7]["cmd"]) if call else "?"
            who = f"; {name} reached firmware at #{call[0]}, for {self.by_origin(call[0])}" \
                if call else ""
            return f"firmware's answer to {name} (#{seq}, status {p['status']}{who})"
        if t == "rtas.configure_kernel_dump":
            return f"RTAS {RTAS_CMDS.get(p['cmd'], p['cmd'])} (#{seq})"
        if t == "uevent":
            return f"uevent memory{p['lmb']} {p['action']} (#{seq})"
        if t.startswith("dlpar.") and "drc_index" in p:
            return f"{t} for LMB {p['drc_index'] - DRC_BASE} (#{seq})"
        if t == "lock.wake":
            return f"the wake-up of a {p['lock']} waiter (#{seq})"
        return f"{describe(t, p)} (#{seq})"

    def effects(self, seq: int) -> list[str]:
        """What a delivery set off directly: the answer to a request, RTAS calls it made
        (following at most three cause links, never through a script)."""
        out = []
        r0 = self.rec(seq)
        depth = {seq: 0}
        for d in self.hb.descendants(seq - 1):
            r = self.records[d]
            k = depth.get(r[5])
            if k is None or k >= 3 or r[4] in ("cmd.run", "cmd.result", "script.done"):
                continue
            depth[r[0]] = k + 1
            if r[4] == "rtas.configure_kernel_dump":
                out.append(f"{RTAS_CMDS.get(r[7]['cmd'], r[7]['cmd'])} sent at #{r[5]}, "
                           f"reached firmware at #{r[0]}")
            elif k == 0 and r[3] == r0[2] and r[7].get("op") == r0[7].get("op") and \
                    r[4] in ("hp.removable", "hp.sysfs_result", "hp.offlined", "hp.done"):
                fields = {x: y for x, y in r[7].items() if x not in ("op",) and y != ""}
                out.append("answered " + ", ".join(f"{x}={y}" for x, y in fields.items())
                           + f" at #{r[0]}")
        return out

    def in_flight(self, at: int) -> list[str]:
        """Requests sent before delivery `at` whose answer came only after it (or never)."""
        out = []
        for r in self.records[:at - 1]:
            t, p = r[4], r[7]
            if t == "rtas.configure_kernel_dump":
                ans = next((x for x in self.records if x[4] == "rtas.return" and
                            x[7].get("op") == p["op"] and x[0] > r[0]), None)
                if ans is None or ans[0] > at:
                    when = f"answered at #{ans[0]}" if ans else "never answered"
                    out.append(f"RTAS {RTAS_CMDS.get(p['cmd'], p['cmd'])} (reached firmware at "
                               f"#{r[0]}, {when}, for {self.by_origin(r[0])})")
            elif t == "hp.sysfs_write":
                ans = next((x for x in self.records if x[4] == "hp.sysfs_result" and
                            x[7].get("op") == p["op"] and x[5] >= r[0]), None)
                if ans is None or ans[5] > at:
                    out.append(f"{self.label(r[0])}, not finished")
        return out

    def unfinished(self, a: int, b: int) -> str:
        """When B crashed the kernel: did A's operation get its answer before? (B's
        crash stops the kernel, so an operation A started and B overtook never ends.)"""
        ra = self.rec(a)
        op = ra[7].get("op")
        if op is None or b != self.crash_seq():
            return ""
        later = [r for r in self.records[b:] if r[2] == ra[2] and r[3] == ra[3]
                 and r[7].get("op") == op]
        answered = any(r[3] == ra[2] and r[7].get("op") == op and r[5] and r[5] < b
                       for r in self.records[a:b])
        if not later and not answered:
            return (f", and before that operation could go on: {ra[2]} never sent it another "
                    f"{ra[4]} (the kernel crashed before answering #{a})")
        if later:
            return f", and before its next {ra[4]} ({self.label(later[0][0])})"
        return ""


def constraint_text(records: Sequence[Rec], before_seq: int, after_seq: int) -> str:
    """"the crash (`echo c ...`, #26) reached the kernel after the udev rule's `echo 0 ...`
    (#25; UNREGISTER ...), and before that operation could go on ..."."""
    run = Run(records)
    a, b = before_seq, after_seq
    dst = run.rec(b)[3]
    eff = run.effects(a)
    effs = f" [{'; '.join(eff)}]" if eff else ""
    if b == run.crash_seq():     # the crash came too late: say what it came after
        text = f"{run.label(b)} reached the {dst} after {run.label(a)}{effs}"
    else:                        # something came too early: say what it overtook
        text = f"{run.label(a)}{effs} reached the {dst} before {run.label(b)}"
    text += run.unfinished(a, b)
    fl = [x for x in run.in_flight(b if b == run.crash_seq() else a)
          if f"(#{a}," not in x]
    if fl:
        text += f"; in flight at #{b if b == run.crash_seq() else a}: " + "; ".join(fl)
    return text


# -- violations ------------------------------------------------------------------------------------
def explain_violation(v: dict[str, Any], records: Sequence[Rec]) -> dict[str, Any]:
    """`v` plus "because" (a list of {seq, text}) and "explanation" (one sentence)."""
    run = Run(records)
    inv = v.get("invariant", "")
    fn = {"dump-armed": _dump_armed, "reserved-area-intact": _reserved_area}.get(inv, _generic)
    try:
        because = fn(run, v)
    except (KeyError, IndexError, TypeError):   # a record shape we do not know: stay generic
        because = _generic(run, v)
    out = dict(v)
    out["because"] = because
    out["explanation"] = "; ".join(f"#{b['seq']} {b['text']}" for b in because)
    return out


def explain_all(violations: Sequence[dict[str, Any]], records: Sequence[Rec]
                ) -> list[dict[str, Any]]:
    return [explain_violation(v, records) for v in violations]


def _generic(run: Run, v: dict[str, Any]) -> list[dict[str, Any]]:
    seq = v.get("seq", 0)
    if not 0 < seq <= len(run.records):
        return []
    out = [{"seq": seq, "text": f"{run.label(seq)} was delivered to the {run.rec(seq)[3]}"}]
    for a in run.hb.ancestors(seq - 1)[:3]:
        out.append({"seq": a + 1, "text": f"caused by {run.label(a + 1)}"})
    return out


def _dump_armed(run: Run, v: dict[str, Any]) -> list[dict[str, Any]]:
    crash = run.crash_seq() or v.get("seq", 0)
    out: list[dict[str, Any]] = []
    reg = [r for r in run.records[:crash] if r[4] == "rtas.configure_kernel_dump"
           and r[2] == "kernel" and r[7]["cmd"] == 1]
    if reg:
        r = reg[-1]
        out.append({"seq": r[0], "text": f"REGISTER reached firmware (for {run.by_origin(r[0])})"})
    for r in run.records:
        if r[0] > crash + 50 and out:
            break
        t, p = r[4], r[7]
        zero = (t == "hp.sysfs_write" and p.get("value") == "0") or (
            t == "cmd.run" and "echo 0" in p.get("command", "") and REGISTERED in p["command"])
        if zero and r[0] < crash:
            again = ""
            op = p.get("op")
            if op is not None:      # the same operation's next write (the rule's echo 1)
                nxt = next((x for x in run.records[r[0]:] if x[4] == t and x[2] == r[2]
                            and x[7].get("op") == op), None)
                if nxt is None:
                    again = "; it never wrote again: the crash came first"
                elif nxt[0] > crash:
                    again = (f"; its next write, `echo {nxt[7].get('value')}` (#{nxt[0]}), came "
                             "only after the crash")
            out.append({"seq": r[0], "text": f"{run.label(r[0])} unregistered fadump"
                        + (f" ({', '.join(run.effects(r[0]))})" if run.effects(r[0]) else "")
                        + again})
    fl = run.in_flight(crash)
    if fl:
        tail = f" while in flight: {'; '.join(fl)}"
    elif len(out) > 1 and any("unregistered fadump" in b["text"] for b in out):
        tail = " after fadump was unregistered"
    else:
        m = re.search(r"dump status '([\w-]+)'", v.get("message", ""))
        tail = (f" with fadump registered, yet the dump came out {m.group(1)}" if m else
                " with fadump registered")
        rel = [x for x in run.records[:crash] if x[4] == "dlpar.release_drc" and x[3] == "firmware"]
        if rel:
            tail += (f" (LMB {rel[-1][7]['drc_index'] - DRC_BASE} had left the partition at "
                     f"#{rel[-1][0]})")
    out.append({"seq": crash, "text": f"{run.label(crash)} came{tail}"})
    return out


def _reserved_area(run: Run, v: dict[str, Any]) -> list[dict[str, Any]]:
    seq = v["seq"]
    out: list[dict[str, Any]] = []
    lmb = None
    r = run.rec(seq)
    if r[4].startswith("dlpar.") and "drc_index" in r[7]:
        lmb = r[7]["drc_index"] - DRC_BASE
    reg = [x for x in run.records[:seq] if x[4] == "rtas.configure_kernel_dump"
           and x[7]["cmd"] == 1]
    if reg:
        g = reg[-1]
        ans = next((x for x in run.records if x[4] == "rtas.return" and
                    x[7].get("op") == g[7]["op"] and x[0] > g[0]), None)
        out.append({"seq": g[0], "text": f"REGISTER reached firmware (for {run.by_origin(g[0])})"
                    + (f"; the kernel heard back only at #{ans[0]}" if ans else "")})
        chk = [x for x in run.records[:seq] if x[4] == "hp.is_removable"
               and (lmb is None or x[7]["lmb"] == lmb or not x[7]["exact"])]
        for c in chk[-1:]:
            inflight = ans is None or c[0] < ans[0]
            eff = run.effects(c[0])
            out.append({"seq": c[0], "text": f"{run.label(c[0])} was checked"
                        + (" while REGISTER was in flight (the kernel did not yet count the "
                           "area as registered)" if inflight and c[0] > g[0] else "")
                        + (f" and {'; '.join(eff)}" if eff else "")})
    out.append({"seq": seq, "text": f"{run.label(seq)}: LMB {lmb if lmb is not None else '?'} left "
                "the partition while the registration covered it"})
    return out
