"""Shrink a failing run to the few orderings it needs.

Two phases. First, the fewest *deviations* from FIFO order that still fail (below).
Then, from that run, the *causal* phase (`causal_minimize`): a minimal set of
happens-before constraints "A before B" between racing deliveries (same actor,
neither causes the other; replay/causal.py) such that FIFO order under them
(`ConstraintStrategy`, replay/constraints.py) fails exactly as the original (same
failure key and signature: a candidate failing in another way is rejected) and
every constraint holds. Start: the run's races, one per (delivery, other incoming
channel). Shrink: ddmin, then single removals to a fixpoint; then each constraint's
A is moved as early as the failure allows ("after the echo 0", not "after whatever
followed it"). Each remaining constraint is reversed alone, by running, to record
whether the failure needs it (`necessary`). The written `.min.fadlog` is FIFO under
the constraints.

Deviation phase:

A *deviation* is a step where the delivered channel differs from the one
FifoStrategy would pick given the same candidates and heads. FIFO is the natural
order (messages in the order they became due); a failing schedule found by
exploration is FIFO plus some decisions that brought deliveries forward.

Representation: a deviation is the pair (message delivered, message FIFO wanted),
messages named by (src, dst, chan_seq) -- "the n-th message src sent to dst" --
which survives re-ordering elsewhere, unlike step numbers. A candidate schedule is a
list of such rules, applied by `DeviationStrategy`: at each step, when FIFO's pick
is the overtaken message of an unused rule whose message is at the head of its
channel, deliver that one instead; otherwise FIFO. Applying every deviation of the
original run reproduces it exactly.

Shrinking: delta debugging (ddmin) over the rule list, then single-rule removal to
a fixpoint; a candidate is kept when the run still fails the same way (the same
invariant, or the same failed expectation key, as the original's first failure)
and it is smaller by (deviations, events) -- never longer than the original run. The
result is 1-minimal: dropping any single remaining deviation makes the failure go away
(or the run longer than the original).

The story lists the remaining decisions in kernel terms: which delivery was brought
forward and which one it overtook; consecutive deviations that all overtake the
same message are one decision ("X waited while N deliveries went first").
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

from fadumpsim.events.envelope import Event
from fadumpsim.replay.causal import HappensBefore
from fadumpsim.replay.constraints import (Constraint, ConstraintStrategy, DeliveryId,
                                          delivery_ids, endpoint_data)
from fadumpsim.replay.dpor import fifo_index
from fadumpsim.replay.strategies import Channel, ForcedStrategy
from fadumpsim.replay.system import RunOutcome, System, SystemFactory

MsgId = tuple[str, str, int]  # (src, dst, chan_seq)


class MinimizeError(Exception):
    """The log cannot be minimized (it does not replay); CLI exit 2."""


def msg_id(ev: Event) -> MsgId:
    return (ev.src, ev.dst, ev.chan_seq)


@dataclass
class Deviation:
    step: int
    fwd: MsgId
    over: MsgId
    fwd_type: str
    fwd_text: str
    over_type: str
    over_text: str

    def line(self) -> str:
        s, d, _ = self.fwd
        os_, od, _ = self.over
        return (f"#{self.step} {d} received {self.fwd_text} from {s} before "
                f"{od} received {self.over_text} from {os_}")

    def to_json(self) -> dict[str, Any]:
        return {"step": self.step, "delivered": {"src": self.fwd[0], "dst": self.fwd[1],
                                                 "chan_seq": self.fwd[2], "type": self.fwd_type,
                                                 "what": self.fwd_text},
                "overtook": {"src": self.over[0], "dst": self.over[1], "chan_seq": self.over[2],
                             "type": self.over_type, "what": self.over_text}}


class DeviationStrategy:
    """FIFO, except where a rule (message to deliver, message FIFO wants) applies.

    With `forced`, follow that channel order instead (to measure its deviations).
    """

    name = "forced"

    def __init__(self, rules: Sequence[tuple[MsgId, MsgId]] = (),
                 forced: Sequence[Channel] | None = None,
                 describe: Callable[[str, dict], str] = lambda t, p: t) -> None:
        self.describe = describe
        self.rules = [(tuple(a), tuple(b)) for a, b in rules]
        self.used = [False] * len(self.rules)
        self.by_over: dict[MsgId, list[int]] = {}
        for i, (_f, o) in enumerate(self.rules):
            self.by_over.setdefault(o, []).append(i)
        self.forced = list(forced) if forced is not None else None
        self.devs: list[Deviation] = []
        self.diverged = False

    def params(self) -> dict:
        return {}

    def choose(self, candidates: Sequence[Channel], heads: Sequence[Event], step: int) -> int:
        f = fifo_index(heads)
        i = f
        if self.forced is not None:
            if step <= len(self.forced):
                try:
                    i = list(candidates).index(self.forced[step - 1])
                except ValueError:
                    self.diverged = True
                    return -1
        else:
            lst = self.by_over.get(msg_id(heads[f]))
            if lst:
                for r in lst:
                    if self.used[r]:
                        continue
                    src, dst, cs = self.rules[r][0]
                    for k, ch in enumerate(candidates):
                        if ch[0] == src and ch[1] == dst:
                            if heads[k].chan_seq == cs:
                                self.used[r] = True
                                i = k
                            break
                    if i != f:
                        break
        if i != f:
            h, o = heads[i], heads[f]
            self.devs.append(Deviation(step, msg_id(h), msg_id(o), h.type,
                                       self.describe(h.type, h.payload), o.type,
                                       self.describe(o.type, o.payload)))
        return i


@dataclass
class MinimizeResult:
    log: str
    failed: bool                       # did the input log fail at all?
    key: str | None = None             # the failure kept (invariant or expect:<key>)
    message: str = ""
    out: str | None = None
    original_events: int = 0
    original_deviations: int = 0
    events: int = 0
    deviations: list[Deviation] = field(default_factory=list)
    story: list[str] = field(default_factory=list)
    runs: int = 0
    reproduced: bool | None = None
    signature: str = ""
    constraints: list["FoundConstraint"] = field(default_factory=list)
    records: list[list[Any]] = field(default_factory=list)   # the minimized run

    def to_json(self) -> dict[str, Any]:
        return {"log": self.log, "failed": self.failed, "failure": self.key,
                "message": self.message, "out": self.out,
                "original": {"events": self.original_events,
                             "deviations": self.original_deviations},
                "minimized": {"events": self.events, "deviations": len(self.deviations)},
                "runs": self.runs, "story": self.story,
                "deviations": [d.to_json() for d in self.deviations],
                "constraints": [c.to_json() for c in self.constraints],
                "constraint_signature": constraint_signature(self.constraints),
                "signature": self.signature,
                "reproduced": self.reproduced}


def _keys(res: RunOutcome) -> set[str]:
    from fadumpsim.replay.explore import failure_keys
    return failure_keys(res)


def default_out(log: str) -> str:
    p = Path(log)
    stem = p.name[:-len(".fadlog")] if p.name.endswith(".fadlog") else p.stem
    return str(p.with_name(f"{stem}.min.fadlog"))


class _Shrinker:
    def __init__(self, system: System, target: str, max_runs: int) -> None:
        self.system = system
        self.target = target
        self.max_runs = max_runs
        self.runs = 0

    def test(self, rules: Sequence[tuple[MsgId, MsgId]]
             ) -> tuple[bool, DeviationStrategy, RunOutcome]:
        self.runs += 1
        strat = DeviationStrategy(rules, describe=self.system.describe)
        res = self.system.run(strategy=strat)
        return self.target in _keys(res), strat, res

    def shrink(self, rules: list[tuple[MsgId, MsgId]], events: int
               ) -> tuple[list[tuple[MsgId, MsgId]], DeviationStrategy | None, RunOutcome | None]:
        best: list[tuple[MsgId, MsgId]] = list(rules)
        best_strat: DeviationStrategy | None = None
        best_res: RunOutcome | None = None
        best_size = (len(best), events)

        def attempt(cand: list[tuple[MsgId, MsgId]]) -> bool:
            nonlocal best, best_strat, best_res, best_size
            if self.runs >= self.max_runs:
                return False
            ok, strat, res = self.test(cand)
            size = (len(strat.devs), res.events)
            if ok and size < best_size and res.events <= events:
                best = [(d.fwd, d.over) for d in strat.devs]
                best_strat, best_res, best_size = strat, res, size
                return True
            return False

        # 0: FIFO alone (no deviation at all)
        if best and attempt([]):
            return best, best_strat, best_res
        # 1: ddmin (remove complements of chunks)
        n = 2
        while len(best) >= 2 and self.runs < self.max_runs:
            size = max(1, len(best) // n)
            chunks = [best[i:i + size] for i in range(0, len(best), size)]
            progressed = False
            for k in range(len(chunks)):
                cand = [r for c_i, c in enumerate(chunks) if c_i != k for r in c]
                if attempt(cand):
                    n = max(n - 1, 2)
                    progressed = True
                    break
            if not progressed:
                if n >= len(best):
                    break
                n = min(len(best), 2 * n)
        # 2: single removals to a fixpoint (1-minimal)
        changed = True
        while changed and self.runs < self.max_runs:
            changed = False
            for k in range(len(best)):
                if attempt(best[:k] + best[k + 1:]):
                    changed = True
                    break
        return best, best_strat, best_res


def story_lines(devs: Sequence[Deviation]) -> list[str]:
    """The decisions that matter, grouped by the message they held back."""
    out: list[str] = []
    i = 0
    while i < len(devs):
        j = i
        while j + 1 < len(devs) and devs[j + 1].over == devs[i].over:
            j += 1
        if j == i:
            out.append(devs[i].line())
        else:
            first, last = devs[i], devs[j]
            os_, od, _ = first.over
            out.append(f"#{first.step}..#{last.step}: {od} received {first.over_text} from "
                       f"{os_} only after {j - i + 1} other deliveries went first; the last: "
                       f"#{last.step} {last.fwd[1]} received {last.fwd_text} from {last.fwd[0]}")
        i = j + 1
    return out


# -- causal minimization: the few happens-before constraints the failure needs ----------------
Target = tuple[str, str]   # (failure key, failure signature)


@dataclass
class FoundConstraint:
    """One "A before B" the failure needs, located in the minimized run."""

    constraint: Constraint
    before_seq: int
    after_seq: int
    before_what: str
    after_what: str
    #: the run with this one constraint reversed (the others kept): how it ended
    flipped: str = ""
    #: reversing it makes the failure go away (checked by running)
    necessary: bool = False
    text: str = ""

    def to_json(self) -> dict[str, Any]:
        b = dict(endpoint_data(self.constraint.before), seq=self.before_seq,
                 what=self.before_what)
        a = dict(endpoint_data(self.constraint.after), seq=self.after_seq, what=self.after_what)
        return {"before": b, "after": a, "text": self.text, "necessary": self.necessary,
                "flipped": self.flipped}


def _target(res: RunOutcome) -> Target | None:
    from fadumpsim.replay.explore import failure_of
    f = failure_of(res)
    return (f[0], f[1]) if f is not None else None


class _ConstraintShrinker:
    """Runs candidate constraint sets; a candidate is good when every constraint holds
    and the run fails exactly as the original (same key and signature)."""

    def __init__(self, system: System, target: Target, max_runs: int) -> None:
        self.system, self.target, self.max_runs = system, target, max_runs
        self.runs = 0

    def run(self, cs: Sequence[Constraint]) -> tuple[ConstraintStrategy, RunOutcome, list]:
        self.runs += 1
        strat = ConstraintStrategy(cs)
        recs: list = []
        res = self.system.run(strategy=strat, sink=recs.append)
        return strat, res, recs

    def good(self, cs: Sequence[Constraint]) -> bool:
        if self.runs >= self.max_runs:
            return False
        strat, res, _ = self.run(cs)
        return strat.satisfied() and _target(res) == self.target

    def shrink(self, cs: list[Constraint]) -> list[Constraint]:
        best = list(cs)
        if best and self.good([]):
            return []
        n = 2
        while len(best) >= 2 and self.runs < self.max_runs:       # ddmin
            size = max(1, len(best) // n)
            chunks = [best[i:i + size] for i in range(0, len(best), size)]
            for k in range(len(chunks)):
                cand = [c for j, ch in enumerate(chunks) if j != k for c in ch]
                if self.good(cand):
                    best, n = cand, max(n - 1, 2)
                    break
            else:
                if n >= len(best):
                    break
                n = min(len(best), 2 * n)
        changed = True
        while changed and self.runs < self.max_runs:             # 1-minimal
            changed = False
            for k in range(len(best)):
                if self.good(best[:k] + best[k + 1:]):
                    best = best[:k] + best[k + 1:]
                    changed = True
                    break
        return best

    def weaken(self, cs: list[Constraint], records: Sequence[Sequence[Any]]) -> list[Constraint]:
        """Move each constraint's A as early as the failure allows: "after the echo 0",
        not "after whatever came after the echo 0" -- the weakest order that still fails."""
        ids = delivery_ids(records)
        pos = {d: i for i, d in enumerate(ids)}
        hb = HappensBefore(records)
        out = list(cs)
        for k, c in enumerate(out):
            a, b = pos.get(c.before), pos.get(c.after)
            if a is None or b is None:
                continue
            for e in range(a):
                if records[e][3] != records[b][3] or records[e][2] == records[b][2] \
                        or hb.sent_after(e, b) or ids[e] in (x.before for x in out):
                    continue
                cand = out[:k] + [Constraint(ids[e], c.after)] + out[k + 1:]
                if self.good(cand):
                    out = cand
                    break
        return out


def initial_constraints(records: Sequence[Sequence[Any]]) -> list[Constraint]:
    """The races of a run as constraints that pin its ordering class: for every
    delivery b and every other channel into b's actor, the latest earlier delivery
    from that channel that b could have overtaken (earlier ones follow by FIFO)."""
    hb = HappensBefore(records)
    ids = delivery_ids(records)
    latest: dict[tuple[int, str], int] = {}
    for a, b in hb.races():
        latest[(b, records[a][2])] = max(a, latest.get((b, records[a][2]), -1))
    return [Constraint(ids[a], ids[b]) for (b, _s), a in sorted(latest.items(),
                                                                 key=lambda x: (x[0][0], x[1]))]


def constraint_signature(result: Any) -> str:
    """A stable text key of the orderings a failure needs (for grouping failures by their
    cause): sorted "src>dst:type#nth<src>dst:type#nth" items joined by ';'. `result` is a
    MinimizeResult, or a list of FoundConstraint / Constraint; "" when none is needed."""
    def name(e: DeliveryId) -> str:
        return f"{e[0]}>{e[1]}:{e[2]}#{e[3]}"
    constraints = getattr(result, "constraints", result)
    items = []
    for c in constraints:
        c = getattr(c, "constraint", c)
        items.append(f"{name(c.before)}<{name(c.after)}")
    return ";".join(sorted(items))


def causal_minimize(system: System, records: Sequence[Sequence[Any]], target: Target, *,
                    max_runs: int = 2000
                    ) -> tuple[list[FoundConstraint], list[list[Any]], RunOutcome | None, int]:
    """The fewest "A before B" constraints between racing deliveries of `records`
    (a run failing as `target`) under which FIFO order still fails the same way.

    Returns (constraints located in the minimized run, its records, its outcome,
    candidate runs). Each constraint is then reversed alone, by running, to check
    that the failure needs it (`necessary`). Empty when FIFO order itself fails.
    """
    sh = _ConstraintShrinker(system, target, max_runs)
    c0 = initial_constraints(records)
    if not sh.good(c0):
        return [], [], None, sh.runs
    best = sh.shrink(c0)
    strat, res, recs = sh.run(best)
    best = sh.weaken(best, recs)
    strat, res, recs = sh.run(best)
    ids = delivery_ids(recs)
    pos = {d: i for i, d in enumerate(ids)}
    out = []
    for k, c in enumerate(best):
        a, b = pos[c.before], pos[c.after]
        fc = FoundConstraint(c, a + 1, b + 1, system.describe(recs[a][4], recs[a][7]),
                             system.describe(recs[b][4], recs[b][7]))
        fs, fres, _ = sh.run(best[:k] + [c.flipped()] + best[k + 1:])
        t = _target(fres)
        fc.necessary = t != target
        fc.flipped = ("passes" if t is None else
                      f"fails the same way ({t[0]})" if t == target else f"fails as {t[0]} ({t[1]})")
        if not fs.holds(c.flipped()):
            gone = [e for e in (c.before, c.after) if e not in fs.delivered]
            fc.flipped += (f" (then {gone[0][0]}->{gone[0][1]} {gone[0][2]} #{gone[0][3]} never "
                           "happened)" if gone else " (the reversed order could not be forced)")
        fc.text = (f"{recs[b][3]} handled {fc.after_what} from {recs[b][2]} (#{b + 1}) after "
                   f"{fc.before_what} from {recs[a][2]} (#{a + 1})")
        out.append(fc)
    return out, recs, res, sh.runs


def minimize(path: str, factory: SystemFactory, out: str | None = None, *,
             max_runs: int = 5000) -> MinimizeResult:
    """Minimize the failing log at `path` (see the module docstring)."""
    from fadumpsim.events.logfile import LogFormatError
    from fadumpsim.replay.explore import failure_of
    from fadumpsim.replay.replayer import record, replay, unused_path
    from fadumpsim.replay.runtime import Divergence
    try:
        res, lg = replay(path, factory)
    except Divergence as e:
        raise MinimizeError(f"{path}: does not replay (diverges at event #{e.seq}: {e.why})") \
            from None
    except FileNotFoundError:  # pragma: no cover - LogReader reports it as LogFormatError
        raise LogFormatError(str(path), -1, "no such file") from None
    result = MinimizeResult(str(path), failed=not res.ok, original_events=res.events)
    f = failure_of(res)
    if f is None:
        return result
    result.key, result.message = f[0], f[5]
    result.signature = f[1]
    system = lg.system
    order = [(r[2], r[3]) for r in lg.records]
    probe = DeviationStrategy(forced=order, describe=system.describe)
    system.run(strategy=probe)
    result.original_deviations = len(probe.devs)
    rules = [(d.fwd, d.over) for d in probe.devs]
    sh = _Shrinker(system, result.key, max_runs)
    ok, strat, fres = sh.test(rules)
    if not ok:  # pragma: no cover - applying every deviation reproduces the run
        raise MinimizeError(f"{path}: re-applying the log's deviations from FIFO does not "
                            "reproduce its failure")
    best, bstrat, bres = sh.shrink(rules, fres.events)
    if bstrat is None:
        bstrat, bres = strat, fres
    result.runs = sh.runs
    # causal phase, from the run with the fewest deviations (shorter, fewer races)
    drecs: list = []
    dres = system.run(strategy=DeviationStrategy([(d.fwd, d.over) for d in bstrat.devs]),
                      sink=drecs.append)
    target = (f[0], f[1])
    if _target(dres) != target:        # the deviation phase kept only the key
        drecs = lg.records
    found, crecs, cres, cruns = causal_minimize(system, drecs, target,
                                                max_runs=max(1, max_runs - sh.runs))
    result.runs += cruns
    result.constraints = found
    if cres is not None:
        # the minimized run is FIFO under the constraints: measure its deviations
        probe = DeviationStrategy(forced=[(r[2], r[3]) for r in crecs], describe=system.describe)
        system.run(strategy=probe)
        bstrat, trace, result.events = probe, [(r[2], r[3]) for r in crecs], cres.events
        result.records = crecs
    else:
        trace, result.events = bres.trace, bres.events
    result.deviations = bstrat.devs
    result.story = [c.text for c in found] or story_lines(bstrat.devs) or [
        "no deviation needed: the FIFO (natural) order itself fails this way"]
    dest = unused_path(out if out is not None else default_out(path), first=2)
    rec = record(system, dest, seed=lg.header.get("seed", 0), strategy=ForcedStrategy(trace),
                 durable=out is not None)  # fsync only a log the user named
    result.out = dest
    result.reproduced = result.key in _keys(rec)
    return result
