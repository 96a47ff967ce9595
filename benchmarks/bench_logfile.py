"""Throughput of the event-log writer and reader (targets: >= 300k events/s each).

Run: python benchmarks/bench_logfile.py [N]
"""
from __future__ import annotations

import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from fadumpsim.events.logfile import LogReader, LogWriter  # noqa: E402

_CMDS = ["echo 1 > /sys/kernel/fadump_registered", "cat /sys/kernel/fadump_enabled",
         "echo c > /proc/sysrq-trigger", "makedumpfile -d 31 /proc/vmcore /var/crash/vmcore"]
_ACTORS = ["kernel", "firmware", "script", "hmc", "kdump"]
_TYPES = ["cmd_run", "cmd_result", "rtas_call", "rtas_reply", "timer"]


def make_records(n: int) -> list[list]:
    """Realistic records: short names, ~100-byte payloads, growing time/cause."""
    recs = []
    for i in range(1, n + 1):
        recs.append([i, i * 1_250, _ACTORS[i % 5], _ACTORS[(i + 2) % 5], _TYPES[i % 5],
                     i - 1, i // 5 + 1,
                     {"cmd": _CMDS[i % 4], "rc": i % 3 - 1, "addr": 805306368 + (i % 64) * 4096}])
    return recs


def main(n: int = 200_000) -> None:
    recs = make_records(n)
    header = {"simulator_version": "0.1.0", "scenario": {"name": "bench"}, "seed": 1,
              "strategy": "fifo", "strategy_params": {}, "event_schema": {"cmd_run": 1}}
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "bench.log")
        best_w = best_r = best_k = float("inf")
        for _ in range(3):
            t0 = time.perf_counter()
            w = LogWriter(path, header)
            append = w.append
            for r in recs:
                append(r)
            w.close({"events": n, "outcome": "pass"})
            best_w = min(best_w, time.perf_counter() - t0)

            t0 = time.perf_counter()
            count = 0
            reader = LogReader(path)
            for _rec in reader:
                count += 1
            best_r = min(best_r, time.perf_counter() - t0)
            assert count == n and reader.error is None, reader.error

            t0 = time.perf_counter()
            kept = LogReader(path).records()
            best_k = min(best_k, time.perf_counter() - t0)
            assert len(kept) == n
        size = os.path.getsize(path)
    print(f"events:           {n}")
    print(f"append rate:      {n / best_w:,.0f} events/s (incl. close+fsync)")
    print(f"decode rate:      {n / best_r:,.0f} events/s (streaming)")
    print(f"decode rate:      {n / best_k:,.0f} events/s (records() into a list)")
    print(f"size:             {size:,} bytes, {size / n:.1f} bytes/event")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 200_000)
