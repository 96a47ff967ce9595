"""Ctrl-C on `explore` / `swarm` with worker processes or a Dask LocalCluster (issue 12).

A terminal sends SIGINT to the whole foreground process group: the command and every
worker it started. Expected: one line on stderr saying it was interrupted, no traceback
(from the command or any worker), the partial result printed, exit status as usual
(docs/explore.md: 1 when a failure was found). The commands run in a new session and the
signal goes to that process group, as a terminal would send it.
"""
from __future__ import annotations

import json
import multiprocessing as mp
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from fadumpsim.replay.explore import children_deaf_to_sigint


def _start(args: list[str], cwd: Path) -> subprocess.Popen:
    # PYTHONFAULTHANDLER: if it ever hangs, SIGABRT shows where (see _ctrl_c)
    return subprocess.Popen([sys.executable, "-m", "fadumpsim.cli", *args], cwd=cwd,
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, start_new_session=True,
                            env=dict(os.environ, PYTHONFAULTHANDLER="1"))


def _ctrl_c(p: subprocess.Popen, ready, timeout: float = 180) -> tuple[str, str]:
    """Wait until `ready()` (the work is under way), SIGINT the group, collect output."""
    try:
        t = time.monotonic()
        while not ready():
            assert p.poll() is None, p.communicate()
            assert time.monotonic() - t < timeout, "the command never got going"
            time.sleep(0.1)
        print(f"ready after {time.monotonic() - t:.1f} s")
        os.killpg(p.pid, signal.SIGINT)
        t = time.monotonic()
        try:
            out, err = p.communicate(timeout=120)
        except subprocess.TimeoutExpired:  # pragma: no cover - diagnostics of a hang
            os.kill(p.pid, signal.SIGABRT)
            out, err = p.communicate(timeout=60)
            pytest.fail("still running 120 s after Ctrl-C:\n" + err.decode()[-8000:])
        print(f"exited {time.monotonic() - t:.1f} s after Ctrl-C")
        return out.decode(), err.decode()
    finally:
        if p.poll() is None:  # pragma: no cover - only when the test already failed
            os.killpg(p.pid, signal.SIGKILL)
            p.communicate()


def _check(out: str, err: str) -> dict:
    assert "Traceback" not in err, err
    assert "KeyboardInterrupt" not in err, err
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("fadumpsim: interrupted: partial result"), err
    res = json.loads(out)
    assert res["interrupted"] is True
    return res


def _explore_interrupted(tmp_path: Path, extra: list[str]) -> None:
    out_dir = tmp_path / "out"
    p = _start(["explore", "udev-reload-window", "--schedules", "1000000", "--json",
                "--out", str(out_dir), *extra], tmp_path)
    # the scenario fails early (its first log is saved after a few schedules): then run
    # a moment more so that the helpers / Dask workers are busy with their own chunks
    seen: list[float] = []

    def ready() -> bool:
        if not seen and out_dir.is_dir() and any(out_dir.glob("*.fadlog")):
            seen.append(time.monotonic())
        return bool(seen) and time.monotonic() - seen[0] > 1.5

    out, err = _ctrl_c(p, ready)
    res = _check(out, err)
    assert p.returncode == 1  # a failure was found: exit as usual (docs/explore.md)
    assert 0 < res["schedules"] < 1_000_000 and res["failures"]
    assert f"partial result of {res['schedules']} schedule(s)" in err
    for f in res["failures"]:
        assert f["log"] is None or Path(f["log"]).is_file()


def test_ctrl_c_explore_workers_pool(tmp_path):
    _explore_interrupted(tmp_path, ["--workers", "2"])


def test_ctrl_c_explore_dask_local_cluster(tmp_path):
    pytest.importorskip("dask.distributed")
    _explore_interrupted(tmp_path, ["--scheduler", "local", "--workers", "2"])


def test_ctrl_c_swarm_workers_pool(tmp_path):
    out_dir = tmp_path / "swarm"
    p = _start(["swarm", "--seeds", "1000000", "--workers", "2", "--json", "--out", str(out_dir)],
               tmp_path)
    t0 = time.monotonic()
    out, err = _ctrl_c(p, lambda: time.monotonic() - t0 > 6)
    res = _check(out, err)
    assert p.returncode == (1 if res["failures"] else 0)
    assert res["seeds"] < 1_000_000


def _report_sigint(q) -> None:
    q.put(signal.getsignal(signal.SIGINT) == signal.SIG_IGN)


def test_processes_started_deaf_ignore_sigint_and_a_held_ctrl_c_is_raised_after():
    before = signal.getsignal(signal.SIGINT)
    ctx = mp.get_context("spawn")
    q = ctx.Queue()
    with pytest.raises(KeyboardInterrupt):
        with children_deaf_to_sigint():
            child = ctx.Process(target=_report_sigint, args=(q,))
            child.start()
            os.kill(os.getpid(), signal.SIGINT)  # held back, not lost
            time.sleep(0.05)
    assert signal.getsignal(signal.SIGINT) is before
    assert q.get(timeout=60) is True  # ignored from exec on, before any of our code ran
    child.join(60)
    # outside the block a started process has Python's usual handler
    other = ctx.Process(target=_report_sigint, args=(q,))
    other.start()
    assert q.get(timeout=60) is False
    other.join(60)
