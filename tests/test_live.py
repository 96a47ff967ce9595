"""Live mode: racing pykka threads record a log the scheduled runtime replays exactly."""
from __future__ import annotations

import sys
import threading
from typing import Any

import pytest

from fadumpsim.events import types
from fadumpsim.events.logfile import LogWriter, read_log
from fadumpsim.scenario import loads
from fadumpsim.replay.actor import SimActor
from fadumpsim.api import live_run
from fadumpsim.replay.live import LiveSystem, LiveStrategy, LiveTimeout, replay_records
from fadumpsim.replay.runtime import ActorFailure, Scheduler

TOY_TYPES = {"toy.start": "n", "toy.ping": "n", "toy.pong": "n", "toy.peer": "n",
             "toy.tick": "n"}


@pytest.fixture(autouse=True, scope="module")
def toy_types():
    """Register the toy event types for this module only (other tests see the real set)."""
    for name, fields in TOY_TYPES.items():
        types._t(name, fields, "test-only toy event")
    old = sys.getswitchinterval()
    sys.setswitchinterval(1e-5)  # make the GIL hand over often: more races
    yield
    sys.setswitchinterval(old)
    for name in TOY_TYPES:
        types._TYPES.pop(name, None)


class Hub(SimActor):
    """Fans a ping out to every worker and keeps each ping-pong chain going."""

    def __init__(self, name: str, workers: list[str]) -> None:
        super().__init__(name)
        self.workers = workers
        self.got: list[list[Any]] = []

    def on_toy_start(self, ev: Any) -> None:
        for w in self.workers:
            self.send(w, "toy.ping", {"n": ev.payload["n"]})

    def on_toy_pong(self, ev: Any) -> None:
        n = ev.payload["n"]
        self.got.append([ev.src, n, ev.seq, self.now])
        if n > 0:
            self.send(ev.src, "toy.ping", {"n": n})

    def snapshot(self) -> dict[str, Any]:
        return {"got": [list(g) for g in self.got]}


class Worker(SimActor):
    """Answers pings, pokes its peer, sometimes sets a timer; state depends on order."""

    boom_at = -1

    def __init__(self, name: str, peer: str) -> None:
        super().__init__(name)
        self.peer = peer
        self.seen: list[list[Any]] = []
        self.acc = 1
        self.threads: set[int] = set()

    def _note(self, ev: Any) -> None:
        self.threads.add(threading.get_ident())
        self.seen.append([ev.type, ev.src, ev.payload["n"], ev.seq, ev.time, ev.cause])
        self.acc = (self.acc * 1_000_003 + ev.seq * 31 + ev.payload["n"]) % (1 << 61)

    def on_toy_ping(self, ev: Any) -> None:
        self._note(ev)
        n = ev.payload["n"]
        if n == self.boom_at:
            raise RuntimeError(f"boom at n={n}")
        self.send("hub", "toy.pong", {"n": n - 1})
        self.send(self.peer, "toy.peer", {"n": n})
        if n % 4 == 0:
            self.timer(5_000, "toy.tick", {"n": n})

    def on_toy_peer(self, ev: Any) -> None:
        self._note(ev)

    def on_toy_tick(self, ev: Any) -> None:
        self._note(ev)

    def snapshot(self) -> dict[str, Any]:
        return {"seen": [list(s) for s in self.seen], "acc": self.acc, "now": self.now}


class Bomb(Worker):
    boom_at = 7


def build_toy(system: Any, workers: int = 4, rounds: int = 60, bomb: bool = False) -> None:
    names = [f"w{i}" for i in range(workers)]
    system.spawn(Hub, "hub", names)
    for i, w in enumerate(names):
        cls = Bomb if bomb and i == 1 else Worker
        system.spawn(cls, w, names[(i + 1) % workers])
    system.wire()
    system.inject("hub", "toy.start", {"n": rounds})


HEADER = {"simulator_version": "test", "scenario": {"name": "toy"}, "seed": 0,
          "strategy": "live", "strategy_params": {"mode": "live"}}


def by_actor(records: list[list[Any]]) -> dict[str, list[list[Any]]]:
    out: dict[str, list[list[Any]]] = {}
    for r in records:
        out.setdefault(r[3], []).append(r)
    return out


def live_toy(path: str, **kw: Any) -> tuple[LiveSystem, list[list[Any]], dict]:
    w = LogWriter(path, HEADER)
    system = LiveSystem(w.append)
    try:
        build_toy(system, **kw)
        n = system.run_until_quiescent(timeout=20)
    finally:
        system.stop()
    w.close({"events": w.count})
    _h, records, trailer, err = read_log(path)
    assert err is None and len(records) == n == system.seq
    return system, records, trailer


def test_live_runs_race_and_replay_exactly(tmp_path):
    orders = set()
    threads_used = set()
    for run in range(5):
        path = str(tmp_path / f"toy{run}.log")
        system, records, _tr = live_toy(path)
        # 4 chains of 60 ping-pongs, a peer poke per ping and a tick every 4th ping
        assert len(records) == 1 + 4 * (60 + 60 + 60 + 15)
        assert [r[0] for r in records] == list(range(1, len(records) + 1))
        orders.add(tuple((r[2], r[3]) for r in records))
        for name in ("w0", "w1", "w2", "w3"):
            threads_used |= system.actors[name].threads
        produced: list[list[Any]] = []
        sched, failure = replay_records(records, build_toy, sink=produced.append)
        assert failure is None
        assert sched.seq == len(records) == len(produced)
        # same per-actor receive order, from the log and from the actors' own notes
        assert by_actor(produced) == by_actor(records)
        assert by_actor(_records_of(sched)) == by_actor(
            [r[:6] for r in records if r[3] != "hub"])
        # same final state in every actor
        live_snap = system.snapshots()
        assert {n: a.snapshot() for n, a in sched.actors.items()} == live_snap
    assert len(threads_used) >= 4  # each worker ran on a thread of its own
    assert len(orders) > 1, "five live runs all interleaved the same way: no race happened"


def _records_of(sched: Scheduler) -> list[list[Any]]:
    """The records the replay produced, rebuilt from the actors' own notes."""
    out = []
    for name, a in sched.actors.items():
        if name == "hub":
            continue
        for typ, src, n, seq, time, cause in a.seen:
            out.append((seq, [seq, time, src, name, typ, cause]))
    return [r for _s, r in sorted(out)]


def test_records_of_helper_is_consistent(tmp_path):
    system, records, _ = live_toy(str(tmp_path / "t.log"), workers=2, rounds=5)
    worker_recs = [r[:6] for r in records if r[3] != "hub"]
    sched, _ = replay_records(records, lambda s: build_toy(s, workers=2, rounds=5))
    assert _records_of(sched) == worker_recs


def test_live_sender_side_numbering(tmp_path):
    _system, records, _ = live_toy(str(tmp_path / "n.log"), workers=3, rounds=10)
    first = records[0]
    assert first[2:7] == ["sim", "hub", "toy.start", 0, 1]
    chan: dict[tuple[str, str], int] = {}
    for seq, time, src, dst, typ, cause, chan_seq, _p in records:
        chan[(src, dst)] = chan.get((src, dst), 0) + 1
        assert chan_seq == chan[(src, dst)]  # per-channel FIFO, numbered by the sender
        assert cause < seq
    times = [r[1] for r in records]
    assert times == sorted(times) and len(set(times)) == len(times)


def test_live_quiescence_and_stop_without_work():
    system = LiveSystem()
    try:
        build_toy(system, workers=2, rounds=0)
        # rounds=0: one ping per worker, each pongs n=-1 and pokes its peer; tick at 0
        assert system.run_until_quiescent(timeout=10) == 1 + 2 + 2 + 2 + 2
    finally:
        system.stop()
    assert system.recorder.outstanding == 0


def test_live_handler_exception_reports_and_keeps_replayable_prefix(tmp_path):
    path = str(tmp_path / "boom.log")
    w = LogWriter(path, HEADER)
    system = LiveSystem(w.append)
    try:
        build_toy(system, bomb=True)
        with pytest.raises(ActorFailure) as ei:
            system.run_until_quiescent(timeout=20)
    finally:
        system.stop()
    failure = ei.value
    w.abort({"error": str(failure), "events": w.count})
    msg = str(failure)
    assert "actor 'w1' failed handling" in msg and "toy.ping from hub" in msg
    assert "RuntimeError: boom at n=7" in msg and "boom at n=7" in failure.trace
    _h, records, trailer, err = read_log(path)
    assert err is None and "error" in trailer and "w1" in trailer["error"]
    # the log ends exactly at the failing delivery
    assert records[-1][0] == failure.event.seq and records[-1][3] == "w1"
    assert records[-1][4] == "toy.ping" and records[-1][7] == {"n": 7}
    sched, rfail = replay_records(records, lambda s: build_toy(s, bomb=True))
    assert rfail is not None and rfail.event.seq == failure.event.seq
    assert str(rfail) == msg


def test_live_max_events_cuts_the_run_cleanly(tmp_path):
    path = str(tmp_path / "cut.log")
    w = LogWriter(path, HEADER)
    system = LiveSystem(w.append, max_events=50)
    try:
        build_toy(system)
        assert system.run_until_quiescent(timeout=20) == 50
    finally:
        system.stop()
    assert system.recorder.limit_hit
    w.close({"events": w.count})
    _h, records, _t, err = read_log(path)
    assert err is None and len(records) == 50
    sched, failure = replay_records(records, build_toy)
    assert failure is None and sched.seq == 50


class Slow(Worker):
    def on_toy_tick(self, ev: Any) -> None:
        threading.Event().wait(0.5)


def test_live_timeout_names_what_is_outstanding():
    system = LiveSystem()
    try:
        system.spawn(Slow, "w0", "w0")
        system.wire()
        system.inject("w0", "toy.tick", {"n": 1})
        with pytest.raises(LiveTimeout, match="1 messages outstanding"):
            system.run_until_quiescent(timeout=0.05)
    finally:
        system.stop()


def test_live_scenario_replays_without_divergence(tmp_path):
    from fadumpsim.api import replay
    sc = loads(SMALL_SCENARIO, "<live test>")
    for i in range(2):
        path = str(tmp_path / f"sc{i}.log")
        res = live_run(sc, path, timeout=30)
        assert res.ok, res.failure
        h, records, trailer, err = read_log(path)
        assert err is None and trailer["events"] == len(records) == res.events > 5
        assert h["strategy"] == "live" and h["strategy_params"] == {"mode": "live"}
        rr, _lg = replay(path, keep_sched=True)
        assert rr.failure is None and rr.events == len(records)
        assert rr.dump["status"] == "saved" and rr.registered
        assert {n: a.snapshot() for n, a in rr.sched.actors.items()} == res.snapshots


def test_live_strategy_header():
    assert LiveStrategy.name == "live" and LiveStrategy().params() == {"mode": "live"}


SMALL_SCENARIO = """
name = "live-small"
description = "8G default machine: arm fadump, crash, save the dump"

[[script]]
name = "arm"
actor = "kernel"
run = ["echo 1 > /sys/kernel/fadump_registered", "echo c > /proc/sysrq-trigger"]

[[script]]
name = "save"
actor = "capture"
run = ["makedumpfile -d 31 /proc/vmcore /var/crash/vmcore"]
"""
