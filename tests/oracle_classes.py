"""An independent enumerator of Mazurkiewicz classes, to check exhaustive search against.

Written apart from `fadumpsim.replay.dpor` and never importing it. It explores the
state graph of a scenario where a state is identified by what every actor has
received so far, in order: per destination, the list of (src, chan_seq) of its
deliveries. Two interleavings that agree on that are the same state (the actors are
deterministic, so equal inputs give equal actor states and equal channel contents),
so prefixes are merged: every reachable state is entered once, through the first
path that reached it. A state with nothing deliverable (or at the event cap) is a
terminal state; its key is the Mazurkiewicz class of every run that ends there
(dependency = same receiving actor).

What it collects: the terminal classes, one judged run per class (the run that first
reached it), and the names of invariants that a plain per-state check (`NaiveChecker`,
a full scan after every delivery of every visited state) finds violated in *any*
reachable state. The latter is what "a function of the class" must add up to: a
class-invariant checker reports, over all classes, exactly the invariants violated in
some reachable state.

Cost: one re-execution per branching of the state graph (each run goes on until it
reaches a state already entered), so it grows with the number of reachable states,
not of interleavings.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

from fadumpsim import sim

Channel = tuple[str, str]
Key = tuple


@dataclass
class OracleResult:
    classes: dict[Key, Any] = field(default_factory=dict)   # terminal key -> judged run
    states: int = 0                                          # reachable states entered
    runs: int = 0                                            # re-executions
    state_violations: set[str] = field(default_factory=set)  # per-state check, any state
    finished: bool = True                                    # False: stopped at max_runs


class NaiveChecker:
    """Observer: the per-state invariants judged by a full scan of the current state.

    Deliberately the simplest reading of the contract ("after every event"): reads
    firmware, both kernels and the hotplug manager directly, walks every LMB.
    """

    def __init__(self) -> None:
        self.violated: set[str] = set()

    def __call__(self, sched: Any, ev: Any) -> None:
        a = sched.actors
        fwa, hp = a["firmware"], a["hotplug"]
        lmb = fwa.machine.lmb_size
        live = [k for k in (a["kernel"], a["capture"]) if k.booted and not k.crashed]
        for k in live:
            if sum(k.mm.by_class().values()) != k.drmem.count(1) * lmb:
                self.violated.add("accounting")
            for i in range(len(fwa.assigned)):
                fa, ka = fwa.assigned[i], k.drmem[i]
                if ka and not fa:
                    self.violated.add("accounting")
                if fa and not ka and i not in hp.in_transit:
                    self.violated.add("accounting")
        if fwa.registered is not None:
            k = a["capture"] if a["capture"].booted else a["kernel"]
            for s, e in ((0, k.fw.boot_memory_size), k.fw.reserved_area()):
                if e > s and not all(fwa.assigned[s // lmb:(e - 1) // lmb + 1]):
                    self.violated.add("reserved-area-intact")


class _Walker:
    """Strategy: follow `prefix`, then enter new states until none is left or known."""

    name = "forced"

    def __init__(self, prefix: Sequence[Channel], seen: set[Key],
                 todo: list[list[Channel]]) -> None:
        self.prefix = list(prefix)
        self.seen = seen
        self.todo = todo
        self.per: dict[str, list[tuple[str, int]]] = {}
        self.path: list[Channel] = []
        self.stopped = False

    def params(self) -> dict:
        return {}

    def key(self, extra: tuple[str, str, int] | None = None) -> Key:
        per = {d: list(v) for d, v in self.per.items()}
        if extra is not None:
            per.setdefault(extra[0], []).append((extra[1], extra[2]))
        return tuple(sorted((d, tuple(v)) for d, v in per.items()))

    def _take(self, ch: Channel, head: Any) -> None:
        self.per.setdefault(head.dst, []).append((head.src, head.chan_seq))
        self.path.append(ch)

    def choose(self, candidates: Sequence[Channel], heads: Sequence[Any], step: int) -> int:
        if step <= len(self.prefix):
            i = list(candidates).index(self.prefix[step - 1])
            self._take(candidates[i], heads[i])
            return i
        pick = -1
        for i, (c, h) in enumerate(zip(candidates, heads)):
            k = self.key((h.dst, h.src, h.chan_seq))
            if k in self.seen:
                continue
            self.seen.add(k)
            if pick < 0:
                pick = i
            else:
                self.todo.append(self.path + [c])
        if pick < 0:
            self.stopped = True
            return -1
        self._take(candidates[pick], heads[pick])
        return pick


class _LnfWalker(_Walker):
    """Strategy: follow `prefix`, then extend only lexicographic normal forms.

    Anisimov and Knuth (1979): a word is the lexicographically least of its trace iff it
    has no factor b.u.a with a < b where a commutes with every letter of b.u. Here a
    delivery commutes with an earlier one unless they go to the same actor or the
    earlier one sent it. Normal forms are prefix-closed and every trace has exactly
    one, so a depth-first search over them meets every maximal trace exactly once
    (a prefix none of whose extensions is normal is a dead end, not a class).
    """

    def __init__(self, prefix: Sequence[Channel], seen: set[Key],
                 todo: list[list[Channel]]) -> None:
        super().__init__(prefix, seen, todo)
        self.letters: list[tuple[str, str, int]] = []   # (dst, src, chan_seq) per step

    def _take(self, ch: Channel, head: Any) -> None:
        super()._take(ch, head)
        self.letters.append((head.dst, head.src, head.chan_seq))

    def normal(self, h: Any) -> bool:
        a = (h.dst, h.src, h.chan_seq)
        for p in range(len(self.letters) - 1, -1, -1):
            x = self.letters[p]
            if x[0] == a[0] or p + 1 == h.cause:   # same actor, or x sent it
                return True
            if x > a:
                return False
        return True

    def choose(self, candidates: Sequence[Channel], heads: Sequence[Any], step: int) -> int:
        if step <= len(self.prefix):
            i = list(candidates).index(self.prefix[step - 1])
            self._take(candidates[i], heads[i])
            return i
        ok = [i for i, h in enumerate(heads) if self.normal(h)]
        if not ok:
            self.stopped = True
            return -1
        for i in ok[1:]:
            self.todo.append(self.path + [candidates[i]])
        self._take(candidates[ok[0]], heads[ok[0]])
        return ok[0]


def enumerate_classes(sc: Any, *, max_runs: int = 200_000, max_events: int | None = None,
                      observer: Callable[[], Any] | None = NaiveChecker,
                      method: str = "states") -> OracleResult:
    """Every terminal class of scenario `sc`, judged once.

    method "states": every reachable state entered once (prefixes merged);
    method "lnf": only lexicographic normal forms extended (far fewer runs; every
    reachable state is still passed through, as the end of its own normal form).
    """
    out = OracleResult()
    seen: set[Key] = {()}
    todo: list[list[Channel]] = [[]]
    kw = {} if max_events is None else {"max_events": max_events}
    walker = {"states": _Walker, "lnf": _LnfWalker}[method]
    while todo:
        if out.runs >= max_runs:
            out.finished = False
            break
        prefix = todo.pop()
        w = walker(prefix, seen, todo)
        obs = observer() if observer is not None else None
        res = sim.run(sc, strategy=w, observers=[obs] if obs is not None else [], **kw)
        out.runs += 1
        if obs is not None:
            out.state_violations |= obs.violated
        if not w.stopped:
            k = w.key()
            assert k not in out.classes, "a terminal state was entered twice"
            out.classes[k] = res
    out.states = len(seen)
    return out


def terminal_state(res: Any) -> tuple:
    """What a class ends in, independent of the linearization that was run."""
    exits = tuple((t["script"], t["command"], t["exit"]) for t in
                  sorted(res.transcript, key=lambda t: (t["script"], t["command"])))
    d = res.dump
    return (d.get("status"), d.get("kernel_pages_lost"), d.get("user_pages_lost"),
            res.registered, exits, tuple(sorted({v["invariant"] for v in res.violations})),
            res.failure is not None)


def class_key_of(evs: Sequence[tuple[str, str, int]]) -> Key:
    """The class key (as `enumerate_classes` builds it) of a run's (src, dst, chan_seq) list."""
    per: dict[str, list[tuple[str, int]]] = {}
    for src, dst, cs in evs:
        per.setdefault(dst, []).append((src, cs))
    return tuple(sorted((d, tuple(v)) for d, v in per.items()))
