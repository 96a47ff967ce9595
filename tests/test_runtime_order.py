"""The scheduler's ordering rules, pinned on a toy actor system.

FIFO is "the event that became due first, ties by send order"; virtual time is
max(now + tick, due); a channel never reorders; strategies only choose among
channels. Each test fails on a one-line change to one of those rules.
"""
from __future__ import annotations

from fadumpsim.events import types
from fadumpsim.replay.actor import SimActor
from fadumpsim.replay.runtime import Scheduler
from fadumpsim.replay.strategies import FifoStrategy, RandomStrategy

for _name in ("toy.go", "toy.late", "toy.soon", "toy.now", "toy.n"):
    if not types.known(_name):
        types._t(_name, "n", "test event")


class Sender(SimActor):
    """On toy.go: sends what the test scripted, in that order."""

    plan: list[tuple[str, str, int, int]] = []

    def on_toy_go(self, ev):
        for dst, typ, n, delay in self.plan:
            self.send(dst, typ, {"n": n}, delay=delay)


class Sink(SimActor):
    def __init__(self, name):
        super().__init__(name)
        self.got: list[tuple[str, int, int]] = []

    def _rec(self, ev):
        self.got.append((ev.type, ev.payload["n"], ev.time))

    on_toy_late = on_toy_soon = on_toy_now = on_toy_n = _rec


def _run(plan, strategy=None):
    Sender.plan = plan
    s = Scheduler(strategy or FifoStrategy())
    s.spawn(Sender, "a")
    s.spawn(Sink, "b")
    s.spawn(Sink, "c")
    s.wire()
    s.inject("a", "toy.go", {"n": 0})
    s.run()
    return s


def test_fifo_delivers_by_due_time_not_send_order():
    # sent first but due later: the undelayed event to another actor goes first
    s = _run([("b", "toy.late", 1, 50_000), ("c", "toy.now", 2, 0)])
    assert s.trace[1:] == [("a", "c"), ("a", "b")]
    assert s.actors["c"].got[0][2] < s.actors["b"].got[0][2]


def test_fifo_orders_two_timers_by_due_time():
    s = _run([("b", "toy.late", 1, 90_000), ("c", "toy.soon", 2, 10_000)])
    assert s.trace[1:] == [("a", "c"), ("a", "b")]


def test_fifo_ties_broken_by_send_order():
    s = _run([("c", "toy.n", 1, 0), ("b", "toy.n", 2, 0)])
    assert s.trace[1:] == [("a", "c"), ("a", "b")]
    s = _run([("b", "toy.n", 1, 0), ("c", "toy.n", 2, 0)])
    assert s.trace[1:] == [("a", "b"), ("a", "c")]


def test_virtual_time_is_max_of_tick_and_due():
    s = _run([("b", "toy.late", 1, 50_000), ("c", "toy.now", 2, 0)])
    go_time = s.actors["a"].tick_ns  # the injected kick: one tick after 0
    (_t, _n, now_time), = s.actors["c"].got
    (_t, _n, late_time), = s.actors["b"].got
    assert now_time == go_time + s.actors["c"].tick_ns
    assert late_time == go_time + 50_000   # the due time (sent at go_time) wins over a tick


def test_a_channel_never_reorders_under_any_strategy():
    plan = [("b", "toy.n", i, 0) for i in range(6)] + [("c", "toy.n", i, 0) for i in range(6)]
    for seed in range(20):
        s = _run(plan, RandomStrategy(seed))
        assert [n for _t, n, _ in s.actors["b"].got] == list(range(6))
        assert [n for _t, n, _ in s.actors["c"].got] == list(range(6))


def test_random_strategy_reaches_both_orders():
    plan = [("b", "toy.n", 1, 0), ("c", "toy.n", 2, 0)]
    orders = {tuple(_run(plan, RandomStrategy(seed)).trace[1:]) for seed in range(30)}
    assert orders == {(("a", "b"), ("a", "c")), (("a", "c"), ("a", "b"))}


def test_max_events_stops_the_run():
    Sender.plan = [("b", "toy.n", i, 0) for i in range(10)]
    s = Scheduler(FifoStrategy(), max_events=4)
    s.spawn(Sender, "a")
    s.spawn(Sink, "b")
    s.spawn(Sink, "c")
    s.wire()
    s.inject("a", "toy.go", {"n": 0})
    assert s.run() == 4
    assert len(s.actors["b"].got) == 3 and s.pending() == 7
