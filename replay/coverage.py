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

Cost: per delivery, one set insertion per distinct type already delivered to that
actor in the run (a handful), so coverage is always on.
"""
from __future__ import annotations

from typing import Iterable

Pair = tuple[str, str, str]  # (dst, earlier type, later type)


class PairRecorder:
    """Per-run collector: call it with (dst, type) for every delivery, in order."""

    __slots__ = ("seen", "pairs")

    def __init__(self) -> None:
        self.seen: dict[str, list[str]] = {}
        self.pairs: set[Pair] = set()

    def __call__(self, dst: str, type: str) -> None:
        s = self.seen.get(dst)
        if s is None:
            self.seen[dst] = [type]
            return
        add = self.pairs.add
        for a in s:
            if a != type:
                add((dst, a, type))
        if type not in s:
            s.append(type)


def run_pairs(deliveries: Iterable[tuple[str, str]]) -> set[Pair]:
    """The pairs of one run, from its (dst, type) deliveries in order."""
    r = PairRecorder()
    for dst, t in deliveries:
        r(dst, t)
    return r.pairs


class OrderCoverage:
    """Union of the pairs of many runs, and the gaps between them."""

    def __init__(self) -> None:
        self.pairs: set[Pair] = set()

    def add(self, pairs: Iterable[Pair]) -> None:
        self.pairs.update(pairs)

    def both(self) -> list[Pair]:
        """Pairs (dst, A, B) with A < B seen in both orders."""
        p = self.pairs
        return sorted((d, a, b) for d, a, b in p if a < b and (d, b, a) in p)

    def gaps(self) -> list[Pair]:
        """Pairs (dst, A, B) seen only as 'A before B', sorted."""
        p = self.pairs
        return sorted((d, a, b) for d, a, b in p if (d, b, a) not in p)

    def summary(self) -> dict:
        gaps = self.gaps()
        return {"pairs": len({(d, min(a, b), max(a, b)) for d, a, b in self.pairs}),
                "both_orders": len(self.both()),
                "gaps": [{"actor": d, "first": a, "then": b} for d, a, b in gaps]}


def describe_gap(gap: Pair) -> str:
    d, a, b = gap
    return f"{d}: {a} always before {b}"
