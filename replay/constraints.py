"""Happens-before constraints between deliveries, and a strategy that honours them.

A *delivery* is named by what its sender decided, not by when it happened:
``(src, dst, type, nth)`` = "the nth message of this type that src sent to dst".
Channels are FIFO, so that name survives any reordering of other channels (and,
unlike a raw channel sequence number, an unrelated message inserted on the same
channel does not shift it).

A constraint "A before B" says: the delivery named A happens before the delivery
named B. Only deliveries to the same actor can race (an actor's state is the only
thing a delivery touches), so A and B share `dst` in every constraint minimization
produces; the strategy does not require it.

`ConstraintStrategy` is FIFO except that a channel whose head is the B of some
constraint whose A has not been delivered yet is held back. If every deliverable
channel is held back (the constraints cannot all hold in this run), it delivers
FIFO's pick anyway and remembers that a constraint was overridden. After the run,
`satisfied()` tells which constraints held (both deliveries happened, A first).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable, Sequence

from fadumpsim.events.envelope import Event
from fadumpsim.replay.dpor import fifo_index
from fadumpsim.replay.strategies import Channel

#: (src, dst, type, nth)
DeliveryId = tuple[str, str, str, int]


@dataclass(frozen=True)
class Constraint:
    before: DeliveryId
    after: DeliveryId

    def flipped(self) -> "Constraint":
        return Constraint(self.after, self.before)

    def to_data(self) -> dict[str, Any]:
        """The scenario-file form ([schedule] before/after tables)."""
        return {"before": endpoint_data(self.before), "after": endpoint_data(self.after)}

    @classmethod
    def from_data(cls, d: dict[str, Any]) -> "Constraint":
        return cls(endpoint_from_data(d["before"]), endpoint_from_data(d["after"]))


def endpoint_data(e: DeliveryId) -> dict[str, Any]:
    return {"src": e[0], "dst": e[1], "type": e[2], "nth": e[3]}


def endpoint_from_data(d: dict[str, Any]) -> DeliveryId:
    return (str(d["src"]), str(d["dst"]), str(d["type"]), int(d.get("nth", 1)))


def delivery_ids(records: Iterable[Sequence[Any]]) -> list[DeliveryId]:
    """The DeliveryId of every record of a run, in order."""
    counts: dict[tuple[str, str, str], int] = {}
    out: list[DeliveryId] = []
    for r in records:
        k = (r[2], r[3], r[4])
        n = counts.get(k, 0) + 1
        counts[k] = n
        out.append((*k, n))
    return out


class ConstraintStrategy:
    """FIFO, holding back any delivery whose required predecessor has not happened."""

    name = "constrained"

    def __init__(self, constraints: Sequence[Constraint]) -> None:
        self.constraints = list(constraints)
        self.needs: dict[DeliveryId, list[DeliveryId]] = {}
        for c in self.constraints:
            self.needs.setdefault(c.after, []).append(c.before)
        self.counts: dict[tuple[str, str, str], int] = {}
        self.delivered: dict[DeliveryId, int] = {}
        self.overridden: list[int] = []   # steps where no candidate could honour them

    def params(self) -> dict:
        return {"constraints": [c.to_data() for c in self.constraints]}

    def _id(self, ev: Event) -> DeliveryId:
        k = (ev.src, ev.dst, ev.type)
        return (*k, self.counts.get(k, 0) + 1)

    def _held(self, d: DeliveryId) -> bool:
        need = self.needs.get(d)
        return bool(need) and any(b not in self.delivered for b in need)

    def choose(self, candidates: Sequence[Channel], heads: Sequence[Event], step: int) -> int:
        ids = [self._id(h) for h in heads]
        allowed = [i for i, d in enumerate(ids) if not self._held(d)]
        if allowed:
            i = fifo_index(heads, allowed)
        else:
            i = fifo_index(heads)
            self.overridden.append(step)
        d = ids[i]
        self.counts[d[:3]] = d[3]
        self.delivered[d] = step
        return i

    def holds(self, c: Constraint) -> bool:
        a, b = self.delivered.get(c.before), self.delivered.get(c.after)
        return a is not None and b is not None and a < b

    def satisfied(self) -> bool:
        """Every constraint held: both deliveries happened, in the required order."""
        return all(self.holds(c) for c in self.constraints)

    def unmet(self) -> list[Constraint]:
        return [c for c in self.constraints if not self.holds(c)]
