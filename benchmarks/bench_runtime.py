"""Delivery rate of the scheduled runtime vs a bare pykka ask, log decode and replay.

Side by side, in one process, on one core (the scheduled runtime is single-threaded):

1. bare pykka: a ThreadingActor answering `ref.ask(i)` in a loop (round trips/s);
2. scheduled runtime: toy ping-pong/fan-out actors (a hub and 4 workers, as in
   tests/test_live.py) delivering through `Scheduler` with every record written
   to a log file by `LogWriter` (events/s, CPU events/s, ratio to the ask rate);
3. log decode: `LogReader(path).records()` (events/s);
4. replay with verification: `ForcedStrategy` over the recorded order, every
   produced record compared with the logged one (events/s, ratio to 2);
5. bytes per event in the log;
6. for information, live mode (replay/live.py): the same actors on racing pykka
   threads, the recorder numbering deliveries and writing the same log.

Targets: 2 >= 50,000 events/s and >= 1.5x the ask rate; 3 >= 300,000 events/s;
4 >= half of 2.

Run: python benchmarks/bench_runtime.py [EVENTS] [--profile]
"""
from __future__ import annotations

import cProfile
import os
import pstats
import sys
import tempfile
import time
from typing import Any

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import pykka  # noqa: E402

from fadumpsim.events import types  # noqa: E402
from fadumpsim.events.logfile import LogReader, LogWriter  # noqa: E402
from fadumpsim.replay.actor import SimActor  # noqa: E402
from fadumpsim.replay.live import LiveSystem, replay_records  # noqa: E402
from fadumpsim.replay.runtime import Scheduler  # noqa: E402
from fadumpsim.replay.strategies import FifoStrategy  # noqa: E402

for _name in ("toy.start", "toy.ping", "toy.pong", "toy.peer"):
    if not types.known(_name):
        types._t(_name, "n", "benchmark toy event")

WORKERS = 4
HEADER = {"simulator_version": "bench", "scenario": {"name": "bench-runtime"}, "seed": 0,
          "strategy": "fifo", "strategy_params": {}}


class Hub(SimActor):
    def __init__(self, name: str, workers: list[str]) -> None:
        super().__init__(name)
        self.workers = workers
        self.pongs = 0

    def on_toy_start(self, ev: Any) -> None:
        for w in self.workers:
            self.send(w, "toy.ping", {"n": ev.payload["n"]})

    def on_toy_pong(self, ev: Any) -> None:
        self.pongs += 1
        n = ev.payload["n"]
        if n > 0:
            self.send(ev.src, "toy.ping", {"n": n})


class Worker(SimActor):
    def __init__(self, name: str, peer: str) -> None:
        super().__init__(name)
        self.peer = peer
        self.acc = 0

    def on_toy_ping(self, ev: Any) -> None:
        n = ev.payload["n"]
        self.acc += n
        self.send("hub", "toy.pong", {"n": n - 1})
        self.send(self.peer, "toy.peer", {"n": n})

    def on_toy_peer(self, ev: Any) -> None:
        self.acc ^= ev.payload["n"]


def rounds_for(events: int) -> int:
    """Each round of each worker is 3 deliveries (ping, pong, peer)."""
    return max(1, events // (3 * WORKERS))


def build(sched: Any, rounds: int) -> None:
    names = [f"w{i}" for i in range(WORKERS)]
    sched.spawn(Hub, "hub", names)
    for i, w in enumerate(names):
        sched.spawn(Worker, w, names[(i + 1) % WORKERS])
    sched.wire()
    sched.inject("hub", "toy.start", {"n": rounds})


class Echo(pykka.ThreadingActor):
    use_daemon_thread = True

    def on_receive(self, message: Any) -> Any:
        return message


def bench_ask(n: int) -> float:
    """Round trips per second of ref.ask() to a bare pykka ThreadingActor."""
    ref = Echo.start()
    try:
        ask = ref.ask
        for i in range(min(n, 2000)):  # warm up
            ask(i)
        t0 = time.perf_counter()
        for i in range(n):
            ask(i)
        return n / (time.perf_counter() - t0)
    finally:
        ref.stop()


def run_scheduled(path: str, rounds: int) -> tuple[int, float, float]:
    """(events, wall s, cpu s) of one scheduled run logging to `path`."""
    w = LogWriter(path, HEADER)
    sched = Scheduler(FifoStrategy(), sink=w.append, max_events=10_000_000)
    t0, c0 = time.perf_counter(), time.process_time()
    build(sched, rounds)
    sched.run()
    w.close({"events": sched.seq})
    t1, c1 = time.perf_counter(), time.process_time()
    sched.stop()
    return sched.seq, t1 - t0, c1 - c0


def _pykka_version() -> str:
    from importlib.metadata import version
    return version("pykka")


def run_live(path: str, rounds: int) -> tuple[int, float]:
    w = LogWriter(path, {**HEADER, "strategy": "live"})
    system = LiveSystem(w.append, max_events=10_000_000)
    t0 = time.perf_counter()
    try:
        build(system, rounds)
        n = system.run_until_quiescent(timeout=600)
    finally:
        system.stop()
    w.close({"events": n})
    return n, time.perf_counter() - t0


def best(fn: Any, reps: int) -> Any:
    out = None
    for _ in range(reps):
        r = fn()
        if out is None or r[1] < out[1]:
            out = r
    return out


def main(events: int = 200_000, profile: bool = False, reps: int = 3) -> dict[str, float]:
    rounds = rounds_for(events)
    res: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "runtime.log")
        ask_n = min(events, 50_000)
        res["ask_rate"] = max(bench_ask(ask_n) for _ in range(reps))

        n, wall, cpu = best(lambda: run_scheduled(path, rounds), reps)
        res["events"] = n
        res["sched_rate"] = n / wall
        res["sched_cpu_rate"] = n / cpu
        res["ratio_vs_ask"] = res["sched_rate"] / res["ask_rate"]
        size = os.path.getsize(path)
        res["bytes_per_event"] = size / n

        def decode() -> tuple[list, float]:
            t0 = time.perf_counter()
            recs = LogReader(path).records()
            return recs, time.perf_counter() - t0
        records, dt = best(decode, reps)
        assert len(records) == n
        res["decode_rate"] = n / dt

        def rep() -> tuple[int, float]:
            t0 = time.perf_counter()
            sched, failure = replay_records(records, lambda s: build(s, rounds))
            dt = time.perf_counter() - t0
            assert failure is None and sched.seq == n
            return n, dt
        _n, dt = best(rep, reps)
        res["replay_rate"] = n / dt
        res["replay_ratio"] = res["replay_rate"] / res["sched_rate"]
        res["replay_file_rate"] = n / (n / res["decode_rate"] + n / res["replay_rate"])

        live_path = os.path.join(d, "live.log")
        ln, dt = best(lambda: run_live(live_path, rounds), reps)
        res["live_rate"] = ln / dt
        lrecs = LogReader(live_path).records()
        replay_records(lrecs, lambda s: build(s, rounds))  # the live log replays exactly

        if profile:
            for title, fn in (("scheduled run + LogWriter", lambda: run_scheduled(path, rounds)),
                              ("replay with verification",
                               lambda: replay_records(records, lambda s: build(s, rounds)))):
                pr = cProfile.Profile()
                pr.enable()
                fn()
                pr.disable()
                print(f"\n--- cProfile: {title} ---")
                pstats.Stats(pr).sort_stats("tottime").print_stats(14)

    print(f"machine:                  {os.cpu_count()} cores, Python {sys.version.split()[0]}, "
          f"pykka {_pykka_version()}")
    print(f"events:                   {res['events']:,}")
    print(f"pykka ask round trips:    {res['ask_rate']:>12,.0f} /s")
    print(f"scheduled + log to file:  {res['sched_rate']:>12,.0f} events/s "
          f"({res['sched_cpu_rate']:,.0f} per CPU-second)   target >= 50,000")
    print(f"  ratio vs ask:           {res['ratio_vs_ask']:>12.2f} x           target >= 1.5")
    print(f"log decode (LogReader):   {res['decode_rate']:>12,.0f} events/s   target >= 300,000")
    print(f"replay + verification:    {res['replay_rate']:>12,.0f} events/s "
          f"({res['replay_ratio']:.2f} of the original)   target >= 0.5")
    print(f"  incl. reading the log:  {res['replay_file_rate']:>12,.0f} events/s "
          f"({res['replay_file_rate'] / res['sched_rate']:.2f} of the original)")
    print(f"log size:                 {res['bytes_per_event']:>12.1f} bytes/event")
    print(f"live mode (threads race): {res['live_rate']:>12,.0f} events/s (log verified by replay)")
    return res


if __name__ == "__main__":
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    main(int(args[0]) if args else 200_000, profile="--profile" in sys.argv)
