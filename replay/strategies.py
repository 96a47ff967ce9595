"""Delivery strategies: the only source of nondeterminism in a run.

A strategy is asked, before every delivery, which non-empty channel delivers next.
`candidates` is the list of channel keys (src, dst) whose head event is deliverable,
in a deterministic order (first-send order of the channels). Strategies must be pure
functions of their seed and the sequence of calls, so that a run can be repeated.
"""
from __future__ import annotations

import random
from typing import Protocol, Sequence

from fadumpsim.events.envelope import Event

Channel = tuple[str, str]


class Strategy(Protocol):
    name: str

    def choose(self, candidates: Sequence[Channel], heads: Sequence[Event], step: int) -> int:
        """Index into `candidates` of the channel to deliver from."""
        ...

    def params(self) -> dict:
        """Parameters recorded in the log header (besides the seed)."""
        ...


class FifoStrategy:
    """Deliver the event that became due first (ties: sent first). The 'natural' order."""

    name = "fifo"

    def choose(self, candidates: Sequence[Channel], heads: Sequence[Event], step: int) -> int:
        best = 0
        bk = heads[0].due, heads[0].send_order
        for i in range(1, len(heads)):
            h = heads[i]
            k = h.due, h.send_order
            if k < bk:
                best, bk = i, k
        return best

    def params(self) -> dict:
        return {}


class RandomStrategy:
    """Uniformly random channel at every step, from a seeded private RNG."""

    name = "random"

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)

    def choose(self, candidates: Sequence[Channel], heads: Sequence[Event], step: int) -> int:
        if len(candidates) == 1:
            return 0
        return self.rng.randrange(len(candidates))

    def params(self) -> dict:
        return {}


class PctStrategy:
    """Probabilistic Concurrency Testing (Burckhardt et al., ASPLOS 2010) over channels.

    Each channel gets a random distinct priority when first seen (priorities > depth);
    d-1 change points are drawn uniformly from [1, k] (k = estimated step bound); at
    the i-th change point the channel just chosen drops to priority i. The highest
    priority enabled channel always delivers. A bug of depth d is found with
    probability >= 1 / (n * k^(d-1)), n = number of channels.
    """

    name = "pct"

    def __init__(self, seed: int, depth: int = 3, steps: int = 200) -> None:
        if depth < 1:
            raise ValueError("pct depth must be >= 1")
        self.depth = depth
        self.steps = max(1, steps)
        self.rng = random.Random(seed)
        self.prio: dict[Channel, float] = {}
        points = sorted(self.rng.sample(range(1, self.steps + 1), min(depth - 1, self.steps)))
        self.change: dict[int, int] = {p: i + 1 for i, p in enumerate(points)}

    def choose(self, candidates: Sequence[Channel], heads: Sequence[Event], step: int) -> int:
        for ch in candidates:
            if ch not in self.prio:
                self.prio[ch] = self.depth + self.rng.random()
        best = max(range(len(candidates)), key=lambda i: self.prio[candidates[i]])
        lowered = self.change.get(step)
        if lowered is not None:
            self.prio[candidates[best]] = float(lowered)
            best = max(range(len(candidates)), key=lambda i: self.prio[candidates[i]])
        return best

    def params(self) -> dict:
        return {"depth": self.depth, "steps": self.steps}

    @staticmethod
    def guarantee(channels: int, steps: int, depth: int) -> float:
        """Lower bound on the probability that one run finds a given depth-d bug."""
        return 1.0 / (max(1, channels) * max(1, steps) ** max(0, depth - 1))


class ForcedStrategy:
    """Follow a recorded list of channels, then fall back (used by replay and explore)."""

    name = "forced"

    def __init__(self, order: Sequence[Channel], fallback: Strategy | None = None) -> None:
        self.order = list(order)
        self.fallback = fallback or FifoStrategy()
        self.diverged: str | None = None

    def choose(self, candidates: Sequence[Channel], heads: Sequence[Event], step: int) -> int:
        if step <= len(self.order):
            want = self.order[step - 1]
            try:
                return candidates.index(want)
            except ValueError:
                self.diverged = f"channel {want[0]} -> {want[1]} has nothing to deliver"
                return -1
        return self.fallback.choose(candidates, heads, step)

    def params(self) -> dict:
        return {}


def make_strategy(name: str, seed: int, **params: int) -> Strategy:
    """Build a strategy by its CLI name."""
    if name == "fifo":
        return FifoStrategy()
    if name == "random":
        return RandomStrategy(seed)
    if name == "pct":
        return PctStrategy(seed, depth=params.get("depth", 3), steps=params.get("steps", 200))
    raise ValueError(f"unknown strategy {name!r} (expected fifo, random or pct)")
