"""The scheduler's indexed candidate list and FIFO heap, against the old full scan.

`Scheduler` keeps a sorted index of non-empty channels and, under plain FIFO, a heap of
channel heads, so a delivery costs nothing per idle channel. The reference here is the
code it replaced, written out: "every channel, in creation order, that is non-empty and
whose receiver is not busy", and FifoStrategy applied to those heads. Every step of
every run below is checked against it: library scenarios under every strategy, the
exhaustive (DPOR) and PCT explorers, replay, and hypothesis-generated toy systems that
also exercise nested deliveries (a busy receiver). The complexity tests count channel
look-ups with an instrumented `channels` dict, independently of the scheduler's own
`examined` counter.
"""
from __future__ import annotations

import glob
import os
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fadumpsim import api, scenario, sim
from fadumpsim.events import types
from fadumpsim.replay import live
from fadumpsim.replay.actor import SimActor
from fadumpsim.replay.runtime import ActorFailure, Deadlock, ScheduledFuture, Scheduler
from fadumpsim.replay.strategies import FifoStrategy, PctStrategy, RandomStrategy

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LIBRARY = sorted(os.path.basename(p)[:-5] for p in glob.glob(os.path.join(ROOT, "scenarios", "*.toml")))


def naive_enabled(s: Scheduler) -> list:
    """The pre-index implementation of Scheduler.enabled(): a scan of every channel."""
    return [k for k, q in s.channels.items() if q and k[1] not in s.busy]


class CheckedScheduler(Scheduler):
    """Before each step, the reference candidates; after it, the channel FIFO chose."""

    steps = 0

    def step(self) -> Any:
        naive = naive_enabled(self)
        assert self.enabled() == naive
        assert self.pending() == sum(len(q) for q in self.channels.values())
        expect = None
        if naive and type(self.strategy) is FifoStrategy:
            heads = [self.channels[k][0] for k in naive]
            expect = naive[FifoStrategy().choose(naive, heads, self.seq + 1)]
        if naive:
            CheckedScheduler.steps += 1
        n = len(self.trace)
        ev = super().step()   # may raise (a handler failed): the choice is in the trace
        if expect is not None:
            assert self.trace[n] == expect
        if ev is None:
            assert not naive or type(self.strategy) is not FifoStrategy
        return ev


@pytest.fixture
def checked(monkeypatch):
    monkeypatch.setattr(sim, "Scheduler", CheckedScheduler)
    monkeypatch.setattr(live, "Scheduler", CheckedScheduler)
    CheckedScheduler.steps = 0
    return CheckedScheduler


@pytest.mark.parametrize("name", LIBRARY)
def test_library_runs_match_the_full_scan_under_every_strategy(checked, name):
    sc = scenario.load(name)
    total = 0
    for strat in (FifoStrategy(), RandomStrategy(3), RandomStrategy(11), PctStrategy(5),
                  PctStrategy(8, depth=2, steps=50)):
        res = sim.run(sc, strategy=strat)
        total += res.events
    assert checked.steps == total > 0


def test_explorers_and_replay_match_the_full_scan(checked, tmp_path):
    for name, strat in (("hotplug-protect-registered", "exhaustive"),
                        ("double-registration", "exhaustive"), ("udev-reload-window", "pct")):
        before = checked.steps
        api.explore(name, strat, schedules=25, seed=1, out=str(tmp_path / strat / name))
        assert checked.steps > before
    p = str(tmp_path / "r.fadlog")
    rec = api.record("udev-reload-window", p, seed=4, strategy="random", durable=False)
    before = checked.steps
    res, _ = api.replay(p)   # ForcedStrategy over the recorded channels
    assert res.events == rec.events and checked.steps - before == rec.events


# -- toy systems: random sends, timers, and nested deliveries (busy receivers) -------------
for _name in ("toy.sx", "toy.wake"):
    if not types.known(_name):
        types._t(_name, "n", "test event")


class Node(SimActor):
    """Each toy.sx fans out per the plan; a 'wait' entry blocks on a future that another
    node's toy.wake sets, so the scheduler delivers nested while this node is busy."""

    plan: dict[int, list[tuple[str, int, int, bool]]] = {}
    future: ScheduledFuture | None = None

    def on_toy_sx(self, ev: Any) -> None:
        n = ev.payload["n"]
        for dst, m, delay, wait in self.plan.get(n, []):
            if wait and Node.future is None and dst != self.name:
                fut = Node.future = ScheduledFuture()
                fut.sched = self._sched
                self.send(dst, "toy.wake", {"n": m}, delay=delay)
                fut.get()
            else:
                self.send(dst, "toy.sx", {"n": m}, delay=delay)

    def on_toy_wake(self, ev: Any) -> None:
        if Node.future is not None:
            Node.future.set(ev.payload["n"])
        self.on_toy_sx(ev)


NODES = [f"n{i}" for i in range(6)]
PLAN = st.dictionaries(
    st.integers(0, 30),
    st.lists(st.tuples(st.sampled_from(NODES), st.integers(0, 30), st.sampled_from([0, 0, 5, 40]),
                       st.booleans()), max_size=4),
    max_size=31)


def toy_run(plan: dict, strategy: Any, starts: list[tuple[str, int]]) -> CheckedScheduler:
    Node.plan, Node.future = plan, None
    s = CheckedScheduler(strategy, max_events=400)
    for n in NODES:
        s.spawn(Node, n)._sched = s
    s.wire()
    for dst, n in starts:
        s.inject(dst, "toy.sx", {"n": n})
    try:
        s.run()
    except ActorFailure as e:  # a wait cut off by the event cap; a failed check re-raises
        if not isinstance(e.exc, Deadlock):
            raise
    finally:
        s.stop()
    return s


@settings(max_examples=60, derandomize=True, deadline=None, database=None,
          suppress_health_check=list(HealthCheck))
@given(plan=PLAN, starts=st.lists(st.tuples(st.sampled_from(NODES), st.integers(0, 30)),
                                  min_size=1, max_size=5),
       which=st.sampled_from(["fifo", "random", "pct"]), seed=st.integers(0, 1000))
def test_generated_systems_match_the_full_scan(plan, starts, which, seed):
    strat = {"fifo": FifoStrategy, "random": lambda: RandomStrategy(seed),
             "pct": lambda: PctStrategy(seed, steps=100)}[which]()
    CheckedScheduler.steps = 0
    s = toy_run(plan, strat, starts)
    assert CheckedScheduler.steps == s.seq > 0


def test_nested_delivery_skips_the_busy_receiver():
    # n2 queues toy.sx #7 for n0; n0 then blocks on its toy.wake to n1. The nested step
    # must skip n0's older queued event (n0 is busy) and deliver the wake-up to n1
    plan = {1: [("n1", 2, 0, True)], 2: [("n0", 7, 0, False)]}
    CheckedScheduler.steps = 0
    s = toy_run(plan, FifoStrategy(), [("n2", 2), ("n0", 1)])
    assert s.trace == [("sim", "n2"), ("sim", "n0"), ("n0", "n1"), ("n2", "n0"), ("n1", "n0")]
    assert CheckedScheduler.steps == 5
    assert s.examined == 5 + 1 + 1   # one head set aside in the nested step, the final look


# -- complexity: channel look-ups per delivery do not grow with idle channels --------------
class CountingDict(dict):
    """A `channels` dict that counts every channel it hands out (lookup or iteration)."""

    def __init__(self) -> None:
        super().__init__()
        self.looked = 0

    def __getitem__(self, k: Any) -> Any:
        self.looked += 1
        return super().__getitem__(k)

    def get(self, k: Any, default: Any = None) -> Any:
        self.looked += 1
        return super().get(k, default)

    def items(self) -> Any:
        for kv in super().items():
            self.looked += 1
            yield kv

    def values(self) -> Any:
        for _k, v in self.items():
            yield v

    def __iter__(self) -> Any:
        for k, _v in self.items():
            yield k


class CountingScheduler(Scheduler):
    """Counts, besides the channel look-ups, what the full scan would have returned."""

    def __init__(self, *a: Any, **kw: Any) -> None:
        super().__init__(*a, **kw)
        self.channels = CountingDict()
        self.ready_sum = 0   # sum over deliveries of the non-empty, non-busy channels

    def step(self) -> Any:
        busy = self.busy
        if type(self.strategy) is not FifoStrategy:  # the reference scan is itself O(channels)
            self.ready_sum += sum(1 for k, q in dict.items(self.channels) if q and k[1] not in busy)
        return super().step()


def chain(n: int) -> scenario.Scenario:
    """n scripts, each after the previous: one runs, the other channels lie idle."""
    scripts = [{"name": "s0", "actor": "kernel", "run": ["echo 1 > /sys/kernel/fadump_registered"]}]
    scripts += [{"name": f"s{i}", "actor": "kernel", "after": [f"s{i - 1}"],
                 "run": ["cat /sys/kernel/fadump_registered"]} for i in range(1, n)]
    return scenario.Scenario.build(f"chain-{n}", script=scripts)


@pytest.mark.parametrize("strategy,big", [(FifoStrategy, 4000), (lambda: RandomStrategy(1), 1000)])
def test_lookups_per_delivery_do_not_grow_with_idle_scripts(monkeypatch, strategy, big):
    monkeypatch.setattr(sim, "Scheduler", CountingScheduler)
    per = {}
    for n in (40, big):
        res = sim.run(chain(n), strategy=strategy(), keep_sched=True)
        s, d = res.sched, res.events
        assert res.ok and len(s.channels) > 2 * n      # thousands of channels, mostly empty
        if type(s.strategy) is FifoStrategy:
            # the heap: one head per delivery (+ the final empty look), whatever is ready
            assert s.examined == d + 1
            assert s.channels.looked <= 4 * d
        else:
            # a generic strategy sees exactly the ready channels: boot tells every script
            # at once, so they are many here, but the idle ones cost nothing
            assert s.examined == s.ready_sum
            assert s.channels.looked <= s.ready_sum + 4 * d
        per[n] = s.channels.looked / d
    # the full scan looked at every channel (3 per script) at every delivery
    assert per[big] < big / 4 < 3 * big


def test_fifo_heap_sets_busy_heads_aside_only():
    # fifo with many concurrently ready channels: the heap examines one head per delivery
    sc = scenario.Scenario.build("wide", script=[
        {"name": f"s{i}", "actor": "kernel", "run": ["cat /sys/kernel/fadump_registered"]}
        for i in range(500)])
    res = sim.run(sc, keep_sched=True)
    assert res.ok and res.sched.examined == res.events + 1   # + the final empty look


# -- the ownership checker's vector clocks, projected onto the judged actors ----------------
@pytest.mark.parametrize("name", ["rfc-v6-story", "udev-reload-window", "hotadd-kept-in-dump",
                                  "remove-by-count-rollback"])
def test_projected_vector_clocks_equal_the_full_ones(name):
    from fadumpsim.ownership import TRACKED, Clocks
    evs = []
    res = sim.run(scenario.load(name), strategy=RandomStrategy(2), keep_sched=True,
                  observers=[lambda s, ev: evs.append((ev.seq, ev.dst, ev.cause))])
    names = sorted(res.sched.actors)
    assert len(names) > len(TRACKED)                      # scripts and udev are left out
    full, part = Clocks(names), Clocks([n for n in names if n in TRACKED])
    for seq, dst, cause in evs:
        a, b = full.deliver(seq, dst, cause), part.deliver(seq, dst, cause)
        assert b == tuple(a[full.index[n]] for n in part.index)


@settings(max_examples=200, derandomize=True, deadline=None, database=None)
@given(steps=st.lists(st.tuples(st.sampled_from(["firmware", "kernel", "s1", "s2", "udev"]),
                                st.integers(0, 1000)), min_size=1, max_size=40))
def test_projected_vector_clocks_on_any_causal_history(steps):
    # any history: delivery i to dst, caused by an earlier delivery (or 0, injected)
    from fadumpsim.ownership import TRACKED, Clocks
    names = sorted({"firmware", "kernel", "s1", "s2", "udev"})
    full, part = Clocks(names), Clocks([n for n in names if n in TRACKED])
    for i, (dst, c) in enumerate(steps, start=1):
        cause = c % i                                   # 0 .. i-1
        a, b = full.deliver(i, dst, cause), part.deliver(i, dst, cause)
        assert b == tuple(a[full.index[n]] for n in part.index)
