"""Happens-before of one run, read from its records: which deliveries could reorder.

Happens-before is the transitive closure of send -> deliver (a record's `cause`
is the seq of the delivery during which its message was sent) and of each actor's
own order of deliveries. Two deliveries a < b to the same actor *race* when a does
not happen before the *sending* of b: b's message could have been there first, so
a different schedule can deliver b before a. When a happens before b's sending
("one causes the other"), no schedule can reorder them.

Kept as vector clocks indexed by actor (one small dict per delivery), so a run of
n deliveries costs O(n * actors) plus the pairs asked about.
"""
from __future__ import annotations

from typing import Any, Sequence


class HappensBefore:
    """Vector clocks of the deliveries of one run (records in seq order, seq = index + 1)."""

    def __init__(self, records: Sequence[Sequence[Any]]) -> None:
        self.records = records
        self.vcs: list[dict[str, int]] = []     # after delivery i (0-based)
        self.local: list[int] = []              # i's index among its actor's deliveries
        last: dict[str, dict[str, int]] = {}
        for r in records:
            dst, cause = r[3], r[5]
            base = self.vcs[cause - 1] if 0 < cause <= len(self.vcs) else {}
            vc = dict(base)
            for k, v in last.get(dst, {}).items():
                if vc.get(k, 0) < v:
                    vc[k] = v
            vc[dst] = vc.get(dst, 0) + 1
            self.vcs.append(vc)
            self.local.append(vc[dst])
            last[dst] = vc

    def before(self, a: int, b: int) -> bool:
        """Delivery a (0-based) happens before delivery b, or is b."""
        return self.vcs[b].get(self.records[a][3], 0) >= self.local[a]

    def sent_after(self, a: int, b: int) -> bool:
        """b's message was sent in a delivery that a happens before (b depends on a)."""
        c = self.records[b][5]
        return 0 < c and self.before(a, c - 1)

    def races(self) -> list[tuple[int, int]]:
        """Every pair (a, b), a < b, of deliveries to one actor that could reorder."""
        out: list[tuple[int, int]] = []
        by_dst: dict[str, list[int]] = {}
        for i, r in enumerate(self.records):
            prev = by_dst.setdefault(r[3], [])
            for a in prev:
                ra = self.records[a]
                if ra[2] == r[2]:
                    continue              # one FIFO channel: never reorders
                if not self.sent_after(a, i):
                    out.append((a, i))
            prev.append(i)
        return out

    def ancestors(self, i: int) -> list[int]:
        """The cause chain of delivery i (0-based indices, nearest first)."""
        out = []
        c = self.records[i][5]
        while 0 < c <= len(self.records):
            out.append(c - 1)
            c = self.records[c - 1][5]
        return out

    def descendants(self, i: int) -> list[int]:
        """Deliveries whose cause chain contains i, in seq order."""
        seq = i + 1
        inside = {seq}
        out = []
        for r in self.records[i + 1:]:
            if r[5] in inside:
                inside.add(r[0])
                out.append(r[0] - 1)
        return out
