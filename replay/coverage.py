"""Ordering coverage: which orders of event types each actor has experienced.

For every run we record, per receiving actor (`dst`), the set of ordered pairs
(type A, type B) such that *some* delivery of type A to that actor came before
*some* delivery of type B to it in the same run (all pairs, not only consecutive
ones; A != B). Across runs the pairs are unioned. A pair is *covered in both
orders* when (dst, A, B) and (dst, B, A) were both seen -- possibly in the same run
(an A, then a B, then an A again). A *gap* is a pair seen in one order only: an
ordering the exploration has never produced (either impossible in the model, e.g.
the capture kernel's `fw.boot` always comes before its `cmd.run`, or not yet
reached: a hint where to aim a longer or differently seeded search).

Pairs that can never reorder are not gaps. When the recorder is given each
delivery's `cause`, it keeps vector clocks (replay/causal.py explains the
happens-before) and also records the pairs whose deliveries *raced* in some run:
the earlier one did not happen before the later one's sending. A pair seen in one
order only is a gap only if it raced somewhere; otherwise one always causes the
other (the capture kernel's `fw.boot` before its script's `cmd.run`) and it is
counted as causal, not listed.

Cost: per delivery, a vector-clock merge over the actors and one set insertion
per distinct type already delivered to that actor in the run (a handful), so
coverage is always on.
"""
from __future__ import annotations

from typing import Any, Iterable

Pair = tuple[str, str, str]  # (dst, earlier type, later type)
#: a pair that raced in some run travels in the same set as (dst, A, B, RACED); the
#: 1-tuple (RACED,) marks a run recorded with causes (so "never raced" means something)
RACED = "raced"


class PairRecorder:
    """Per-run collector: call it with (dst, type[, cause, src]) for every delivery, in
    order. `pairs` holds the ordered pairs and, when causes are given, the raced ones
    as 4-tuples (dst, A, B, RACED)."""

    __slots__ = ("seen", "pairs", "vcs", "last", "latest", "n")

    def __init__(self) -> None:
        self.seen: dict[str, list[str]] = {}
        self.pairs: set[tuple[str, ...]] = set()
        self.vcs: list[dict[str, int]] = []           # vector clock after each delivery
        self.last: dict[str, dict[str, int]] = {}     # per actor: its latest clock
        #: per actor: type -> (local index of its latest delivery, its src)
        self.latest: dict[str, dict[str, tuple[int, str]]] = {}
        self.n = 0

    def __call__(self, dst: str, type: str, cause: int | None = None, src: str = "") -> None:
        self.n += 1
        s = self.seen.get(dst)
        if s is None:
            s = self.seen[dst] = []
        add = self.pairs.add
        for a in s:
            if a != type:
                add((dst, a, type))
        if type not in s:
            s.append(type)
        if cause is None:
            return
        if self.n == 1:
            add((RACED,))       # marker: this run's races are known (none may follow)
        base = self.vcs[cause - 1] if 0 < cause <= len(self.vcs) else {}
        mine = base.get(dst, 0)     # how much of dst's history the sending had seen
        lat = self.latest.setdefault(dst, {})
        for a, (idx, asrc) in lat.items():
            if a != type and idx > mine and asrc != src:
                add((dst, a, type, RACED))
        vc = dict(base)
        for k, v in self.last.get(dst, {}).items():
            if vc.get(k, 0) < v:
                vc[k] = v
        vc[dst] = vc.get(dst, 0) + 1
        self.vcs.append(vc)
        self.last[dst] = vc
        lat[type] = (vc[dst], src)


def run_pairs(deliveries: Iterable[tuple[Any, ...]]) -> set[tuple[str, ...]]:
    """The pairs of one run, from its (dst, type[, cause, src]) deliveries in order."""
    r = PairRecorder()
    for d in deliveries:
        r(*d)
    return r.pairs


class OrderCoverage:
    """Union of the pairs of many runs, and the gaps between them."""

    def __init__(self) -> None:
        self.pairs: set[Pair] = set()
        self.raced: set[Pair] = set()
        self.causal_known = False      # some run reported races (causes were given)

    def add(self, pairs: Iterable[tuple[str, ...]]) -> None:
        for p in pairs:
            if len(p) == 4:
                self.raced.add(p[:3])  # type: ignore[arg-type]
            elif len(p) == 1:
                self.causal_known = True
            else:
                self.pairs.add(p)  # type: ignore[arg-type]

    def both(self) -> list[Pair]:
        """Pairs (dst, A, B) with A < B seen in both orders."""
        p = self.pairs
        return sorted((d, a, b) for d, a, b in p if a < b and (d, b, a) in p)

    def one_order(self) -> list[Pair]:
        """Pairs (dst, A, B) seen only as 'A before B', sorted (gaps and causal pairs)."""
        p = self.pairs
        return sorted((d, a, b) for d, a, b in p if (d, b, a) not in p)

    def gaps(self) -> list[Pair]:
        """Pairs seen in one order only although they raced in some run: orderings the
        search could produce but has not. Without race information: every one-order pair."""
        one = self.one_order()
        if not self.causal_known:
            return one
        return [g for g in one if g in self.raced]

    def causal(self) -> list[Pair]:
        """One-order pairs that never raced: one always causes the other."""
        return [g for g in self.one_order() if g not in set(self.gaps())]

    def summary(self) -> dict:
        gaps = self.gaps()
        return {"pairs": len({(d, min(a, b), max(a, b)) for d, a, b in self.pairs}),
                "both_orders": len(self.both()), "causal": len(self.causal()),
                "gaps": [{"actor": d, "first": a, "then": b} for d, a, b in gaps]}


def describe_gap(gap: Pair) -> str:
    d, a, b = gap
    return f"{d}: {a} always before {b}"
