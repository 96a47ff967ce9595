"""The deterministic runtime: byte-identical logs, exact replay, failures, strategies."""
import filecmp
import os
import subprocess
import sys
from pathlib import Path

import pytest

from fadumpsim.events import types
from fadumpsim.events.logfile import read_log, rewrite_records
from fadumpsim import scenario
from fadumpsim import api
from fadumpsim.replay import replayer
from fadumpsim.replay.actor import SimActor
from fadumpsim.replay.runtime import ActorFailure, Divergence, Scheduler
from fadumpsim.replay.strategies import PctStrategy, RandomStrategy

ROOT = Path(__file__).resolve().parent.parent


def _record_in_subprocess(name: str, out: Path, seed: int, strategy: str, hashseed: str) -> None:
    env = dict(os.environ, PYTHONHASHSEED=hashseed)
    code = ("import sys; from fadumpsim import scenario, api; "
            f"api.record(scenario.load({name!r}), {str(out)!r}, seed={seed}, strategy={strategy!r})")
    subprocess.run([sys.executable, "-c", code], check=True, env=env, cwd=ROOT)


@pytest.mark.parametrize("name,strategy", [("rfc-v6-story", "fifo"), ("udev-reload-window", "random")])
def test_byte_identical_logs_across_processes(tmp_path, name, strategy):
    a, b = tmp_path / "a.fadlog", tmp_path / "b.fadlog"
    _record_in_subprocess(name, a, 7, strategy, "1")
    _record_in_subprocess(name, b, 7, strategy, "4242")
    assert filecmp.cmp(a, b, shallow=False)
    c = tmp_path / "c.fadlog"
    api.record(scenario.load(name), str(c), seed=7, strategy=strategy)
    assert c.read_bytes() == a.read_bytes()


@pytest.mark.parametrize("name", scenario.builtin_names())
def test_every_builtin_log_replays(tmp_path, name):
    p = tmp_path / f"{name}.fadlog"
    rec = api.record(scenario.load(name), str(p), seed=3, strategy="random")
    res, lg = api.replay(str(p))
    assert res.events == rec.events == len(lg.records)
    assert res.violations == rec.violations and res.dump == rec.dump


def test_altered_payload_diverges_at_that_seq(tmp_path):
    p, q = tmp_path / "a.fadlog", tmp_path / "b.fadlog"
    api.record(scenario.load("rfc-v6-story"), str(p))
    _h, recs, _t, _e = read_log(p)
    target = next(r[0] for r in recs if r[4] == "cmd.run" and r[0] > 5)

    def alter(rec):
        if rec[0] == target:
            rec[7] = dict(rec[7], command=rec[7]["command"] + " ")
        return rec
    rewrite_records(p, q, alter)
    with pytest.raises(Divergence) as ei:
        api.replay(str(q))
    assert ei.value.seq == target


class Boom(SimActor):
    def on_toy_kick(self, ev):
        raise ValueError("boom")


types._t("toy.kick", "n", "test event")


def test_handler_exception_names_actor_and_event():
    s = Scheduler()
    s.spawn(Boom, "boomer")
    s.wire()
    s.inject("boomer", "toy.kick", {"n": 1})
    with pytest.raises(ActorFailure) as ei:
        s.run()
    assert "actor 'boomer' failed handling #1 toy.kick from sim: ValueError: boom" in str(ei.value)


def test_failed_run_log_is_intact_and_replayable(tmp_path, monkeypatch):
    from fadumpsim.actors.kernel.actor import Kernel
    calls = {"n": 0}
    orig = Kernel.sysfs_read

    def flaky(self, ev, f):
        calls["n"] += 1
        raise RuntimeError("injected bug")
    monkeypatch.setattr(Kernel, "sysfs_read", flaky)
    p = tmp_path / "f.fadlog"
    res = api.record(scenario.load("rfc-v6-story"), str(p))
    assert res.failure and "actor 'kernel' failed handling" in res.failure
    header, recs, trailer, err = read_log(p)
    assert err is None and trailer["error"] == res.failure and len(recs) == res.events
    assert recs[-1][4] == "cmd.run"
    monkeypatch.setattr(Kernel, "sysfs_read", orig)
    # the prefix replays up to the failing delivery
    res2, _ = api.replay(str(p), upto=len(recs) - 1)
    assert res2.events == len(recs) - 1


types._t("toy.ask", "", "test event")


class Asker(SimActor):
    got = None

    def on_toy_ask(self, ev):
        # a blocking ask from inside a handler drives the scheduler instead of deadlocking
        Asker.got = self._refs["other"].proxy().answer().get()


class Other(SimActor):
    def answer(self):
        return 42


def test_blocking_ask_inside_handler_does_not_deadlock():
    s = Scheduler()
    s.spawn(Asker, "asker")
    s.spawn(Other, "other")
    s.wire()
    s.inject("asker", "toy.ask", {})
    s.run()
    assert Asker.got == 42


def test_strategies_are_seeded():
    a, b = RandomStrategy(5), RandomStrategy(5)
    cands = [("a", "x"), ("b", "y"), ("c", "z")]
    assert [a.choose(cands, [None] * 3, i) for i in range(50)] == \
        [b.choose(cands, [None] * 3, i) for i in range(50)]
    assert PctStrategy.guarantee(4, 100, 3) == pytest.approx(1 / (4 * 100 ** 2))


def test_random_runs_differ_by_seed_but_repeat():
    sc = scenario.load("udev-reload-window")
    from fadumpsim import sim
    traces = {tuple(sim.run(sc, seed=s, strategy="random").trace) for s in range(6)}
    assert len(traces) > 1
    assert sim.run(sc, seed=2, strategy="random").trace == sim.run(sc, seed=2, strategy="random").trace


def test_old_event_schema_is_refused_naming_both_versions(tmp_path, monkeypatch):
    """A log written by a build with another event schema (another digest of the
    types' versions and field orders) is refused by name, never half-decoded."""
    from fadumpsim.events import logfile
    from fadumpsim.events.logfile import SCHEMA_DIGEST, LogFormatError
    q = tmp_path / "old.fadlog"
    from fadumpsim.events.logfile import LogWriter
    p = tmp_path / "new.fadlog"
    api.record(scenario.load("double-registration"), str(p))
    header, recs, trailer, _err = read_log(p)
    header = {k: v for k, v in header.items() if k not in ("format_version", "event_schema")}
    with monkeypatch.context() as m:
        m.setattr(logfile, "SCHEMA_DIGEST", "0123456789abcdef")
        with LogWriter(str(q), header) as w:
            for r in recs:
                w.append(r)
    with pytest.raises(LogFormatError) as ei:
        api.replay(str(q))
    assert (f"log event schema '0123456789abcdef' is not this fadumpsim's '{SCHEMA_DIGEST}'"
            in str(ei.value))
    assert ei.value.offset == -1


def test_makedumpfile_compression_without_binding_is_a_clear_error(run):
    from fadumpsim.dumpfile import compression_available
    if compression_available("lzo"):
        pytest.skip("python-lzo is installed here")
    res = run('name = "l"\n[[script]]\nname = "k"\nactor = "kernel"\n'
              'run = ["echo 1 > /sys/kernel/fadump_registered", "echo c > /proc/sysrq-trigger"]\n'
              '[[script]]\nname = "c"\nactor = "capture"\n'
              'run = ["makedumpfile -l -d 31 /proc/vmcore /x", "makedumpfile -c -d 31 /proc/vmcore /x"]\n')
    t = [x for x in res.transcript if x["script"] == "c"]
    assert t[0]["exit"] == 1 and "lzo compression is not supported" in t[0]["stderr"]
    assert t[1]["exit"] == 0


@pytest.mark.parametrize("durable, fsyncs", [(True, 2), (False, 0)])
def test_recorded_log_is_fsynced_once_only_when_durable(tmp_path, monkeypatch, durable, fsyncs):
    """A log the user named costs one fsync (plus its directory) at close; internal
    re-recordings (durable=False) none."""
    import os
    from fadumpsim.events import logfile
    calls = []
    real = os.fsync
    monkeypatch.setattr(logfile.os, "fsync", lambda fd: (calls.append(fd), real(fd)))
    res = api.record("double-registration", str(tmp_path / "a.fadlog"), durable=durable)
    assert res.events > 10 and len(calls) == fsyncs
    assert read_log(tmp_path / "a.fadlog")[3] is None
