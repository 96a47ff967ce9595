"""Stateless model checking of a scenario with source-DPOR and sleep sets.

The unit of nondeterminism is a *delivery*: the scheduler picks a non-empty
(src, dst) channel and its head event is handled by `dst`. A run is a pure function
of the sequence of picked channels, so a schedule is re-executed from scratch by
forcing a prefix of choices and continuing with a fixed strategy (FIFO).

Dependency (docs/explore.md "DPOR"):
  two deliveries are dependent iff they touch a common *object*; the object of a
  delivery is its `dst` actor (design note 5). The invariant checker judges
  `dump-armed` in kernel order (by the `cause` of the write's reply and of the crash),
  so no cross-actor observation breaks the commutation of independent deliveries.

Happens-before: the transitive closure of send->deliver (`Event.cause` is the seq
of the delivery during which the event was sent) and of per-object order
(consecutive deliveries touching the same object). It is kept as vector clocks
indexed by object.

Race: deliveries e_j < e_i touching a common object o, e_j the last delivery
before e_i that touches o, on different channels (a channel is FIFO: its events
never reorder), and e_j not happening before e_i by any other path (in particular
e_i's message was not sent in a delivery after e_j). For each race
the *initials* of v = notdep(e_j).e_i (the deliveries after e_j that do not happen
after it, then e_i, keeping only those with no happens-before predecessor inside v)
are channels that can start a reversal at the state before e_j; if none of them is
already in that node's backtrack or sleep set, one is added (e_i's own channel when
it is an initial) -- the source-DPOR rule (Abdulla et al., POPL 2014).

Sleep sets: after a branch p is explored at a node, later branches q of that node
carry p asleep while they only deliver events independent of p; a sleeping channel
is never picked. A run whose every enabled channel is asleep is "sleep-blocked":
it duplicates an explored class, it is abandoned and its verdict ignored.

Preemption bound (optional): a *preemption* is a step that delivers to an actor
other than the previous delivery's `dst` while a channel to that previous `dst`
is still enabled. With a bound, the continuation after the forced prefix is
non-preemptive (it keeps delivering to the same actor while it can, FIFO
otherwise), branches that would exceed the bound are not added, and in addition
each race also proposes its reversal at the last context switch before it (the
"conservative branch" idea of Coons et al., OOPSLA 2013).

Parallel determinism: the search is split into *jobs* (a forced prefix, the sleep
set at its end, and a budget). A job explores the subtree below its prefix
depth-first; after `local_budget` executions it stops and exports every pending
branch as a new job. Backtrack points that races place *above* a job's root are
returned to the coordinator, which owns those shared nodes. The coordinator runs
jobs in waves and merges the results in job order, so the explored schedules and
their order are the same for any number of workers.
"""
from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Any, Sequence

from fadumpsim.events.envelope import Event
from fadumpsim.replay.coverage import PairRecorder
from fadumpsim.replay.strategies import Channel
from fadumpsim.replay.system import System

# -- dependency objects ------------------------------------------------------------------
class Objects:
    """Which objects a delivery touches: its receiving actor (see the module docstring)."""

    def __init__(self, system: System | None = None) -> None:
        self._plain: dict[str, tuple[str, ...]] = {}

    def of(self, dst: str, type: str, payload: dict[str, Any]) -> tuple[str, ...]:
        t = self._plain.get(dst)
        if t is None:
            t = self._plain[dst] = (dst,)
        return t


def fifo_index(heads: Sequence[Event], allowed: Sequence[int] | None = None) -> int:
    """What FifoStrategy would pick (optionally among `allowed` indices only)."""
    idx = range(len(heads)) if allowed is None else allowed
    best, bk = -1, None
    for i in idx:
        h = heads[i]
        k = (h.due, h.send_order)
        if bk is None or k < bk:
            best, bk = i, k
    return best


# -- the strategy used for every DPOR execution ---------------------------------------------
class DporStrategy:
    """Forced prefix, then a sleep-set-aware continuation; records every node.

    Without a preemption bound the continuation is FIFO among non-sleeping channels;
    with one it is non-preemptive (same `dst` as the previous delivery first).
    """

    name = "forced"

    def __init__(self, prefix: Sequence[Channel], sleep: Sequence[Channel],
                 objects: Objects, bound: int | None = None,
                 guide: Sequence[Channel] = ()) -> None:
        self.prefix = list(prefix)
        self.guide = deque(guide)
        self.sleep0 = set(sleep)
        self.sleep: set[Channel] = set()
        self.objects = objects
        self.bound = bound
        self.blocked: str | None = None
        self.prev_dst: str | None = None
        self.preemptions = 0
        # per node (0-based; node k chooses delivery k+1)
        self.enabled: list[tuple[Channel, ...]] = []
        self.heads: list[dict[Channel, tuple[str, ...]]] = []
        self.sleeps: list[frozenset[Channel]] = []
        self.pre: list[int] = []
        self.prevs: list[str | None] = []

    def params(self) -> dict:
        return {}

    def choose(self, candidates: Sequence[Channel], heads: Sequence[Event], step: int) -> int:
        n = len(self.prefix)
        cands = tuple(candidates)
        objs_of = self.objects.of
        hd = {c: objs_of(h.dst, h.type, h.payload) for c, h in zip(cands, heads)}
        prev = self.prev_dst
        if step == n + 1:
            self.sleep = set(self.sleep0)
        if step <= n:
            want = self.prefix[step - 1]
            try:
                i = cands.index(want)
            except ValueError:
                raise RuntimeError(f"DPOR re-execution diverged at step {step}: channel "
                                   f"{want} is not enabled (is the model deterministic?)") from None
        else:
            sleep = self.sleep
            avail = [k for k, c in enumerate(cands) if c not in sleep]
            if not avail:
                self.blocked = "sleep"
                return -1
            i = -1
            if self.guide:
                g = self.guide.popleft()
                if g in cands and g not in sleep:
                    i = cands.index(g)
                    if self.bound is not None and prev is not None and g[1] != prev \
                            and self.preemptions >= self.bound \
                            and any(c[1] == prev for c in cands):
                        i = -1
                if i < 0:
                    self.guide.clear()  # the wakeup sequence no longer applies
            if i >= 0:
                pass
            elif self.bound is None or prev is None:
                i = fifo_index(heads, avail)
            else:
                same = [k for k in avail if cands[k][1] == prev]
                if same:
                    i = fifo_index(heads, same)
                else:
                    if self.preemptions >= self.bound and any(c[1] == prev for c in cands):
                        self.blocked = "bound"
                        return -1
                    i = fifo_index(heads, avail)
        ch = cands[i]
        self.enabled.append(cands)
        self.heads.append(hd)
        self.sleeps.append(frozenset(self.sleep) if step > n else frozenset())
        self.pre.append(self.preemptions)
        self.prevs.append(prev)
        if prev is not None and ch[1] != prev and any(c[1] == prev for c in cands):
            self.preemptions += 1
        if step > n and self.sleep:
            mine = set(hd[ch])
            self.sleep = {p for p in self.sleep if p != ch and not (mine & set(hd[p]))}
        self.prev_dst = ch[1]
        return i


class Recorder:
    """on_deliver hook: what race analysis and coverage need about each delivery."""

    __slots__ = ("objects", "dsts", "causes", "objs", "pairs")

    def __init__(self, objects: Objects, pairs: PairRecorder | None) -> None:
        self.objects = objects
        self.dsts: list[str] = []
        self.causes: list[int] = []
        self.objs: list[tuple[str, ...]] = []
        self.pairs = pairs

    def __call__(self, ev: Event, cands: Sequence[Channel]) -> None:
        self.dsts.append(ev.dst)
        self.causes.append(ev.cause)
        self.objs.append(self.objects.of(ev.dst, ev.type, ev.payload))
        if self.pairs is not None:
            self.pairs(ev.dst, ev.type, ev.cause, ev.src)


# -- race analysis --------------------------------------------------------------------------
def races(causes: Sequence[int], objs: Sequence[tuple[str, ...]], start: int,
          chans: Sequence[Channel]) -> list[tuple[int, list[int], list[int]]]:
    """Races (j, initials, v) for deliveries i >= start (1-based seqs).

    Returns, per race, the 1-based index j of the earlier delivery, the 1-based
    indices of the initial deliveries of v = notdep(e_j).e_i (e_i's own index first
    when it is an initial, then in execution order) and v itself.
    """
    n = len(causes)
    index: dict[str, int] = {}
    for os_ in objs:
        for o in os_:
            if o not in index:
                index[o] = len(index)
    m = len(index)
    vcs: list[list[int]] = [[0] * m]          # vcs[0]: the initial state
    idx: list[tuple[int, int]] = [(0, 0)]      # (object slot, local index) of each delivery
    last: list[int] = [0] * m                  # last delivery touching each object
    count = [0] * m
    out: list[tuple[int, list[int], list[int]]] = []
    for i in range(1, n + 1):
        oi = [index[o] for o in objs[i - 1]]
        c = causes[i - 1]
        base = vcs[c] if 0 < c < i else vcs[0]
        prevs = [last[s] for s in oi]
        vc = list(base)
        for p in prevs:
            if p:
                vp = vcs[p]
                for k in range(m):
                    if vp[k] > vc[k]:
                        vc[k] = vp[k]
        if i >= start:
            for j in sorted(set(p for p in prevs if p)):
                # happens-before of e_i without the direct edge(s) from e_j
                vj_slot, vj_idx = idx[j]
                if c == j or chans[j - 1] == chans[i - 1]:  # sent by e_j / FIFO channel
                    continue
                hb = base[vj_slot] >= vj_idx
                if not hb:
                    for p in prevs:
                        if p and p != j and vcs[p][vj_slot] >= vj_idx:
                            hb = True
                            break
                if hb:
                    continue
                inits, v = _initials(j, i, vcs, idx, vc_i=vc)
                out.append((j, inits, v))
        for s in oi:
            count[s] += 1
            vc[s] = count[s]
            last[s] = i
        vcs.append(vc)
        idx.append((oi[0], count[oi[0]]))
    return out


def _initials(j: int, i: int, vcs: list[list[int]], idx: list[tuple[int, int]],
              vc_i: list[int]) -> tuple[list[int], list[int]]:
    js, jl = idx[j]
    minidx: dict[int, int] = {}
    inits: list[int] = []
    v: list[int] = []

    def has_pred(vc: list[int]) -> bool:
        for s, l in minidx.items():
            if vc[s] >= l:
                return True
        return False

    for k in range(j + 1, i):
        vk = vcs[k]
        if vk[js] >= jl:      # happens after e_j: not in notdep
            continue
        v.append(k)
        if not has_pred(vk):
            inits.append(k)
        s, l = idx[k]
        if l < minidx.get(s, 1 << 62):
            minidx[s] = l
    # e_i itself: vc_i is its clock before its own increment (its predecessors)
    v.append(i)
    if not has_pred(vc_i):
        return [i] + inits, v
    return inits, v


# -- jobs -------------------------------------------------------------------------------------
@dataclass
class Job:
    prefix: tuple[Channel, ...]
    sleep: frozenset[Channel]
    budget: int = 1 << 30
    guide: tuple[Channel, ...] = ()   # wakeup sequence to follow after the prefix


@dataclass
class Node:
    enabled: tuple[Channel, ...]
    heads: dict[Channel, tuple[str, ...]]
    choice: Channel
    sleep: frozenset[Channel]
    pre: int
    prev: str | None
    backtrack: set[Channel] = field(default_factory=set)
    done: set[Channel] = field(default_factory=set)
    wake: dict[Channel, tuple[Channel, ...]] = field(default_factory=dict)

    def child_sleep(self, q: Channel) -> frozenset[Channel]:
        mine = set(self.heads.get(q, (q[1],)))
        return frozenset(p for p in (self.sleep | self.done)
                         if p != q and p in self.heads and not (mine & set(self.heads[p])))

    def preempts(self, q: Channel) -> int:
        prev = self.prev
        if prev is not None and q[1] != prev and any(c[1] == prev for c in self.enabled):
            return 1
        return 0


@dataclass
class SharedNode:
    """A node the coordinator owns: enough to add branches found by descendants."""
    sleep: frozenset[Channel]
    covered: set[Channel]
    heads: dict[Channel, tuple[str, ...]]

    def child_sleep(self, q: Channel) -> frozenset[Channel]:
        mine = set(self.heads.get(q, (q[1],)))
        return frozenset(p for p in (self.sleep | self.covered)
                         if p != q and p in self.heads and not (mine & set(self.heads[p])))


@dataclass
class Execution:
    """One finished (or sleep/bound-blocked) execution, as reported to the coordinator."""
    blocked: str | None
    ok: bool = True
    failure: tuple | None = None      # see explore.failure_of
    events: int = 0
    trace: list[Channel] | None = None
    pairs: frozenset | None = None


@dataclass
class Entry:
    """A branch proposed at an ancestor node (depth `node` of the job's prefix)."""
    node: int
    initials: list[Channel]           # weak initials of the reversal at that node
    inbound: list[Channel]
    wake: tuple[Channel, ...] = ()   # the rest of the reversal after inbound[0]


@dataclass
class JobResult:
    executions: list[Execution]
    entries: list[Entry]
    exported_nodes: list[tuple[tuple[Channel, ...], SharedNode]]
    exported_jobs: list[Job]
    pruned: int = 0


def run_job(system: System, job: Job, *, bound: int | None, local_budget: int,
            judge: Any, coverage: bool = True, keep_traces: bool = False) -> JobResult:
    """Explore the subtree below `job.prefix` (see the module docstring)."""
    objects = Objects(system)
    L = len(job.prefix)
    path: list[Node] = []
    prefix: list[Channel] = list(job.prefix)
    sleep = job.sleep
    guide: tuple[Channel, ...] = job.guide
    start = max(L, 1)
    execs: list[Execution] = []
    entries: list[Entry] = []
    pruned = 0
    budget = min(job.budget, local_budget)
    while True:
        strat = DporStrategy(prefix, sleep, objects, bound, guide)
        pairs = PairRecorder() if coverage else None
        rec = Recorder(objects, pairs)
        res = system.run(strategy=strat, on_deliver=rec)
        trace = res.trace
        for k in range(len(path), len(strat.enabled)):
            ch = trace[k]
            path.append(Node(strat.enabled[k], strat.heads[k], ch, strat.sleeps[k],
                             strat.pre[k], strat.prevs[k], {ch}, {ch}))
        if strat.blocked:
            execs.append(Execution(strat.blocked, events=res.events))
        else:
            failure = judge(res)
            execs.append(Execution(None, failure is None, failure, res.events,
                                   list(trace) if failure is not None or keep_traces
                                   else None,
                                   frozenset(pairs.pairs) if pairs is not None else None))
            vobjs: set[str] | None = None
            vfor: list[int] | None = None
            for j, inits, v in races(rec.causes, rec.objs, start, trace):
                b = j - 1
                node = path[b]
                chans: list[Channel] = []
                first: dict[Channel, int] = {}
                for k in inits:
                    c = trace[k - 1]
                    if c in node.enabled and c not in first:
                        chans.append(c)
                        first[c] = k
                if not chans:
                    continue
                targets = [b]
                if bound is not None:
                    m = _last_switch(path, b)
                    if m is not None:
                        targets.append(m)
                for t in targets:
                    tn = path[t]
                    cs = [c for c in chans if c in tn.enabled]
                    if not cs:
                        continue
                    inb = [c for c in cs if bound is None or tn.pre + tn.preempts(c) <= bound]
                    # weak initials: initials, plus enabled channels whose head commutes
                    # with every delivery of v (E.v.p ~ E.p.v: a p-branch covers v)
                    if vobjs is None or vfor != v:
                        vfor = v
                        vobjs = set()
                        for x in v:
                            vobjs.update(rec.objs[x - 1])
                    weak = set(cs)
                    for p_, po in tn.heads.items():
                        if p_ not in weak and vobjs.isdisjoint(po):
                            weak.add(p_)
                    wake: tuple[Channel, ...] = ()
                    if inb and t == b:
                        kq = first[inb[0]]
                        wake = tuple(trace[x - 1] for x in v if x != kq)
                    if t >= L:
                        if weak & (tn.backtrack | tn.sleep):
                            continue
                        if inb:
                            tn.backtrack.add(inb[0])
                            tn.wake[inb[0]] = wake
                        else:
                            pruned += 1
                    else:
                        entries.append(Entry(t, sorted(weak), inb, wake))
        # next branch: the deepest node of the subtree with a pending choice
        t = _deepest_pending(path, L)
        if t is None:
            return JobResult(execs, entries, [], [], pruned)
        if len(execs) >= budget:
            return _export(path, L, entries, execs, pruned)
        node = path[t]
        q = _pending(node)[0]
        node.done.add(q)
        sleep = node.child_sleep(q)
        guide = node.wake.get(q, ())
        node.choice = q
        del path[t + 1:]
        prefix = [nd.choice for nd in path]
        start = t + 1


def _pending(node: Node) -> list[Channel]:
    return [c for c in node.enabled if c in node.backtrack and c not in node.done
            and c not in node.sleep]


def _deepest_pending(path: list[Node], L: int) -> int | None:
    for t in range(len(path) - 1, L - 1, -1):
        if _pending(path[t]):
            return t
    return None


def _last_switch(path: list[Node], b: int) -> int | None:
    """The last node before b whose choice changed the delivering actor."""
    for m in range(b - 1, 0, -1):
        if path[m].choice[1] != path[m - 1].choice[1]:
            return m
    return None


def _export(path: list[Node], L: int, entries: list[Entry], execs: list[Execution],
            pruned: int) -> JobResult:
    jobs: list[Job] = []
    deepest = -1
    for t in range(L, len(path)):
        node = path[t]
        for q in _pending(node):
            node.done.add(q)
            choices = tuple(nd.choice for nd in path[:t]) + (q,)
            jobs.append(Job(choices, node.child_sleep(q), guide=node.wake.get(q, ())))
            deepest = t
    nodes = []
    for t in range(L, deepest + 1):
        node = path[t]
        key = tuple(nd.choice for nd in path[:t])
        nodes.append((key, SharedNode(node.sleep, set(node.backtrack | node.done),
                                      dict(node.heads))))
    return JobResult(execs, entries, nodes, jobs, pruned)


# -- brute force (for tests and benchmarks on tiny scenarios) ------------------------------------------
class _FirstStrategy:
    """Forced prefix, then always the first enabled channel; records enabled sets."""

    name = "forced"

    def __init__(self, prefix: Sequence[Channel]) -> None:
        self.prefix = list(prefix)
        self.enabled: list[tuple[Channel, ...]] = []

    def params(self) -> dict:
        return {}

    def choose(self, candidates: Sequence[Channel], heads: Sequence[Event], step: int) -> int:
        self.enabled.append(tuple(candidates))
        if step <= len(self.prefix):
            return list(candidates).index(self.prefix[step - 1])
        return 0


def class_key(system: System | None, trace_events: Sequence[tuple[str, str, str, int, dict]],
              objects: Objects | None = None) -> tuple:
    """The Mazurkiewicz class of an execution: per object, its sequence of messages.

    `trace_events` holds (src, dst, type, chan_seq, payload) per delivery, in order.
    Two executions are equivalent (differ only by commuting independent
    deliveries) iff these per-object sequences are equal.
    """
    objects = objects or Objects(system)
    per: dict[str, list] = {}
    for src, dst, typ, cs, payload in trace_events:
        for o in objects.of(dst, typ, payload):
            per.setdefault(o, []).append((src, dst, cs))
    return tuple(sorted((o, tuple(v)) for o, v in per.items()))


def enumerate_all(system: System, limit: int = 100_000) -> tuple[int, set[tuple], bool]:
    """Every interleaving by brute force: (count, set of class keys, finished within limit)."""
    objects = Objects(system)
    stack: list[tuple[list[Channel], int]] = [([], 0)]
    count = 0
    classes: set[tuple] = set()
    while stack:
        prefix, _ = stack.pop()
        strat = _FirstStrategy(prefix)
        evs: list[tuple] = []
        res = system.run(strategy=strat,
                      on_deliver=lambda ev, _c: evs.append((ev.src, ev.dst, ev.type,
                                                            ev.chan_seq, ev.payload)))
        count += 1
        classes.add(class_key(system, evs, objects))
        if count >= limit:
            return count, classes, False
        trace = list(res.trace)
        for k in range(len(prefix), len(trace)):
            for c in strat.enabled[k][1:]:
                stack.append((trace[:k] + [c], 0))
    return count, classes, True
